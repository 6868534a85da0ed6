"""The pairwise labeling queue of a `LabelStore`: claims, labels, skips and undo.

Each non-gold pair takes `k` labels from distinct labelers. A claim is an assignment row written inside
the same transaction that checked the pair's load (live labels + unexpired claims), so concurrent
labelers never push a pair past k. A labeler never gets the same pair twice (a UNIQUE constraint). Gold
pairs, with a known answer, are mixed in at `gold_rate` and do not count toward k. A skipped pair comes
back to its labeler once nothing new is left for them; an undo retracts the last label (labels are never
updated in place) and reopens its pair. A mixin over the store's transactions (`write`, `read`).
"""

from __future__ import annotations

import json
import time

from labeling_app.errors import NotAssignedError
from labeling_app.pairs import SWAP, Assignment, Label, check_label_input

__all__ = ["PairQueue", "LOAD", "OPEN_BATCH", "HELD", "LABEL_COLUMNS"]

# A pair's load: its live labels and unexpired claims.
LOAD = ("(SELECT COUNT(*) FROM assignments x WHERE x.pair_seq = p.seq AND "
        "(x.status = 'done' OR (x.status = 'open' AND x.expires_at > :now)))")

OPEN_BATCH = "NOT EXISTS (SELECT 1 FROM batches b WHERE b.name = p.batch AND b.closed_at IS NOT NULL)"

# An assignment `a` on pair `p` still holds if unexpired, or if the pair still has room, or if gold.
HELD = f"(a.expires_at > :now OR {LOAD} < :k OR p.gold_choice IS NOT NULL)"

LABEL_COLUMNS = ("SELECT l.id, p.pair_id, l.labeler, l.choice, l.strength, l.rationale, l.shown_order, "
                 "l.seconds, l.created_at FROM {table} l JOIN pairs p ON p.seq = l.pair_seq")


class PairQueue:
    """Claims, labels, skips and undo of a `LabelStore`'s pairs."""


    def _assignment(self, conn, assignment_id: int) -> Assignment:
        row = conn.execute(
            "SELECT p.pair_id, pr.messages, ra.messages, rb.messages, a.shown_order, a.claimed_at "
            "FROM assignments a JOIN pairs p ON p.seq = a.pair_seq JOIN prompts pr ON pr.id = p.prompt_id "
            "JOIN responses ra ON ra.id = p.response_a JOIN responses rb ON rb.id = p.response_b "
            "WHERE a.id = ?", (assignment_id,)).fetchone()
        pair_id, prompt, ra, rb, order, claimed = row
        left, right = (ra, rb) if order == "AB" else (rb, ra)
        return Assignment(pair_id, json.loads(prompt), json.loads(left), json.loads(right), order, claimed)

    def next_assignment(self, labeler: str, *, batch: str | None = None) -> Assignment | None:
        """The labeler's open claim if any, else a new claim on the next pair (gold at `gold_rate`,
        otherwise the highest priority, then the oldest); None when nothing is left for them."""
        self.role(labeler)
        gold_rate = self.gold_rate
        want_gold, order = self.draw(lambda rng: (gold_rate > 0 and rng.random() < gold_rate,
                                                  rng.choice(("AB", "BA"))))
        now = time.time()
        with self.write() as conn:
            open_row = conn.execute(
                f"SELECT a.id, {HELD} FROM assignments a JOIN pairs p ON p.seq = a.pair_seq "
                "WHERE a.labeler = :who AND a.status = 'open' ORDER BY a.id LIMIT 1",
                {"now": now, "k": self.k, "who": labeler}).fetchone()
            if open_row:
                if open_row[1]:
                    conn.execute("UPDATE assignments SET expires_at = ? WHERE id = ?",
                                 (now + self.claim_timeout, open_row[0]))
                    return self._assignment(conn, open_row[0])
                conn.execute("UPDATE assignments SET status = 'expired' WHERE id = ?", (open_row[0],))
            args = {"now": now, "k": self.k, "who": labeler, "batch": batch}
            fresh = ("NOT EXISTS (SELECT 1 FROM assignments y WHERE y.pair_seq = p.seq AND y.labeler = :who) "
                     f"AND (:batch IS NULL OR p.batch = :batch) AND {OPEN_BATCH}")
            row = None
            if want_gold:
                row = conn.execute(f"SELECT p.seq FROM pairs p WHERE p.gold_choice IS NOT NULL AND {fresh} "
                                   "ORDER BY p.seq LIMIT 1", args).fetchone()
            if row is None:
                row = conn.execute(f"SELECT p.seq FROM pairs p WHERE p.gold_choice IS NULL "
                                   f"AND p.completed = 0 AND {fresh} AND {LOAD} < :k "
                                   f"ORDER BY p.priority DESC, p.seq LIMIT 1", args).fetchone()
            if row is None:
                return self._reopen_skipped(conn, labeler, args)
            new_id = conn.execute("INSERT INTO assignments "
                                  "(pair_seq, labeler, shown_order, claimed_at, expires_at, status) "
                                  "VALUES (?, ?, ?, ?, ?, 'open') RETURNING id",
                                  (row[0], labeler, order, now, now + self.claim_timeout)).fetchone()[0]
            return self._assignment(conn, new_id)

    def _reopen_skipped(self, conn, labeler: str, args: dict) -> Assignment | None:
        """When nothing new is left for a labeler, the pairs they skipped come back (oldest skip first)
        while they still need labels: a skip puts a pair at the end of that labeler's queue."""
        row = conn.execute(f"SELECT a.id FROM assignments a JOIN pairs p ON p.seq = a.pair_seq "
                           f"WHERE a.labeler = :who AND a.status = 'skipped' AND p.completed = 0 "
                           f"AND (:batch IS NULL OR p.batch = :batch) AND {OPEN_BATCH} "
                           f"AND {LOAD} < :k "
                           f"ORDER BY a.expires_at LIMIT 1", args).fetchone()
        if row is None:
            return None
        now = args["now"]
        conn.execute("UPDATE assignments SET status = 'open', claimed_at = ?, expires_at = ? WHERE id = ?",
                     (now, now + self.claim_timeout, row[0]))
        return self._assignment(conn, row[0])

    def submit(self, labeler: str, pair_id: str, choice: str, strength: int = 3,
               rationale: str = "", request_id: str | None = None) -> Label:
        """Store a label; `choice` is as shown ("A" = left). Returns once the label is committed.
        A `request_id` (any string the client makes up per label) makes the call idempotent: a retry
        after a lost reply returns the label first stored for it instead of an error."""
        check_label_input(pair_id, choice, strength, rationale, request_id)
        rationale = rationale or ""
        self.role(labeler)
        now = time.time()
        with self.write() as conn:
            if request_id is not None:
                done = conn.execute("SELECT id FROM labels WHERE labeler = ? AND request_id = ?",
                                    (labeler, request_id)).fetchone()
                if done:
                    return self._label_in(conn, done[0])
            row = conn.execute(
                f"SELECT a.id, a.status, a.shown_order, a.claimed_at, {HELD}, p.completed "
                "FROM assignments a JOIN pairs p ON p.seq = a.pair_seq "
                "WHERE p.pair_id = :pair AND a.labeler = :who",
                {"now": now, "k": self.k, "pair": pair_id, "who": labeler}).fetchone()
            if row is None:
                raise NotAssignedError(f"pair {pair_id!r} is not assigned to {labeler!r}; "
                                       f"ask for the next pair.")
            assignment_id, status, order, claimed_at, still_yours, completed = row
            if status != "open" or not still_yours:
                raise NotAssignedError(self._refusal(labeler, pair_id, status, completed))
            stored = choice if order == "AB" else SWAP[choice]
            label_id = conn.execute(
                "INSERT INTO labels (assignment_id, pair_seq, labeler, choice, strength, rationale, "
                "shown_order, seconds, created_at, request_id) SELECT ?, pair_seq, ?, ?, ?, ?, ?, ?, ?, ? "
                "FROM assignments WHERE id = ? RETURNING id",
                (assignment_id, labeler, stored, strength, rationale, order, max(0.0, now - claimed_at), now,
                 request_id, assignment_id)).fetchone()[0]
            conn.execute("UPDATE assignments SET status = 'done' WHERE id = ?", (assignment_id,))
            self.mark_completed(conn, conn.execute("SELECT pair_seq FROM assignments WHERE id = ?",
                                                   (assignment_id,)).fetchone()[0])
            return Label(label_id, pair_id, labeler, stored, strength, rationale, order,
                         now - claimed_at, now)

    def _refusal(self, labeler: str, pair_id: str, status: str, completed: bool) -> str:
        """Why a submit for an assignment that is not open any more is refused, as it is."""
        if status == "done":
            return f"{labeler!r} has labeled pair {pair_id!r} already; undo it to change it."
        if status == "skipped":
            return f"{labeler!r} skipped pair {pair_id!r}; nothing was stored; go on with the next pair."
        if completed:
            return (f"the claim of {labeler!r} on pair {pair_id!r} expired (after {self.claim_timeout:g} s) "
                    f"and the pair has its {self.k} labels from others; nothing was stored; go on with the "
                    f"next pair.")
        return (f"the claim of {labeler!r} on pair {pair_id!r} expired (after {self.claim_timeout:g} s); "
                f"nothing was stored; ask for the next pair (it may be this one again).")

    def _label_in(self, conn, label_id: int) -> Label:
        return Label(*conn.execute(LABEL_COLUMNS.format(table="labels") + " WHERE l.id = ?",
                                   (label_id,)).fetchone())

    def skip(self, labeler: str, pair_id: str) -> None:
        """Give the pair back: others may label it, and this labeler sees it again once nothing new is
        left for them (the end of their queue)."""
        with self.write() as conn:
            # expires_at records when it was skipped: the order in which skipped pairs come back
            n = conn.execute("UPDATE assignments SET status = 'skipped', expires_at = ? "
                             "WHERE labeler = ? AND status = 'open' AND "
                             "pair_seq = (SELECT seq FROM pairs WHERE pair_id = ?)",
                             (time.time(), labeler, pair_id)).rowcount
        if not n:
            raise NotAssignedError(f"pair {pair_id!r} is not open for {labeler!r}; nothing to skip.")

    def undo(self, labeler: str) -> Label | None:
        """Retract the labeler's last live label and reopen that pair for them; None if there is none."""
        now = time.time()
        with self.write() as conn:
            row = conn.execute("SELECT l.id, l.assignment_id FROM live_labels l WHERE l.labeler = ? "
                               "ORDER BY l.id DESC LIMIT 1", (labeler,)).fetchone()
            if row is None:
                return None
            conn.execute("INSERT INTO retractions VALUES (?, ?, ?)", (row[0], labeler, now))
            # Back to the front of this labeler's queue, with a fresh claim.
            conn.execute("UPDATE assignments SET status = 'open', claimed_at = ?, expires_at = ? "
                         "WHERE id = ?", (now, now + self.claim_timeout, row[1]))
            conn.execute("UPDATE assignments SET status = 'expired' "
                         "WHERE labeler = ? AND status = 'open' AND id != ?", (labeler, row[1]))
            self.mark_completed(conn, conn.execute("SELECT pair_seq FROM assignments WHERE id = ?",
                                                   (row[1],)).fetchone()[0])
        return self.label(row[0])
