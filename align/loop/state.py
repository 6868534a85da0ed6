"""The loop's record of itself: `loop_state.json` in the output folder, one entry per round with each
stage's results, and the round folders beside it.

Every stage writes its results into its round's entry and the file is saved when the stage ends
(atomically: a kill never leaves half a file), so an interrupted loop resumes at the stage where it
stopped. Under `accelerate launch` rank 0 alone writes it; the other ranks wait on it (`wait_for`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

__all__ = ["LoopState"]


class LoopState:
    """The rounds so far, as `loop_state.json` holds them, and where each round's files go."""

    def __init__(self, out: Path, config, *, announce: bool = True):
        self.out = out
        self.path = out / "loop_state.json"
        self.data = json.loads(self.path.read_text()) if self.path.exists() else {"rounds": {}}
        if announce and self.data.get("config") and self.data["config"] != asdict(config):
            changed = sorted(k for k, v in asdict(config).items() if self.data["config"].get(k) != v)
            print(f"align loop: resuming {out} with changed settings: {', '.join(changed)}")
        self.data["config"] = asdict(config)
        self.keep_worse_rounds = config.keep_worse_rounds
        self.initial_model = config.policy.model

    @property
    def rounds(self) -> dict:
        return self.data["rounds"]

    def round(self, r: int) -> dict:
        """Round r's entry (created empty: no stage done)."""
        return self.rounds.setdefault(str(r), {"done": []})

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        tmp.replace(self.path)

    def dir(self, r: int) -> Path:
        """Round r's folder (created)."""
        d = self.out / f"round-{r}"
        d.mkdir(exist_ok=True)
        return d

    def policy_path(self, r: int) -> str:
        """The policy after round r (round 0: the initial model)."""
        return self.initial_model if r == 0 else self.round(r)["policy"]

    def kept(self, r: int) -> int:
        """The last round up to r whose policy was kept (0: the initial policy): a round that the labelers
        found worse than the last kept one is passed over (unless `keep_worse_rounds`)."""
        while r > 0 and self.round(r).get("kept") is False and not self.keep_worse_rounds:
            r -= 1
        return r

    def wait_for(self, r: int, stage: str) -> dict:
        """(Ranks other than 0) wait until rank 0 has recorded `stage` of round `r`, then take its state.
        A file, not a barrier: labeling by people can outlast any collective's timeout."""
        while True:
            if self.path.exists():
                data = json.loads(self.path.read_text())
                if stage in data["rounds"].get(str(r), {}).get("done", []):
                    self.data = data
                    return self.round(r)
            time.sleep(1.0)
