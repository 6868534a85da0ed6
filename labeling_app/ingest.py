"""Items into a `LabelStore` (`insert_item`, for every kind); pairs from dicts, preference records or
candidate sets, in named batches (training, or a blind evaluation's), and labels made in another tool.
Each call is one transaction, all or nothing; an item already stored (the same prompt and responses) is
counted, not added again. A mixin over the store's transactions (`write`, `read`)."""

from __future__ import annotations

import json
import time
from typing import Iterable

from foundation.records import Message
from labeling_app.errors import LabelingError
from labeling_app.pairs import CHOICES, PURPOSES, candidate_pairs, canonical_json, check_label_input, pair_key

__all__ = ["Ingest"]


class Ingest:
    """Adding pairs and imported labels to a `LabelStore`."""

    def check_text(self, messages: list[Message], what: str) -> None:
        size = sum(len(m["content"]) for m in messages)
        if size > self.max_text_chars:
            raise LabelingError(f"{what} has {size:,} characters, more than the store's limit of "
                                f"{self.max_text_chars:,}; shorten it or raise `max_text_chars`.")

    def insert_item(self, conn, kind: str, key: str, prompt: list[Message], responses: list[list[Message]],
                    provenance: list[dict], *, gold: str | None, batch: str | None, source: str | None,
                    priority: float, now: float) -> bool:
        """One item of `kind` (its content hash `key`) unless it is stored already; whether it was added."""
        if conn.execute("SELECT 1 FROM items WHERE item_id = ?", (key,)).fetchone():
            return False
        prompt_id = self.prompt_id(conn, prompt, now)
        ids = [self.response_id(conn, prompt_id, r, p, now) for r, p in zip(responses, provenance)]
        conn.execute("INSERT INTO items (item_id, kind, prompt_id, responses, gold, batch, source, priority, "
                     "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (key, kind, prompt_id, json.dumps(ids), gold, batch, source, priority, now))
        return True

    @staticmethod
    def prompt_id(conn, prompt: list[Message], now: float) -> int:
        conn.execute("INSERT INTO prompts (messages, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                     (canonical_json(prompt), now))
        row = conn.execute("SELECT id FROM prompts WHERE messages = ?", (canonical_json(prompt),)).fetchone()
        return row[0]

    @staticmethod
    def response_id(conn, prompt_id: int, messages: list[Message], provenance: dict, now: float) -> int:
        conn.execute("INSERT INTO responses (prompt_id, messages, provenance, created_at) "
                     "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                     (prompt_id, canonical_json(messages), canonical_json(provenance), now))
        return conn.execute("SELECT id FROM responses WHERE prompt_id = ? AND messages = ?",
                            (prompt_id, canonical_json(messages))).fetchone()[0]

    def add_pairs(self, items: Iterable[dict], *, batch: str | None = None,
                  purpose: str = "train") -> tuple[int, int]:
        """Add pairs given as dicts with `prompt`, `response_a`, `response_b` (message lists) and
        optionally `provenance_a`/`provenance_b`, `gold_choice`, `source`, `priority` (higher is labeled
        first, e.g. a reward model's uncertainty; default 0) and `where` (for errors).
        `purpose="evaluation"` marks the batch as a blind evaluation: labelled as any other, never in
        training data or a default export. All or nothing, in one transaction; returns (added, already
        present)."""
        added = present = 0
        now = time.time()
        rows = list(items)
        if purpose not in PURPOSES:
            raise LabelingError(f"a batch's purpose must be one of {', '.join(PURPOSES)}, got {purpose!r}.")
        if purpose != "train" and not batch:
            raise LabelingError(f"pairs for {purpose} need a batch name (batch=...).")
        for item in rows:
            where = item.get("where", "pair")
            for key in ("prompt", "response_a", "response_b"):
                self.check_text(item[key], f"{where}: `{key}`")
            if item.get("gold_choice") not in (None, *CHOICES):
                raise LabelingError(f"{where}: gold_choice must be one of {CHOICES}, "
                                    f"got {item['gold_choice']!r}.")
        with self.write() as conn:
            if batch:
                self.declare_batch(conn, batch, purpose, now)
            for item in rows:
                prompt, sides = item["prompt"], [item["response_a"], item["response_b"]]
                new = self.insert_item(conn, "pair", pair_key(prompt, *sides), prompt, sides,
                                       [item.get("provenance_a") or {}, item.get("provenance_b") or {}],
                                       gold=item.get("gold_choice"), batch=batch, source=item.get("source"),
                                       priority=float(item.get("priority", 0.0)), now=now)
                added, present = added + new, present + (not new)
        return added, present

    @staticmethod
    def declare_batch(conn, batch: str, purpose: str, now: float) -> None:
        conn.execute("INSERT INTO batches (name, purpose, created_at) VALUES (?, ?, ?) "
                     "ON CONFLICT DO NOTHING", (batch, purpose, now))
        held = conn.execute("SELECT purpose FROM batches WHERE name = ?", (batch,)).fetchone()[0]
        if held != purpose:
            raise LabelingError(f"batch {batch!r} holds {held} pairs; {purpose} pairs go into another batch.")

    def close_batch(self, batch: str) -> int:
        """Stop serving the batch's pairs that still lack labels (an evaluation that has its answer);
        labels already given stay. Returns the labels the batch still lacked."""
        left = self.remaining(batch=batch)
        with self.write() as conn:
            self.declare_batch(conn, batch, self.batch_purpose(batch), time.time())
            conn.execute("UPDATE batches SET closed_at = ? WHERE name = ? AND closed_at IS NULL",
                         (time.time(), batch))
        return left

    def batch_purpose(self, batch: str) -> str:
        """"evaluation" for a batch marked so, else "train"."""
        rows = self.read("SELECT purpose FROM batches WHERE name = ?", (batch,))
        return rows[0][0] if rows else "train"

    def evaluation_batches(self) -> list[str]:
        return [r[0] for r in self.read("SELECT name FROM batches WHERE purpose = 'evaluation' "
                                        "ORDER BY name")]

    def add_records(self, records, *, gold: bool = False, batch: str | None = None) -> tuple[int, int]:
        """Pairs from preference records (chosen as A). With `gold=True` the record's preference is
        the known answer (a tie record gives a gold tie)."""
        return self.add_pairs(({"prompt": r.prompt, "response_a": r.chosen, "response_b": r.rejected,
                                "source": r.source, "where": r.pair_id or f"record {i + 1}",
                                "gold_choice": ("tie" if r.tie else "A") if gold else None}
                               for i, r in enumerate(records)), batch=batch)

    def add_candidates(self, sets, *, batch: str | None = None,
                       pairs_per_prompt: int | None = None) -> tuple[int, int]:
        """Pairs from candidate sets (K responses per prompt, with provenance): every two distinct
        responses, or the first `pairs_per_prompt` of those combinations."""
        return self.add_pairs(candidate_pairs(sets, pairs_per_prompt=pairs_per_prompt), batch=batch)

    def import_labels(self, items: Iterable[dict]) -> tuple[int, int]:
        """Labels made in another tool (`labeling_app.label_studio`), each `{pair_id, labeler, choice}` (the
        choice in stored order) with optional `strength`, `seconds`, `created_at`: an account for each new
        labeler, an assignment marked done and the label, all in one transaction. A labeler's second label
        on a pair is left out, so importing a file twice adds nothing. Returns (added, already there)."""
        rows, now = list(items), time.time()
        for item in rows:
            check_label_input(item["pair_id"], item["choice"], item.get("strength", 3), "", None)
        added = present = 0
        with self.write() as conn:
            for item in rows:
                seq = conn.execute("SELECT seq FROM items WHERE item_id = ? AND kind = 'pair'",
                                   (item["pair_id"],)).fetchone()
                if seq is None:
                    raise LabelingError(f"no pair {item['pair_id']!r} in the store; add the pairs first.")
                self.accounts.add_imported(conn, item["labeler"], now)
                if conn.execute("SELECT 1 FROM claims WHERE labeler = ? AND item_seq = ?",
                                (item["labeler"], seq[0])).fetchone():
                    present += 1
                    continue
                created, seconds = item.get("created_at") or now, max(0.0, item.get("seconds") or 0.0)
                claim = conn.execute(
                    "INSERT INTO claims (item_seq, labeler, shown_order, claimed_at, expires_at, status) "
                    "VALUES (?, ?, '[0, 1]', ?, ?, 'done') RETURNING id",
                    (seq[0], item["labeler"], created - seconds, created)).fetchone()[0]
                conn.execute("INSERT INTO answers (claim_id, item_seq, labeler, answer, strength, rationale, "
                             "shown_order, seconds, created_at) VALUES (?, ?, ?, ?, ?, '', '[0, 1]', ?, ?)",
                             (claim, seq[0], item["labeler"], item["choice"], item.get("strength", 3),
                              seconds, created))
                self.mark_completed(conn, seq[0])
                added += 1
        return added, present
