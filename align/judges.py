"""The judges `align` commands and the loop take (`--judge SPEC`): the base's (`vader`,
`module:function`; `foundation.judges`) and `reward:PATH`, a trained reward model
(`reward.judge.RewardModelJudge`), which the base cannot load itself (it imports no reward model)."""

from __future__ import annotations

from typing import Callable

__all__ = ["load_judge", "JUDGE_HELP"]

JUDGE_HELP = ("vader, module:function (judge(prompt, a, b) -> (choice, strength)), or reward:PATH (a "
              "reward model saved by `align reward train`: P(A ≻ B) = σ((r_A − r_B) / temperature))")


def load_judge(spec: str, *, temperature: float = 0.0) -> Callable:
    """The judge `spec` names, noisy in the Bradley-Terry way at `temperature` > 0."""
    if spec.startswith("reward:"):
        from reward.judge import RewardModelJudge

        return RewardModelJudge(spec[len("reward:"):], temperature=temperature)
    from foundation.judges import load_judge as load_base_judge

    return load_base_judge(spec, temperature=temperature)
