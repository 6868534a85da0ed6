"""Priority hooks for `LabelStore.prioritize`: which pairs the labelers see first.

The default queue is insertion order. `uncertainty_priority(scorer)` puts first the pairs a reward
model is least sure about (P(A ≻ B) near ½) or, for an ensemble, on which its members disagree:
active selection, as in the loop's later rounds. `random_priority` is the baseline it is compared to.
"""

from __future__ import annotations

import math
import random
from typing import Callable, Sequence

from labeling_app.store import Pair

__all__ = ["uncertainty_priority", "random_priority"]


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-max(-60.0, min(60.0, x))))


def uncertainty_priority(scorer, *, batch_size: int = 16) -> Callable[[list[Pair]], list[float]]:
    """`scorer`: a `RewardModel` or `RewardEnsemble` (anything with `score(prompts, responses)`; an
    ensemble's `score_members` is used when present). Each pair scores `reward.ensemble.uncertainty_of`
    its members' P(A ≻ B), batched over all pairs: higher is more informative to label."""
    from reward.ensemble import uncertainty_of

    def score(pairs: Sequence[Pair]) -> list[float]:
        prompts = [p.prompt for p in pairs] * 2
        responses = [p.response_a for p in pairs] + [p.response_b for p in pairs]
        if hasattr(scorer, "score_members"):
            members = scorer.score_members(prompts, responses, batch_size=batch_size)
        else:
            members = [scorer.score(prompts, responses, batch_size=batch_size)]
        n = len(pairs)
        return [uncertainty_of([_sigmoid(m[i] - m[n + i]) for m in members]) for i in range(n)]

    return score


def random_priority(seed: int = 0) -> Callable[[list[Pair]], list[float]]:
    rng = random.Random(seed)
    return lambda pairs: [rng.random() for _ in pairs]
