"""The labelers' blind evaluation of a round: is the new policy better than the last kept one?

After the policy stage the loop puts comparisons into the label store as their own batches, marked as
evaluation: for each held-out prompt, the new policy's answer against the last kept policy's (batch
`round-R/eval-previous`) and against the initial policy's (`round-R/eval-initial`; in round 1 the two
are one). Which side is the new policy is drawn at random per pair and logged in
`round-R/evaluation-pairs.jsonl`; the app shows them in the same page and form as training pairs (the
store draws the left/right order again per labeler). Their labels never train anything and are left out
of exports unless asked for.

Labels are read as they arrive, in the order they were given: a win of the new policy counts 1, a tie
(or "both bad") ½, a loss 0, into an anytime-valid 95% interval (`foundation.sequential`). A comparison
stops, and its batch is closed, as soon as the interval leaves ½, or at `eval_labels` labels. The round
is kept unless the labelers find it worse than the last kept one (the interval wholly below ½).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from foundation.sequential import WinRateSequence

__all__ = ["comparison_pairs", "EvaluationWatch", "answers_per_prompt", "write_sides", "read_sides"]

OUTCOME = {"tie": 0.5, "both_bad": 0.5}


MAX_ANSWERS = 4     # held-out answers per prompt and policy at most: few prompts end a comparison early


def answers_per_prompt(eval_labels: int, k: int, prompts: int) -> int:
    """Held-out answers each policy needs per prompt so that one comparison can reach `eval_labels`
    labels at k labels a pair (2 for the demo's 240 labels, k = 1, 120 prompts), at most `MAX_ANSWERS`:
    with fewer held-out prompts than that allows, a comparison ends when its pairs do."""
    pairs = -(-eval_labels // k)
    return min(MAX_ANSWERS, max(1, -(-pairs // max(1, prompts))))


def comparison_pairs(prompts: list, new: list[list[str]], old: list[list[str]], *, seed: int, source: str,
                     limit: int | None = None) -> tuple[list[dict], dict[str, str]]:
    """The store's items for one comparison, and the new policy's stored side ("A"/"B") of each pair id.
    `new[j][i]` and `old[j][i]` are the j-th answers of the two policies to prompt i; pairs whose two
    answers are the same text are not asked (nothing to compare). The pairs are shuffled (seeded) and cut
    to `limit` (None: all)."""
    from labeling_app.pairs import pair_key

    rng = random.Random(seed)
    items, sides = [], {}
    for answers_new, answers_old in zip(new, old):
        for prompt, a_new, a_old in zip(prompts, answers_new, answers_old):
            if a_new.strip() == a_old.strip():
                continue
            new_msg, old_msg = [{"role": "assistant", "content": a_new}], [{"role": "assistant",
                                                                             "content": a_old}]
            side = rng.choice("AB")
            a, b = (new_msg, old_msg) if side == "A" else (old_msg, new_msg)
            items.append({"prompt": prompt, "response_a": a, "response_b": b, "source": source})
            sides[pair_key(prompt, a, b)] = side
    rng.shuffle(items)
    items = items[:limit]
    kept = {pair_key(i["prompt"], i["response_a"], i["response_b"]) for i in items}
    return items, {pid: side for pid, side in sides.items() if pid in kept}


@dataclass
class EvaluationWatch:
    """Follows one evaluation batch's labels and closes the batch once the comparison is decided.

    `sides` maps each pair id of the batch to the new policy's stored side (the loop adds the pairs of
    a further answer per prompt while undecided). `poll()` reads the labels given so far, in order, and
    returns True once the comparison is over: decided, or at `max_labels`; `finish()` ends one whose
    pairs ran out."""

    store: object
    batch: str
    sides: dict[str, str]
    max_labels: int
    alpha: float = 0.05
    outcomes: list[float] = field(default_factory=list)
    stopped: str | None = None
    _seen: list[int] = field(default_factory=list)
    _sequence: WinRateSequence | None = None

    def poll(self) -> bool:
        if self.stopped:
            return True
        labels = [lab for lab in self.store.labels() if lab.pair_id in self.sides]
        if self._sequence is None or [lab.id for lab in labels[:len(self._seen)]] != self._seen:
            # first poll, or a label was undone: read them all anew
            self._sequence = WinRateSequence(alpha=self.alpha, horizon=self.max_labels)
            self._seen, self.outcomes = [], []
        sequence = self._sequence
        for lab in labels[len(self._seen):]:
            if sequence.decided() or sequence.n >= self.max_labels:
                break
            x = 1.0 if lab.choice == self.sides[lab.pair_id] else OUTCOME.get(lab.choice, 0.0)
            sequence.update(x)
            self.outcomes.append(x)
            self._seen.append(lab.id)
        if sequence.decided():
            self.stopped = "decided"
        elif sequence.n >= self.max_labels:
            self.stopped = "eval_labels"
        if self.stopped:
            self.store.close_batch(self.batch)
        return self.stopped is not None

    def waiting(self) -> bool:
        """Whether labels are still wanted: not stopped, and the batch still has pairs to label."""
        return not self.poll() and self.store.remaining(batch=self.batch) > 0

    def finish(self) -> None:
        """Stop a comparison whose pairs are all labelled, undecided (no further answers to ask about)."""
        if not self.poll():
            self.stopped = "no pairs left"
            self.store.close_batch(self.batch)

    def result(self) -> dict:
        """The labelers' win rate of the new policy, its anytime-valid interval, counts and why it
        stopped."""
        sequence = self._sequence or WinRateSequence(alpha=self.alpha, horizon=self.max_labels)
        return {"win_rate": sequence.mean, "interval": list(sequence.interval), "labels": sequence.n,
                "wins_ties_losses": [self.outcomes.count(1.0), self.outcomes.count(0.5),
                                     self.outcomes.count(0.0)],
                "pairs": len(self.sides), "stopped": self.stopped or "open"}


def write_sides(path: Path, batch: str, answer: int, sides: dict[str, str]) -> None:
    """Log which stored side is the new policy, per pair of the batch's `answer`-th held-out answers
    (appended in one write: a line per pair; an empty comparison gets a line without a pair)."""
    rows = [{"batch": batch, "answer": answer, "pair_id": pid, "new_policy": side}
            for pid, side in sides.items()]
    lines = "".join(json.dumps(row) + "\n" for row in rows or [{"batch": batch, "answer": answer}])
    with path.open("a", encoding="utf-8") as f:
        f.write(lines)


def read_sides(path: Path, batch: str, answer: int | None = None) -> dict[str, str]:
    """The logged sides of the batch's pairs (of its `answer`-th answers only, if given)."""
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {r["pair_id"]: r["new_policy"] for r in rows
            if r["batch"] == batch and "pair_id" in r and answer in (None, r["answer"])}
