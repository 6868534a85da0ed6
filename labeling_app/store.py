"""`LabelStore`: prompts, candidate responses, pairs, assignments and labels, in SQLite (WAL) or on a
PostgreSQL server (several app replicas on one database).

Opened by URL (`sqlite:///labels.db`, `sqlite:////abs/path.db`, `postgresql://user:pw@host:5432/db`);
the SQL below is written once for both (`labeling_app.database`). Every write is one transaction that
holds the store's write lock from its first statement, committed before the call returns: a label the
UI acknowledged survives a `kill -9`. Labels are never updated in place;
an undo writes a retraction.

The queue: each non-gold pair takes `k` labels from distinct labelers. A claim is an assignment row
written inside the same transaction that checked the pair's load (live labels + unexpired claims),
so concurrent labelers never push a pair past k. A labeler never gets the same pair twice (a UNIQUE
constraint). Gold pairs, with a known answer, are mixed in at `gold_rate` and do not count toward k.
"""

from __future__ import annotations

import json
import random
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Sequence

from foundation.errors import ConfigError
from foundation.records import Message
from labeling_app.accounts import Accounts
from labeling_app.database import Database, SQLiteDatabase, parse_store_url
from labeling_app.errors import LabelingError, NotAssignedError
from labeling_app.pairs import (
    CHOICES,
    PURPOSES,
    ROLES,
    STRENGTHS,
    SWAP,
    Assignment,
    Label,
    Pair,
    candidate_pairs,
    canonical_json,
    check_answer_fields,
    pair_key,
)
from labeling_app.postgres import PostgresDatabase
from labeling_app.schema import migrate
from labeling_app.tasks import TaskQueue

__all__ = ["LabelStore", "Pair", "Assignment", "Label", "CHOICES", "PURPOSES", "ROLES", "STRENGTHS",
           "candidate_pairs", "pair_key"]

def open_database(url: str) -> Database:
    """The database behind a store URL: SQLite, or PostgreSQL (psycopg is imported when one opens)."""
    address = parse_store_url(url)
    return PostgresDatabase(address) if address.kind == "postgresql" else SQLiteDatabase(address)


def _check_label_input(pair_id, choice, strength, rationale, request_id) -> None:
    """Strict types for a label from a form or an API call: a refusal names the field and the value."""
    check_answer_fields("pair_id", pair_id, rationale, request_id)
    if not isinstance(choice, str) or choice not in CHOICES:
        raise LabelingError(f"choice must be one of {', '.join(CHOICES)}, got {choice!r}.")
    if isinstance(strength, bool) or not isinstance(strength, int) or strength not in STRENGTHS:
        raise LabelingError(f"strength must be an integer 1-4 (negligibly, slightly, better, significantly "
                            f"better), got {strength!r}.")


class LabelStore(Accounts):
    """The label store. Thread-safe: each thread uses its own connection. Accounts and lockouts:
    `labeling_app.accounts`.

    >>> store = LabelStore("sqlite:///labels.db", k=3)
    >>> store.add_labeler("ann", "secret")
    >>> store.add_records(records)                    # or add_candidates(candidate_sets)
    >>> a = store.next_assignment("ann")              # None when the queue is empty for ann
    >>> store.submit("ann", a.pair_id, "A", strength=3)   # "A" as shown, i.e. the left response
    """

    def __init__(self, url: str = "sqlite:///labels.db", *, k: int | None = None,
                 gold_rate: float | None = None, claim_timeout: float = 600.0, max_text_chars: int = 20_000,
                 seed: int | None = None, change_settings: bool = False):
        """`k` and `gold_rate` are what the store promises, kept in it and read by every replica: None
        takes the stored values (3 and 0 for a new store); a value that differs from the stored one is
        refused unless `change_settings=True` (`align label settings`), and then holds for every replica."""
        self.db = open_database(url)
        options = self.db.options
        self.url = url
        if k is not None and k < 1:
            raise ConfigError(f"`k` (labels per pair) must be at least 1, got {k}.")
        if gold_rate is not None and not 0.0 <= gold_rate < 1.0:
            raise ConfigError(f"`gold_rate` must be in [0, 1), got {gold_rate}.")
        self.claim_timeout = float(options.get("claim_timeout", claim_timeout))
        self.max_text_chars = max_text_chars
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self.tasks = TaskQueue(self)                  # ratings and rankings (labeling_app/tasks.py)
        self.db.prepare()
        try:
            self.migrated_from, _ = migrate(self.db)
            self._settle_settings(k, gold_rate, change_settings)
        except (LabelingError, ConfigError):
            raise
        except Exception as e:                         # noqa: BLE001 - the database's own errors
            raise LabelingError(self.db.open_error(e)) from None

    def _settle_settings(self, k: int | None, gold_rate: float | None, change: bool) -> None:
        """k and gold_rate: as stored; a new store takes the given values (or 3 and 0); a different
        value for a store that has one is refused unless `change`."""
        with self._write() as conn:
            stored = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('k', 'gold_rate')")
                          .fetchall())
            wanted = {"k": k, "gold_rate": gold_rate}
            differs = [key for key, value in wanted.items()
                       if value is not None and key in stored and float(stored[key]) != float(value)]
            if differs and not change:
                asked = ", ".join(f"{key} = {wanted[key]:g}" for key in differs)
                held = ", ".join(f"{key} = {float(stored[key]):g}" for key in differs)
                raise ConfigError(f"{self.url} promises {held}; this opener asked for {asked}. Leave it out "
                                  f"to use the store's, or change it deliberately for every replica with "
                                  f"`align label settings --store {self.url} --{differs[0]} "
                                  f"{wanted[differs[0]]:g}`.")
            new_k = k if k is not None else int(stored.get("k", 3))
            new_rate = gold_rate if gold_rate is not None else float(stored.get("gold_rate", 0.0))
            conn.executemany("INSERT INTO meta VALUES (?, ?) "
                             "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                             [("k", str(new_k)), ("gold_rate", str(new_rate))])
            if stored.get("k") != str(new_k):
                self._mark_completed(conn, None)   # a new k: pairs may have become complete, or open again

    @property
    def k(self) -> int:
        """Labels per pair, as the store holds it now: every replica reads the same value."""
        return int(self._setting("k"))

    @property
    def gold_rate(self) -> float:
        return float(self._setting("gold_rate"))

    def _setting(self, key: str) -> str:
        return self._read("SELECT value FROM meta WHERE key = ?", (key,))[0][0]

    def set_loop_status(self, status: dict) -> None:
        """What a loop driving this store is doing (round, stage, its evaluations so far), for the app:
        every replica's labeling page and admin page read it."""
        with self._write() as conn:
            conn.execute("INSERT INTO meta VALUES ('loop', ?) ON CONFLICT (key) DO UPDATE SET value = "
                         "excluded.value", (json.dumps({**status, "updated": time.time()}),))

    def loop_status(self) -> dict | None:
        rows = self._read("SELECT value FROM meta WHERE key = 'loop'")
        return json.loads(rows[0][0]) if rows else None

    def _mark_completed(self, conn, pair_seq: int | None) -> None:
        """Keep `pairs.completed` (k live labels) current for one pair, or all with None."""
        conn.execute("UPDATE pairs SET completed = CASE WHEN (SELECT COUNT(*) FROM live_labels l "
                     "WHERE l.pair_seq = pairs.seq) >= ? THEN 1 ELSE 0 END "
                     "WHERE gold_choice IS NULL AND (? IS NULL OR seq = ?)", (self.k, pair_seq, pair_seq))

    # -- transactions ---------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator:
        """One write transaction holding the store's write lock (see `labeling_app.database`)."""
        with self.db.write() as conn:
            yield conn

    def _read(self, sql: str, args: Sequence | dict = ()) -> list[tuple]:
        return self.db.read(sql, args)

    def close(self) -> None:
        self.db.close()

    def integrity_check(self) -> str:
        return self.db.integrity_check()

    # -- adding pairs -----------------------------------------------------------------------------

    def _check_text(self, messages: list[Message], what: str) -> None:
        size = sum(len(m["content"]) for m in messages)
        if size > self.max_text_chars:
            raise LabelingError(f"{what} has {size:,} characters, more than the store's limit of "
                                f"{self.max_text_chars:,}; shorten it or raise `max_text_chars`.")

    def _insert_pair(self, conn, prompt: list[Message], a: list[Message],
                     b: list[Message], *, provenance_a: dict, provenance_b: dict, gold_choice: str | None,
                     batch: str | None, source: str | None, priority: float, now: float) -> bool:
        key = pair_key(prompt, a, b)
        if conn.execute("SELECT 1 FROM pairs WHERE pair_id = ?", (key,)).fetchone():
            return False
        prompt_id = self._prompt_id(conn, prompt, now)
        ids = [self._response_id(conn, prompt_id, side, prov, now)
               for side, prov in ((a, provenance_a), (b, provenance_b))]
        conn.execute("INSERT INTO pairs (pair_id, prompt_id, response_a, response_b, gold_choice, batch, "
                     "source, priority, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (key, prompt_id, ids[0], ids[1], gold_choice, batch, source, priority, now))
        return True

    @staticmethod
    def _prompt_id(conn, prompt: list[Message], now: float) -> int:
        conn.execute("INSERT INTO prompts (messages, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                     (canonical_json(prompt), now))
        row = conn.execute("SELECT id FROM prompts WHERE messages = ?", (canonical_json(prompt),)).fetchone()
        return row[0]

    @staticmethod
    def _response_id(conn, prompt_id: int, messages: list[Message], provenance: dict, now: float) -> int:
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
                self._check_text(item[key], f"{where}: `{key}`")
            if item.get("gold_choice") not in (None, *CHOICES):
                raise LabelingError(f"{where}: gold_choice must be one of {CHOICES}, "
                                    f"got {item['gold_choice']!r}.")
        with self._write() as conn:
            if batch:
                self._declare_batch(conn, batch, purpose, now)
            for item in rows:
                new = self._insert_pair(conn, item["prompt"], item["response_a"], item["response_b"],
                                        provenance_a=item.get("provenance_a") or {},
                                        provenance_b=item.get("provenance_b") or {},
                                        gold_choice=item.get("gold_choice"), batch=batch,
                                        source=item.get("source"), priority=float(item.get("priority", 0.0)),
                                        now=now)
                added, present = added + new, present + (not new)
        return added, present

    @staticmethod
    def _declare_batch(conn, batch: str, purpose: str, now: float) -> None:
        conn.execute("INSERT INTO batches (name, purpose, created_at) VALUES (?, ?, ?) "
                     "ON CONFLICT DO NOTHING", (batch, purpose, now))
        held = conn.execute("SELECT purpose FROM batches WHERE name = ?", (batch,)).fetchone()[0]
        if held != purpose:
            raise LabelingError(f"batch {batch!r} holds {held} pairs; {purpose} pairs go into another batch.")

    def close_batch(self, batch: str) -> int:
        """Stop serving the batch's pairs that still lack labels (an evaluation that has its answer);
        labels already given stay. Returns the labels the batch still lacked."""
        left = self.remaining(batch=batch)
        with self._write() as conn:
            self._declare_batch(conn, batch, self.batch_purpose(batch), time.time())
            conn.execute("UPDATE batches SET closed_at = ? WHERE name = ? AND closed_at IS NULL",
                         (time.time(), batch))
        return left

    def batch_purpose(self, batch: str) -> str:
        """"evaluation" for a batch marked so, else "train"."""
        rows = self._read("SELECT purpose FROM batches WHERE name = ?", (batch,))
        return rows[0][0] if rows else "train"

    def evaluation_batches(self) -> list[str]:
        return [r[0] for r in self._read("SELECT name FROM batches WHERE purpose = 'evaluation' "
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

    # -- the queue --------------------------------------------------------------------------------

    def import_labels(self, items: Iterable[dict]) -> tuple[int, int]:
        """Labels made in another tool (`labeling_app.label_studio`), each `{pair_id, labeler, choice}` (the
        choice in stored order) with optional `strength`, `seconds`, `created_at`: an account for each new
        labeler, an assignment marked done and the label, all in one transaction. A labeler's second label
        on a pair is left out, so importing a file twice adds nothing. Returns (added, already there)."""
        rows, now = list(items), time.time()
        for item in rows:
            _check_label_input(item["pair_id"], item["choice"], item.get("strength", 3), "", None)
        added = present = 0
        with self._write() as conn:
            for item in rows:
                seq = conn.execute("SELECT seq FROM pairs WHERE pair_id = ?", (item["pair_id"],)).fetchone()
                if seq is None:
                    raise LabelingError(f"no pair {item['pair_id']!r} in the store; add the pairs first.")
                self._add_imported(conn, item["labeler"], now)
                if conn.execute("SELECT 1 FROM assignments WHERE labeler = ? AND pair_seq = ?",
                                (item["labeler"], seq[0])).fetchone():
                    present += 1
                    continue
                created, seconds = item.get("created_at") or now, max(0.0, item.get("seconds") or 0.0)
                assignment = conn.execute(
                    "INSERT INTO assignments (pair_seq, labeler, shown_order, claimed_at, expires_at, "
                    "status) VALUES (?, ?, 'AB', ?, ?, 'done') RETURNING id",
                    (seq[0], item["labeler"], created - seconds, created)).fetchone()[0]
                conn.execute("INSERT INTO labels (assignment_id, pair_seq, labeler, choice, strength, "
                             "rationale, shown_order, seconds, created_at) "
                             "VALUES (?, ?, ?, ?, ?, '', 'AB', ?, ?)",
                             (assignment, seq[0], item["labeler"], item["choice"], item.get("strength", 3),
                              seconds, created))
                self._mark_completed(conn, seq[0])
                added += 1
        return added, present

    def _assignment(self, conn, assignment_id: int) -> Assignment:
        row = conn.execute(
            "SELECT p.pair_id, pr.messages, ra.messages, rb.messages, a.shown_order, a.claimed_at "
            "FROM assignments a JOIN pairs p ON p.seq = a.pair_seq JOIN prompts pr ON pr.id = p.prompt_id "
            "JOIN responses ra ON ra.id = p.response_a JOIN responses rb ON rb.id = p.response_b "
            "WHERE a.id = ?", (assignment_id,)).fetchone()
        pair_id, prompt, ra, rb, order, claimed = row
        left, right = (ra, rb) if order == "AB" else (rb, ra)
        return Assignment(pair_id, json.loads(prompt), json.loads(left), json.loads(right), order, claimed)

    _LOAD = ("(SELECT COUNT(*) FROM assignments x WHERE x.pair_seq = p.seq AND "
             "(x.status = 'done' OR (x.status = 'open' AND x.expires_at > :now)))")
    _OPEN_BATCH = "NOT EXISTS (SELECT 1 FROM batches b WHERE b.name = p.batch AND b.closed_at IS NOT NULL)"
    # An assignment `a` on pair `p` still holds if unexpired, or if the pair still has room, or if gold.
    _HELD = f"(a.expires_at > :now OR {_LOAD} < :k OR p.gold_choice IS NOT NULL)"

    def next_assignment(self, labeler: str, *, batch: str | None = None) -> Assignment | None:
        """The labeler's open claim if any, else a new claim on the next pair (gold at `gold_rate`,
        otherwise the highest priority, then the oldest); None when nothing is left for them."""
        self.role(labeler)
        with self._rng_lock:
            want_gold = self.gold_rate > 0 and self._rng.random() < self.gold_rate
            order = self._rng.choice(("AB", "BA"))
        now = time.time()
        with self._write() as conn:
            open_row = conn.execute(
                f"SELECT a.id, {self._HELD} FROM assignments a JOIN pairs p ON p.seq = a.pair_seq "
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
                     f"AND (:batch IS NULL OR p.batch = :batch) AND {self._OPEN_BATCH}")
            row = None
            if want_gold:
                row = conn.execute(f"SELECT p.seq FROM pairs p WHERE p.gold_choice IS NOT NULL AND {fresh} "
                                   "ORDER BY p.seq LIMIT 1", args).fetchone()
            if row is None:
                row = conn.execute(f"SELECT p.seq FROM pairs p WHERE p.gold_choice IS NULL "
                                   f"AND p.completed = 0 AND {fresh} AND {self._LOAD} < :k "
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
                           f"AND (:batch IS NULL OR p.batch = :batch) AND {self._OPEN_BATCH} "
                           f"AND {self._LOAD} < :k "
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
        _check_label_input(pair_id, choice, strength, rationale, request_id)
        rationale = rationale or ""
        self.role(labeler)
        now = time.time()
        with self._write() as conn:
            if request_id is not None:
                done = conn.execute("SELECT id FROM labels WHERE labeler = ? AND request_id = ?",
                                    (labeler, request_id)).fetchone()
                if done:
                    return self._label_in(conn, done[0])
            row = conn.execute(
                f"SELECT a.id, a.status, a.shown_order, a.claimed_at, {self._HELD}, p.completed "
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
            self._mark_completed(conn, conn.execute("SELECT pair_seq FROM assignments WHERE id = ?",
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
        return Label(*conn.execute(self._LABEL_COLUMNS.format(table="labels") + " WHERE l.id = ?",
                                   (label_id,)).fetchone())

    def skip(self, labeler: str, pair_id: str) -> None:
        """Give the pair back: others may label it, and this labeler sees it again once nothing new is
        left for them (the end of their queue)."""
        with self._write() as conn:
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
        with self._write() as conn:
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
            self._mark_completed(conn, conn.execute("SELECT pair_seq FROM assignments WHERE id = ?",
                                                    (row[1],)).fetchone()[0])
        return self.label(row[0])

    # -- reading ----------------------------------------------------------------------------------

    _LABEL_COLUMNS = ("SELECT l.id, p.pair_id, l.labeler, l.choice, l.strength, l.rationale, l.shown_order, "
                      "l.seconds, l.created_at FROM {table} l JOIN pairs p ON p.seq = l.pair_seq")

    def label(self, label_id: int) -> Label:
        return Label(*self._read(self._LABEL_COLUMNS.format(table="labels") + " WHERE l.id = ?",
                                 (label_id,))[0])

    def labels(self, *, labeler: str | None = None, include_retracted: bool = False) -> list[Label]:
        sql = self._LABEL_COLUMNS.format(table="labels" if include_retracted else "live_labels")
        args: tuple = ()
        if labeler is not None:
            sql, args = sql + " WHERE l.labeler = ?", (labeler,)
        return [Label(*r) for r in self._read(sql + " ORDER BY l.id", args)]

    def retracted_ids(self) -> set[int]:
        return {r[0] for r in self._read("SELECT label_id FROM retractions")}

    _EVALUATION = ("EXISTS (SELECT 1 FROM batches b WHERE b.name = p.batch AND b.purpose = 'evaluation')")

    def pairs(self, *, batch: str | None = None, include_gold: bool = True,
              include_evaluation: bool = False) -> list[Pair]:
        """The pairs (of `batch`), in insertion order; evaluation batches' pairs only when asked for or when
        `batch` names one."""
        rows = self._read(
            "SELECT p.pair_id, pr.messages, ra.messages, rb.messages, p.gold_choice, p.priority, p.batch, "
            "p.source, ra.provenance, rb.provenance FROM pairs p JOIN prompts pr ON pr.id = p.prompt_id "
            "JOIN responses ra ON ra.id = p.response_a JOIN responses rb ON rb.id = p.response_b "
            "WHERE (:batch IS NULL OR p.batch = :batch) AND (:gold OR p.gold_choice IS NULL) "
            f"AND (:evaluation OR :batch IS NOT NULL OR NOT {self._EVALUATION}) ORDER BY p.seq",
            {"batch": batch, "gold": include_gold, "evaluation": include_evaluation})
        return [Pair(r[0], json.loads(r[1]), json.loads(r[2]), json.loads(r[3]), r[4], r[5], r[6], r[7],
                     json.loads(r[8]), json.loads(r[9])) for r in rows]

    def label_counts(self, *, batch: str | None = None) -> dict[str, int]:
        """Live labels per non-gold pair."""
        rows = self._read("SELECT p.pair_id, (SELECT COUNT(*) FROM live_labels l WHERE l.pair_seq = p.seq) "
                          "FROM pairs p WHERE p.gold_choice IS NULL AND (:batch IS NULL OR p.batch = :batch)",
                          {"batch": batch})
        return dict(rows)

    def _open_counts(self, batch: str | None) -> list[int]:
        """Live labels per non-gold pair (of `batch`) that the queue still serves (its batch is open)."""
        rows = self._read("SELECT (SELECT COUNT(*) FROM live_labels l WHERE l.pair_seq = p.seq) FROM pairs p "
                          f"WHERE p.gold_choice IS NULL AND (:batch IS NULL OR p.batch = :batch) "
                          f"AND {self._OPEN_BATCH}", {"batch": batch})
        return [r[0] for r in rows]

    def progress(self, labeler: str, *, since: float | None = None) -> tuple[int, int]:
        """(labels by this labeler since `since` (default: local midnight), pairs still open to them)."""
        if since is None:
            t = time.localtime()
            since = time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))
        done = self._read("SELECT COUNT(*) FROM live_labels WHERE labeler = ? AND created_at >= ?",
                          (labeler, since))[0][0]
        left = self._read(f"SELECT COUNT(*) FROM pairs p WHERE p.gold_choice IS NULL AND p.completed = 0 "
                          f"AND {self._OPEN_BATCH} AND NOT EXISTS (SELECT 1 FROM assignments y "
                          f"WHERE y.pair_seq = p.seq AND y.labeler = :who AND y.status != 'open') "
                          f"AND {self._LOAD} < :k", {"who": labeler, "now": time.time(), "k": self.k})[0][0]
        return done, left

    def remaining(self, *, batch: str | None = None) -> int:
        """Labels still needed for every non-gold pair (of `batch`) to reach k; none for a closed batch."""
        return sum(max(0, self.k - n) for n in self._open_counts(batch))

    # -- priority hook ----------------------------------------------------------------------------

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
        with self._write() as conn:
            conn.executemany("UPDATE pairs SET priority = ? WHERE pair_id = ?",
                             [(s, p.pair_id) for s, p in zip(scores, todo)])
        return len(todo)
