"""What a `LabelStore` holds, read back: labels, pairs, counts, a labeler's progress, the labels still
wanted, and the queue's priority hook. A mixin over the store's transactions (`write`, `read`)."""

from __future__ import annotations

import json
import time
from typing import Callable, Sequence

from labeling_app.errors import LabelingError
from labeling_app.pair_queue import LABEL_COLUMNS, LOAD, OPEN_BATCH
from labeling_app.pairs import Label, Pair

__all__ = ["Reads"]

# A pair of an evaluation batch (the loop's blind comparisons of policies).
EVALUATION = "EXISTS (SELECT 1 FROM batches b WHERE b.name = p.batch AND b.purpose = 'evaluation')"


class Reads:
    """Reading a `LabelStore`."""


    def label(self, label_id: int) -> Label:
        return Label(*self.read(LABEL_COLUMNS.format(table="labels") + " WHERE l.id = ?",
                                (label_id,))[0])

    def labels(self, *, labeler: str | None = None, include_retracted: bool = False) -> list[Label]:
        sql = LABEL_COLUMNS.format(table="labels" if include_retracted else "live_labels")
        args: tuple = ()
        if labeler is not None:
            sql, args = sql + " WHERE l.labeler = ?", (labeler,)
        return [Label(*r) for r in self.read(sql + " ORDER BY l.id", args)]

    def retracted_ids(self) -> set[int]:
        return {r[0] for r in self.read("SELECT label_id FROM retractions")}


    def pairs(self, *, batch: str | None = None, include_gold: bool = True,
              include_evaluation: bool = False) -> list[Pair]:
        """The pairs (of `batch`), in insertion order; evaluation batches' pairs only when asked for or when
        `batch` names one."""
        rows = self.read(
            "SELECT p.pair_id, pr.messages, ra.messages, rb.messages, p.gold_choice, p.priority, p.batch, "
            "p.source, ra.provenance, rb.provenance FROM pairs p JOIN prompts pr ON pr.id = p.prompt_id "
            "JOIN responses ra ON ra.id = p.response_a JOIN responses rb ON rb.id = p.response_b "
            "WHERE (:batch IS NULL OR p.batch = :batch) AND (:gold OR p.gold_choice IS NULL) "
            f"AND (:evaluation OR :batch IS NOT NULL OR NOT {EVALUATION}) ORDER BY p.seq",
            {"batch": batch, "gold": include_gold, "evaluation": include_evaluation})
        return [Pair(r[0], json.loads(r[1]), json.loads(r[2]), json.loads(r[3]), r[4], r[5], r[6], r[7],
                     json.loads(r[8]), json.loads(r[9])) for r in rows]

    def label_counts(self, *, batch: str | None = None) -> dict[str, int]:
        """Live labels per non-gold pair."""
        rows = self.read("SELECT p.pair_id, (SELECT COUNT(*) FROM live_labels l WHERE l.pair_seq = p.seq) "
                         "FROM pairs p WHERE p.gold_choice IS NULL AND (:batch IS NULL OR p.batch = :batch)",
                         {"batch": batch})
        return dict(rows)

    def _open_counts(self, batch: str | None) -> list[int]:
        """Live labels per non-gold pair (of `batch`) that the queue still serves (its batch is open)."""
        rows = self.read("SELECT (SELECT COUNT(*) FROM live_labels l WHERE l.pair_seq = p.seq) FROM pairs p "
                         f"WHERE p.gold_choice IS NULL AND (:batch IS NULL OR p.batch = :batch) "
                         f"AND {OPEN_BATCH}", {"batch": batch})
        return [r[0] for r in rows]

    def progress(self, labeler: str, *, since: float | None = None) -> tuple[int, int]:
        """(labels by this labeler since `since` (default: local midnight), pairs still open to them)."""
        if since is None:
            t = time.localtime()
            since = time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))
        done = self.read("SELECT COUNT(*) FROM live_labels WHERE labeler = ? AND created_at >= ?",
                         (labeler, since))[0][0]
        left = self.read(f"SELECT COUNT(*) FROM pairs p WHERE p.gold_choice IS NULL AND p.completed = 0 "
                         f"AND {OPEN_BATCH} AND NOT EXISTS (SELECT 1 FROM assignments y "
                         f"WHERE y.pair_seq = p.seq AND y.labeler = :who AND y.status != 'open') "
                         f"AND {LOAD} < :k", {"who": labeler, "now": time.time(), "k": self.k})[0][0]
        return done, left

    def remaining(self, *, batch: str | None = None) -> int:
        """Labels still needed for every non-gold pair (of `batch`) to reach k; none for a closed batch."""
        return sum(max(0, self.k - n) for n in self._open_counts(batch))

    def prioritize(self, scorer: Callable[[list[Pair]], Sequence[float]], *, batch: str | None = None) -> int:
        """Order the queue: `scorer(pairs)` gives one number per pair, higher first (e.g. reward-model
        uncertainty). Only pairs that still need labels are scored; returns how many."""
        counts = self.label_counts(batch=batch)
        todo = [p for p in self.pairs(batch=batch, include_gold=False) if counts[p.pair_id] < self.k]
        if not todo:
            return 0
        scores = [float(s) for s in scorer(todo)]
        if len(scores) != len(todo):
            raise LabelingError(f"the priority scorer returned {len(scores)} scores for {len(todo)} pairs.")
        with self.write() as conn:
            conn.executemany("UPDATE pairs SET priority = ? WHERE pair_id = ?",
                             [(s, p.pair_id) for s, p in zip(scores, todo)])
        return len(todo)
