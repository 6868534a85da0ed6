"""What a `LabelStore` holds, read back: labels, pairs, counts, a labeler's progress, the labels still
wanted, and the queue's priority hook. A mixin over the store's transactions (`write`, `read`)."""

from __future__ import annotations

import json
import time
from typing import Callable, Sequence

from labeling_app.errors import LabelingError
from labeling_app.pair_queue import LABEL_COLUMNS, as_label
from labeling_app.pairs import Label, Pair
from labeling_app.queue import LOAD, OPEN_BATCH

__all__ = ["Reads"]

# A pair of an evaluation batch (the loop's blind comparisons of policies).
EVALUATION = "EXISTS (SELECT 1 FROM batches b WHERE b.name = i.batch AND b.purpose = 'evaluation')"

# The pairs among the queue's items (`i`), gold or not.
PAIRS = "items i WHERE i.kind = 'pair'"


class Reads:
    """Reading a `LabelStore`."""


    def label(self, label_id: int) -> Label:
        return as_label(self.read(LABEL_COLUMNS.format(table="answers") + " AND a.id = ?", (label_id,))[0])

    def labels(self, *, labeler: str | None = None, include_retracted: bool = False) -> list[Label]:
        sql = LABEL_COLUMNS.format(table="answers" if include_retracted else "live_answers")
        args: tuple = ()
        if labeler is not None:
            sql, args = sql + " AND a.labeler = ?", (labeler,)
        return [as_label(r) for r in self.read(sql + " ORDER BY a.id", args)]

    def retracted_ids(self) -> set[int]:
        """The ids of the pairs' retracted labels."""
        return {r[0] for r in self.read("SELECT r.answer_id FROM retractions r JOIN answers a ON "
                                        "a.id = r.answer_id JOIN items i ON i.seq = a.item_seq "
                                        "WHERE i.kind = 'pair'")}


    def pairs(self, *, batch: str | None = None, include_gold: bool = True,
              include_evaluation: bool = False) -> list[Pair]:
        """The pairs (of `batch`), in insertion order; evaluation batches' pairs only when asked for or when
        `batch` names one."""
        chosen = ("i.kind = 'pair' AND (:batch IS NULL OR i.batch = :batch) AND (:gold OR i.gold IS NULL) "
                  f"AND (:evaluation OR :batch IS NOT NULL OR NOT {EVALUATION})")
        args = {"batch": batch, "gold": include_gold, "evaluation": include_evaluation}
        rows = self.read("SELECT i.item_id, pr.messages, i.responses, i.gold, i.priority, i.batch, i.source "
                         f"FROM items i JOIN prompts pr ON pr.id = i.prompt_id WHERE {chosen} ORDER BY i.seq",
                         args)
        responses = {r[0]: (json.loads(r[1]), json.loads(r[2])) for r in self.read(
            "SELECT r.id, r.messages, r.provenance FROM responses r WHERE r.prompt_id IN "
            f"(SELECT i.prompt_id FROM items i WHERE {chosen})", args)}
        pairs = []
        for item_id, prompt, ids, gold, priority, batch_name, source in rows:
            (a, provenance_a), (b, provenance_b) = (responses[i] for i in json.loads(ids))
            pairs.append(Pair(item_id, json.loads(prompt), a, b, gold, priority, batch_name, source,
                              provenance_a, provenance_b))
        return pairs

    def label_counts(self, *, batch: str | None = None) -> dict[str, int]:
        """Live labels per non-gold pair."""
        rows = self.read("SELECT i.item_id, (SELECT COUNT(*) FROM live_answers a WHERE a.item_seq = i.seq) "
                         f"FROM {PAIRS} AND i.gold IS NULL AND (:batch IS NULL OR i.batch = :batch)",
                         {"batch": batch})
        return dict(rows)

    def _open_counts(self, batch: str | None) -> list[int]:
        """Live labels per non-gold pair (of `batch`) that the queue still serves (its batch is open)."""
        rows = self.read("SELECT (SELECT COUNT(*) FROM live_answers a WHERE a.item_seq = i.seq) "
                         f"FROM {PAIRS} AND i.gold IS NULL AND (:batch IS NULL OR i.batch = :batch) "
                         f"AND {OPEN_BATCH}", {"batch": batch})
        return [r[0] for r in rows]

    def progress(self, labeler: str, *, since: float | None = None) -> tuple[int, int]:
        """(labels by this labeler since `since` (default: local midnight), pairs still open to them)."""
        if since is None:
            t = time.localtime()
            since = time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))
        done = self.read("SELECT COUNT(*) FROM live_answers a JOIN items i ON i.seq = a.item_seq "
                         "WHERE i.kind = 'pair' AND a.labeler = ? AND a.created_at >= ?",
                         (labeler, since))[0][0]
        left = self.read(f"SELECT COUNT(*) FROM {PAIRS} AND i.gold IS NULL AND i.completed = 0 "
                         f"AND {OPEN_BATCH} AND NOT EXISTS (SELECT 1 FROM claims y "
                         f"WHERE y.item_seq = i.seq AND y.labeler = :who AND y.status != 'open') "
                         f"AND {LOAD} < :k", {"who": labeler, "now": time.time(), "k": self.k})[0][0]
        return done, left

    def remaining(self, *, batch: str | None = None) -> int:
        """Labels still needed for every non-gold pair (of `batch`) to reach k; none for a closed batch."""
        return sum(max(0, self.k - n) for n in self._open_counts(batch))

    def wanted(self, *, batch: str | None = None) -> int:
        """Labels every open non-gold pair (of `batch`) needs in all, those already given included."""
        return self.k * len(self._open_counts(batch))

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
            conn.executemany("UPDATE items SET priority = ? WHERE item_id = ?",
                             [(s, p.pair_id) for s, p in zip(scores, todo)])
        return len(todo)
