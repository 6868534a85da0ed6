"""`RewardEnsemble`: several reward models trained with different seeds, for uncertainty.

`uncertainty(prompt, a, b)` is what the labeling app's active selection uses: pairs whose
P(a ≻ b) is near ½, or on which the members disagree, are the most informative to label.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Sequence

from foundation.stats import sigmoid
from reward.model import RewardModel
from reward.uncertainty import uncertainty_of

__all__ = ["RewardEnsemble", "load_scorer"]


class RewardEnsemble:
    def __init__(self, members: Sequence[RewardModel]):
        if not members:
            raise ValueError("a RewardEnsemble needs at least one member.")
        self.members = list(members)

    @classmethod
    def from_pretrained(cls, directory: str) -> "RewardEnsemble":
        """A folder written by `align reward train --ensemble N` (it holds `ensemble.json`)."""
        meta = json.loads((Path(directory) / "ensemble.json").read_text())
        return cls([RewardModel.from_pretrained(str(Path(directory) / m)) for m in meta["members"]])

    def to(self, device) -> "RewardEnsemble":
        for member in self.members:
            member.to(device)
        return self

    def score_members(self, prompts, responses, batch_size: int = 16) -> list[list[float]]:
        """(members, N) rewards."""
        return [m.score(prompts, responses, batch_size=batch_size) for m in self.members]

    def score(self, prompts, responses, batch_size: int = 16) -> list[float]:
        """The members' mean reward for each (prompt, response)."""
        per = self.score_members(prompts, responses, batch_size)
        return [statistics.fmean(col) for col in zip(*per)]

    def score_with_spread(self, prompts, responses, batch_size: int = 16) -> list[tuple[float, float]]:
        """(mean, standard deviation across members) for each (prompt, response)."""
        per = self.score_members(prompts, responses, batch_size)
        return [(statistics.fmean(col), statistics.pstdev(col)) for col in zip(*per)]

    def _probs(self, prompt, a, b) -> list[float]:
        """Each member's P(a ≻ b) = σ(r_a − r_b)."""
        return [sigmoid(ra - rb) for ra, rb in self.score_members([prompt, prompt], [a, b])]

    def uncertainty(self, prompt, a, b) -> float:
        """`uncertainty_of` the members' P(a ≻ b): higher means more worth a human label."""
        return uncertainty_of(self._probs(prompt, a, b))



def load_scorer(directory: str):
    """A RewardEnsemble for an ensemble folder, else a RewardModel."""
    if (Path(directory) / "ensemble.json").is_file():
        return RewardEnsemble.from_pretrained(directory)
    return RewardModel.from_pretrained(directory)
