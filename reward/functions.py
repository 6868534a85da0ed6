"""Reward functions by name, for PPO and GRPO: `f(prompts, responses) -> list[float]`.

`vader` (VADER compound sentiment), a reward-model folder written by `align reward train` (scored at
the text level, so the policy's tokenizer may differ), or any `module:function`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from foundation.judges import import_callable, text_of, vader_score

__all__ = ["load_reward_function", "vader_reward"]


def vader_reward(prompts, responses) -> list[float]:
    """The built-in reward function `vader`: each response's VADER compound sentiment."""
    return [vader_score(text_of(r)) for r in responses]


def load_reward_function(spec: str, device=None, batch_size: int = 16) -> Callable:
    """`vader`, `module:function`, or a reward-model folder (its `score` is used, `batch_size` responses
    at a time; its model on `device`, e.g. the training process's GPU)."""
    if spec == "vader":
        return vader_reward
    if Path(spec).is_dir():
        from reward.ensemble import load_scorer

        scorer = load_scorer(spec)
        if device is not None:
            scorer.to(device)
        return lambda prompts, responses: scorer.score(prompts, responses, batch_size=batch_size)
    return import_callable(spec, "reward function")
