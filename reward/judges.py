"""Judges and reward functions given by name: the built-in VADER sentiment, or any `module:function`.

A judge compares two responses: `judge(prompt, response_a, response_b) -> (choice, strength)` with
choice "A", "B", "tie" or "both_bad" and strength 1-4 (the labeling app's scale). A reward function
scores many: `f(prompts, responses) -> list[float]`. Prompts arrive as chat messages or text.
"""

from __future__ import annotations

import importlib
import math
import random
from functools import lru_cache, partial
from typing import Callable

from reward.errors import ConfigError

__all__ = ["load_judge", "load_reward_function", "vader_score", "vader_judge", "vader_reward", "text_of"]


def text_of(value) -> str:
    """The text of a response given as a string or as chat messages."""
    if isinstance(value, str):
        return value
    return "\n".join(m["content"] for m in value)


@lru_cache(maxsize=1)
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def vader_score(text: str) -> float:
    """VADER compound sentiment in [-1, 1]."""
    return _vader().polarity_scores(text)["compound"]


def vader_reward(prompts, responses) -> list[float]:
    """The built-in reward function `vader`: each response's VADER compound sentiment."""
    return [vader_score(text_of(r)) for r in responses]


def vader_judge(prompt, response_a, response_b, *, temperature: float = 0.0, rng: random.Random | None = None):
    """Prefers the more positive response (VADER compound). With `temperature > 0` the choice is
    drawn from Bradley-Terry: P(A) = σ((s_A − s_B) / temperature), like a noisy human labeler."""
    sa, sb = vader_score(text_of(response_a)), vader_score(text_of(response_b))
    diff = sa - sb
    if temperature > 0:
        p_a = 1 / (1 + math.exp(-diff / temperature))
        choice = "A" if (rng or random).random() < p_a else "B"
    else:
        choice = "A" if diff > 0 else "B" if diff < 0 else "tie"
    gap = abs(diff)
    strength = 1 if gap < 0.1 else 2 if gap < 0.3 else 3 if gap < 0.6 else 4
    return choice, strength


def _import(spec: str, what: str) -> Callable:
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ConfigError(f"{what} {spec!r} must be `vader` or `module:function` (importable from PYTHONPATH).")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"cannot load {what} {spec!r}: {e}. Check the module is on PYTHONPATH and defines `{name}`.") from None
    if not callable(fn):
        raise ConfigError(f"{what} {spec!r} is not callable.")
    return fn


def load_judge(spec: str, *, temperature: float = 0.0) -> Callable:
    """`vader` (with Bradley-Terry noise of `temperature`, like a noisy labeler; 0: deterministic) or
    `module:function` (used as it is)."""
    if spec == "vader":
        return vader_judge if temperature == 0 else partial(vader_judge, temperature=temperature)
    return _import(spec, "judge")


def load_reward_function(spec: str, device=None) -> Callable:
    """`vader`, `module:function`, or a reward-model folder (its `score` is used; its model on `device`,
    e.g. the training process's GPU)."""
    from pathlib import Path

    if spec == "vader":
        return vader_reward
    if Path(spec).is_dir():
        from reward.ensemble import load_scorer

        scorer = load_scorer(spec)
        if device is not None:
            scorer.to(device)
        return lambda prompts, responses: scorer.score(prompts, responses)
    return _import(spec, "reward function")
