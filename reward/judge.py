"""A reward model as a judge: the simulated labelers (and the oracle) of a task whose preference was
learnt from people's labels rather than written as a rule — e.g. a reward model trained on HH-RLHF's
human comparisons judging the loop's answers to HH-RLHF's requests.

A Bradley-Terry reward model states its preference as log-odds: P(A ≻ B) = σ(r_A − r_B). At
`temperature` 1 the judge draws each choice from exactly that probability (a labeler as noisy as the
people it was fit to); lower is more decided, 0 always picks the higher reward (the oracle).
"""

from __future__ import annotations

import random
import threading
from pathlib import Path

from foundation.errors import ModelError
from foundation.judges import text_of
from foundation.stats import sigmoid

__all__ = ["RewardModelJudge"]

# |r_A − r_B| (log-odds) at which a choice's strength (1-4) steps up: P(A ≻ B) ≈ 0.62, 0.73, 0.88
_STRENGTH_STEPS = (0.5, 1.0, 2.0)


class RewardModelJudge:
    """`judge(prompt, response_a, response_b) -> (choice, strength)` from the reward model saved in
    `path` (`align reward train`'s output, or an ensemble folder)."""

    def __init__(self, path: str | Path, *, temperature: float = 0.0, tie_below: float = 1e-6):
        from reward.ensemble import load_scorer

        if not Path(path).is_dir():
            raise ModelError(f"judge reward:{path}: no reward model folder there; train one with `align "
                             "reward train --output_dir PATH` (docs/loop.md, real prompts) and point the "
                             "judge at it.")
        self.scorer = load_scorer(str(path))
        self.temperature = temperature
        self.tie_below = tie_below
        self._lock = threading.Lock()          # simulated labelers may judge from several threads

    def __call__(self, prompt, response_a, response_b, *, rng: random.Random | None = None):
        with self._lock:
            r_a, r_b = self.scorer.score([prompt, prompt], [text_of(response_a), text_of(response_b)])
        diff = r_a - r_b
        if self.temperature > 0:
            choice = "A" if (rng or random).random() < sigmoid(diff / self.temperature) else "B"
        else:
            choice = "A" if diff > self.tie_below else "B" if diff < -self.tie_below else "tie"
        return choice, 1 + sum(abs(diff) >= step for step in _STRENGTH_STEPS)
