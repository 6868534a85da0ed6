"""The one labeling queue: every kind of task (a pair, a rating, a ranking; a loop's blind evaluation
comparisons are pairs of an evaluation batch) is claimed, answered, skipped and undone by the same rules.

- Each non-gold item takes `k` answers from distinct labelers. A claim is written inside the transaction
  that checked the item's load (live answers + unexpired claims), so concurrent labelers never push an
  item past k; a labeler never gets the same item twice (a UNIQUE constraint).
- Gold items, with a known answer, are mixed in at `gold_rate` and do not count toward k.
- A claim expires after `claim_timeout` seconds, and an expired claim still holds while its item has room.
- A skipped item comes back to its labeler once nothing new of its kind is left for them.
- An undo retracts the labeler's last live answer of a kind (answers are never updated in place) and
  gives them that item again, first.
- A retried submit with the same request id gets the answer first stored for it.

What differs per kind lives with the kind: the checks of an answer, how it is stored and how a claim is
shown (`pair_queue.py` for pairs, `tasks.py` for ratings and rankings). A mixin over the store's
transactions (`write`, `draw`), settings (`k`, `gold_rate`, `claim_timeout`) and `accounts`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from foundation.records import Message
from labeling_app.errors import LabelingError, NotAssignedError

__all__ = ["Queue", "Shown", "KINDS", "NOUNS", "LOAD", "OPEN_BATCH", "HELD", "ANSWER_COLUMNS"]

T = TypeVar("T")

KINDS = ("pair", "rating", "ranking")
NOUNS = {"pair": "pair", "rating": "rating task", "ranking": "ranking task"}

# An item's load: its live answers and unexpired claims.
LOAD = ("(SELECT COUNT(*) FROM claims x WHERE x.item_seq = i.seq AND "
        "(x.status = 'done' OR (x.status = 'open' AND x.expires_at > :now)))")

OPEN_BATCH = "NOT EXISTS (SELECT 1 FROM batches b WHERE b.name = i.batch AND b.closed_at IS NOT NULL)"

# A claim `c` on item `i` still holds if unexpired, or if the item still has room, or if gold.
HELD = f"(c.expires_at > :now OR {LOAD} < :k OR i.gold IS NOT NULL)"

# An answer as every kind reads it back: (id, item id, kind, labeler, answer as stored, strength,
# rationale, shown order, seconds, created at, the item's gold answer), from `answers` or `live_answers`.
ANSWER_COLUMNS = ("SELECT a.id, i.item_id, i.kind, a.labeler, a.answer, a.strength, a.rationale, "
                  "a.shown_order, a.seconds, a.created_at, i.gold FROM {table} a JOIN items i "
                  "ON i.seq = a.item_seq")

# A claim `c` on item `i` as the queue shows it (`Queue._shown`).
CLAIMED = "i.item_id, i.kind, i.prompt_id, i.responses, c.shown_order, c.claimed_at"

# Items of :kind that :who has never claimed, of :batch (None: any), in a batch still open.
FRESH = ("i.kind = :kind AND (:batch IS NULL OR i.batch = :batch) AND " + OPEN_BATCH + " AND NOT EXISTS "
         "(SELECT 1 FROM claims y WHERE y.item_seq = i.seq AND y.labeler = :who)")


@dataclass(frozen=True)
class Shown:
    """An item as one labeler's claim shows it: the responses in the order drawn for them."""

    item_id: str
    kind: str
    prompt: list[Message]
    responses: list[list[Message]]
    order: list[int]              # screen position i shows the item's stored response order[i]
    claimed_at: float


class Queue:
    """Claims, answers, skips and undo over the store's items, for every kind."""

    def claim(self, labeler: str, kind: str, show: Callable[[Shown], T], *,
              batch: str | None = None) -> T | None:
        """The labeler's open claim on an item of `kind` if any, else a new claim on the next one (gold at
        `gold_rate`, otherwise the highest priority, then the oldest, then the items they skipped);
        `show(Shown)` of it, or None when nothing is left for them."""
        self.accounts.role(labeler)
        gold_rate = self.gold_rate
        want_gold = gold_rate > 0 and self.draw(lambda rng: rng.random()) < gold_rate
        now = time.time()
        args = {"now": now, "k": self.k, "who": labeler, "kind": kind, "batch": batch}
        with self.write() as conn:
            open_row = conn.execute(
                f"SELECT c.id, {HELD}, {CLAIMED} FROM claims c JOIN items i ON i.seq = c.item_seq "
                "WHERE c.labeler = :who AND c.status = 'open' AND i.kind = :kind ORDER BY c.id LIMIT 1",
                args).fetchone()
            if open_row:
                if open_row[1]:
                    conn.execute("UPDATE claims SET expires_at = ? WHERE id = ?",
                                 (now + self.claim_timeout, open_row[0]))
                    return show(self._shown(conn, *open_row[2:]))
                conn.execute("UPDATE claims SET status = 'expired' WHERE id = ?", (open_row[0],))
            row = None
            item = "i.seq, i.item_id, i.kind, i.prompt_id, i.responses"
            if want_gold:
                row = conn.execute(f"SELECT {item} FROM items i WHERE i.gold IS NOT NULL "
                                   f"AND {FRESH} ORDER BY i.seq LIMIT 1", args).fetchone()
            if row is None:
                row = conn.execute(f"SELECT {item} FROM items i WHERE i.gold IS NULL "
                                   f"AND i.completed = 0 AND {FRESH} AND {LOAD} < :k "
                                   f"ORDER BY i.priority DESC, i.seq LIMIT 1", args).fetchone()
            if row is None:
                skipped = self._reopen_skipped(conn, args)
                return None if skipped is None else show(self._shown(conn, *skipped))
            seq, item_id, kind, prompt_id, responses = row
            n = len(json.loads(responses))
            order = json.dumps(self.draw(lambda rng: rng.sample(range(n), n)))
            conn.execute("INSERT INTO claims (item_seq, labeler, shown_order, claimed_at, expires_at, "
                         "status) VALUES (?, ?, ?, ?, ?, 'open')",
                         (seq, labeler, order, now, now + self.claim_timeout))
            return show(self._shown(conn, item_id, kind, prompt_id, responses, order, now))

    def _reopen_skipped(self, conn, args: dict) -> tuple | None:
        """When nothing new is left for a labeler, the items they skipped come back (oldest skip first)
        while they still need answers: a skip puts an item at the end of that labeler's queue. The claim
        reopened (`CLAIMED`), or None."""
        row = conn.execute(f"SELECT c.id, {CLAIMED} FROM claims c JOIN items i ON i.seq = c.item_seq "
                           f"WHERE c.labeler = :who AND c.status = 'skipped' AND i.kind = :kind "
                           f"AND i.completed = 0 AND (:batch IS NULL OR i.batch = :batch) AND {OPEN_BATCH} "
                           f"AND {LOAD} < :k ORDER BY c.expires_at LIMIT 1", args).fetchone()
        if row is None:
            return None
        now = args["now"]
        conn.execute("UPDATE claims SET status = 'open', claimed_at = ?, expires_at = ? WHERE id = ?",
                     (now, now + self.claim_timeout, row[0]))
        return (*row[1:-1], now)

    @staticmethod
    def _shown(conn, item_id: str, kind: str, prompt_id: int, responses: str, order: str,
               claimed_at: float) -> Shown:
        """The claimed item's texts, read in one statement (a round trip counts on a database server)."""
        ids, order = json.loads(responses), json.loads(order)
        marks = ",".join("?" * len(ids))
        texts = dict(conn.execute(f"SELECT -1, messages FROM prompts WHERE id = ? UNION ALL "
                                  f"SELECT id, messages FROM responses WHERE id IN ({marks})",
                                  (prompt_id, *ids)).fetchall())
        return Shown(item_id, kind, json.loads(texts[-1]), [json.loads(texts[ids[i]]) for i in order], order,
                     claimed_at)

    def answer(self, labeler: str, item_id: str, kind: str, stored: Callable[[list[int]], str], *,
               strength: int | None = None, rationale: str = "", request_id: str | None = None) -> tuple:
        """Store the labeler's answer on their open claim of `item_id`: `stored(shown order)` is the answer
        as stored (in the item's own order); returns its row (`ANSWER_COLUMNS`) once it is committed. A
        `request_id` (any string the client makes up per answer) makes the call idempotent: a retry after
        a lost reply gets the answer first stored for it instead of an error."""
        self.accounts.role(labeler)
        noun = NOUNS[kind]
        now, k = time.time(), self.k                 # read before the write lock, as a claim does
        with self.write() as conn:
            if request_id is not None:
                done = conn.execute("SELECT a.id, i.kind FROM answers a JOIN items i ON i.seq = a.item_seq "
                                    "WHERE a.labeler = ? AND a.request_id = ?",
                                    (labeler, request_id)).fetchone()
                if done and done[1] != kind:
                    raise LabelingError(f"request id {request_id!r} of {labeler!r} was used for a "
                                        f"{NOUNS[done[1]]} already; make a new id for each answer.")
                if done:
                    return conn.execute(ANSWER_COLUMNS.format(table="answers") + " WHERE a.id = ?",
                                        (done[0],)).fetchone()
            row = conn.execute(
                f"SELECT c.id, c.status, c.shown_order, c.claimed_at, {HELD}, i.completed, i.seq, i.gold "
                "FROM claims c JOIN items i ON i.seq = c.item_seq "
                "WHERE i.item_id = :item AND i.kind = :kind AND c.labeler = :who",
                {"now": now, "k": k, "item": item_id, "kind": kind, "who": labeler}).fetchone()
            if row is None:
                raise NotAssignedError(f"{noun} {item_id!r} is not assigned to {labeler!r}; "
                                       f"ask for the next {noun}.")
            claim_id, status, order, claimed_at, still_yours, completed, seq, gold = row
            if status != "open" or not still_yours:
                raise NotAssignedError(self._refusal(labeler, noun, item_id, status, completed))
            value, seconds = stored(json.loads(order)), max(0.0, now - claimed_at)
            answer_id = conn.execute(
                "INSERT INTO answers (claim_id, item_seq, labeler, answer, strength, rationale, shown_order, "
                "seconds, created_at, request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (claim_id, seq, labeler, value, strength, rationale, order, seconds, now,
                 request_id)).fetchone()[0]
            conn.execute("UPDATE claims SET status = 'done' WHERE id = ?", (claim_id,))
            self.mark_completed(conn, seq)
        return answer_id, item_id, kind, labeler, value, strength, rationale, order, seconds, now, gold

    def _refusal(self, labeler: str, noun: str, item_id: str, status: str, completed: bool) -> str:
        """Why an answer on a claim that is not open any more is refused, as it is."""
        if status == "done":
            return f"{labeler!r} has labeled {noun} {item_id!r} already; undo it to change it."
        if status == "skipped":
            return f"{labeler!r} skipped {noun} {item_id!r}; nothing was stored; go on with the next {noun}."
        if completed:
            return (f"the claim of {labeler!r} on {noun} {item_id!r} expired (after {self.claim_timeout:g} "
                    f"s) and it has its {self.k} labels from others; nothing was stored; go on with the "
                    f"next {noun}.")
        return (f"the claim of {labeler!r} on {noun} {item_id!r} expired (after {self.claim_timeout:g} s); "
                f"nothing was stored; ask for the next {noun} (it may be this one again).")

    def skip_item(self, labeler: str, item_id: str, kind: str) -> None:
        """Give the item back: others may answer it, and this labeler sees it again once nothing new of
        its kind is left for them (the end of their queue)."""
        with self.write() as conn:
            # expires_at records when it was skipped: the order in which skipped items come back
            n = conn.execute("UPDATE claims SET status = 'skipped', expires_at = ? "
                             "WHERE labeler = ? AND status = 'open' AND "
                             "item_seq = (SELECT seq FROM items WHERE item_id = ? AND kind = ?)",
                             (time.time(), labeler, item_id, kind)).rowcount
        if not n:
            raise NotAssignedError(f"{NOUNS[kind]} {item_id!r} is not open for {labeler!r}; nothing to skip.")

    def retract_last(self, labeler: str, kind: str) -> int | None:
        """Retract the labeler's last live answer of `kind` and give them its item again, first; the
        retracted answer's id, or None if there is none."""
        now = time.time()
        with self.write() as conn:
            row = conn.execute("SELECT a.id, a.claim_id, a.item_seq FROM live_answers a JOIN items i "
                               "ON i.seq = a.item_seq WHERE a.labeler = ? AND i.kind = ? "
                               "ORDER BY a.id DESC LIMIT 1", (labeler, kind)).fetchone()
            if row is None:
                return None
            answer_id, claim_id, seq = row
            conn.execute("INSERT INTO retractions (answer_id, labeler, created_at) VALUES (?, ?, ?)",
                         (answer_id, labeler, now))
            conn.execute("UPDATE claims SET status = 'open', claimed_at = ?, expires_at = ? WHERE id = ?",
                         (now, now + self.claim_timeout, claim_id))
            conn.execute("UPDATE claims SET status = 'expired' WHERE labeler = ? AND status = 'open' "
                         "AND id != ? AND item_seq IN (SELECT seq FROM items WHERE kind = ?)",
                         (labeler, claim_id, kind))
            self.mark_completed(conn, seq)
        return answer_id

    @staticmethod
    def mark_completed(conn, seq: int | None) -> None:
        """Keep `items.completed` (k live answers) current for one item, or all with None; k as the
        transaction sees it (no round trip of its own under the write lock)."""
        count = ("UPDATE items SET completed = CASE WHEN (SELECT COUNT(*) FROM live_answers a "
                 "WHERE a.item_seq = items.seq) >= (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'k') "
                 "THEN 1 ELSE 0 END WHERE gold IS NULL")
        if seq is None:
            conn.execute(count)
        else:
            conn.execute(count + " AND seq = ?", (seq,))
