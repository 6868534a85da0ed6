"""`LabelStore`: prompts, candidate responses and the labeling queue's items (pairs, ratings, rankings),
claims and answers, in SQLite (WAL) or on a PostgreSQL server (several app replicas on one database).

Opened by URL (`sqlite:///labels.db`, `sqlite:////abs/path.db`, `postgresql://user:pw@host:5432/db`);
the SQL below is written once for both (`labeling_app.database`). Every write is one transaction that
holds the store's write lock from its first statement, committed before the call returns: a label the
UI acknowledged survives a `kill -9`. Labels are never updated in place; an undo writes a retraction.

The class holds the store's settings (k, gold_rate, the loop's status) and its transactions; the rest
comes in by concern: adding items (`ingest.py`), the one queue that every kind of task shares
(`queue.py`), what pairs add to it (`pair_queue.py`), reading pairs and labels back (`reads.py`).
Ratings and rankings are `store.tasks` (`tasks.py`), on the same queue; accounts and lockouts are
`store.accounts` (`accounts.py`).
"""

from __future__ import annotations

import json
import random
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence, TypeVar

from foundation.errors import ConfigError
from labeling_app.accounts import Accounts
from labeling_app.database import Database, SQLiteDatabase, parse_store_url
from labeling_app.errors import LabelingError
from labeling_app.ingest import Ingest
from labeling_app.pair_queue import PairQueue
from labeling_app.pairs import (
    CHOICES,
    PURPOSES,
    ROLES,
    STRENGTHS,
    Assignment,
    Label,
    Pair,
    candidate_pairs,
    pair_key,
)
from labeling_app.postgres import PostgresDatabase
from labeling_app.queue import Queue
from labeling_app.reads import Reads
from labeling_app.schema import migrate
from labeling_app.tasks import TaskQueue

T = TypeVar("T")

__all__ = ["LabelStore", "Pair", "Assignment", "Label", "CHOICES", "PURPOSES", "ROLES", "STRENGTHS",
           "candidate_pairs", "pair_key"]

def open_database(url: str) -> Database:
    """The database behind a store URL: SQLite, or PostgreSQL (psycopg is imported when one opens)."""
    address = parse_store_url(url)
    return PostgresDatabase(address) if address.kind == "postgresql" else SQLiteDatabase(address)


class LabelStore(Ingest, Queue, PairQueue, Reads):
    """The label store. Thread-safe: each thread uses its own connection.

    >>> store = LabelStore("sqlite:///labels.db", k=3)
    >>> store.accounts.add_labeler("ann", "secret")
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
        self.accounts = Accounts(self.db)                # accounts and lockouts (labeling_app/accounts.py)
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
        with self.write() as conn:
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
                self.mark_completed(conn, None)   # a new k: pairs may have become complete, or open again

    @property
    def k(self) -> int:
        """Labels per pair, as the store holds it now: every replica reads the same value."""
        return int(self._setting("k"))

    @property
    def gold_rate(self) -> float:
        return float(self._setting("gold_rate"))

    def _setting(self, key: str) -> str:
        return self.read("SELECT value FROM meta WHERE key = ?", (key,))[0][0]

    def set_loop_status(self, status: dict) -> None:
        """What a loop driving this store is doing (round, stage, its evaluations so far), for the app:
        every replica's labeling page and admin page read it."""
        with self.write() as conn:
            conn.execute("INSERT INTO meta VALUES ('loop', ?) ON CONFLICT (key) DO UPDATE SET value = "
                         "excluded.value", (json.dumps({**status, "updated": time.time()}),))

    def loop_status(self) -> dict | None:
        rows = self.read("SELECT value FROM meta WHERE key = 'loop'")
        return json.loads(rows[0][0]) if rows else None

    # -- transactions ---------------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator:
        """One write transaction holding the store's write lock (see `labeling_app.database`)."""
        with self.db.write() as conn:
            yield conn

    def read(self, sql: str, args: Sequence | dict = ()) -> list[tuple]:
        return self.db.read(sql, args)

    def draw(self, use: Callable[[random.Random], T]) -> T:
        """`use(rng)` with the store's random generator, one thread at a time (the shown order, gold)."""
        with self._rng_lock:
            return use(self._rng)

    def close(self) -> None:
        self.db.close()

    def integrity_check(self) -> str:
        return self.db.integrity_check()
