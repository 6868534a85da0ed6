"""The uncertainty that active selection uses: which pairs are most worth a human label.

A pair is worth labeling when the reward model is unsure of it (P(A ≻ B) near ½) or, for an
ensemble, when its members disagree. `pair_uncertainty(scorer, prompts, a, b)` scores many pairs in
one batched pass; `uncertainty_priority(scorer)` wraps it as a priority hook for
`LabelStore.prioritize` (the labeling app takes the function and never imports a reward model).
"""

from __future__ import annotations

import statistics
from typing import Callable, Sequence

from foundation.stats import sigmoid

__all__ = ["uncertainty_of", "pair_uncertainty", "uncertainty_priority"]


def uncertainty_of(probs: Sequence[float]) -> float:
    """In [0, 1]: 1 − |2·P̄ − 1| (1 when the mean P(a ≻ b) is ½) plus the std of P across ensemble
    members (0 for one model), capped at 1."""
    return min(1.0, 1.0 - abs(2 * statistics.fmean(probs) - 1) + statistics.pstdev(probs))


def pair_uncertainty(scorer, prompts: Sequence, responses_a: Sequence, responses_b: Sequence, *,
                     batch_size: int = 16) -> list[float]:
    """`uncertainty_of` each pair's P(A ≻ B) under `scorer` (a `RewardModel`, or a `RewardEnsemble`
    whose members each give one P), all pairs scored in one batched pass: higher is more informative."""
    n = len(prompts)
    all_prompts, responses = list(prompts) * 2, [*responses_a, *responses_b]
    if hasattr(scorer, "score_members"):
        members = scorer.score_members(all_prompts, responses, batch_size=batch_size)
    else:
        members = [scorer.score(all_prompts, responses, batch_size=batch_size)]
    return [uncertainty_of([sigmoid(m[i] - m[n + i]) for m in members]) for i in range(n)]


def uncertainty_priority(scorer, *, batch_size: int = 16) -> Callable[[list], list[float]]:
    """A priority hook for `LabelStore.prioritize`: pairs (with `prompt`, `response_a`, `response_b`)
    in, one uncertainty per pair out."""
    def score(pairs: Sequence) -> list[float]:
        return pair_uncertainty(scorer, [p.prompt for p in pairs], [p.response_a for p in pairs],
                                [p.response_b for p in pairs], batch_size=batch_size)

    return score
