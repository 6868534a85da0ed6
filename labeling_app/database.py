"""Where the label store lives: its URL and the database behind it, SQLite (one machine) or PostgreSQL
(several app replicas on several machines), behind one interface that `LabelStore` writes its SQL to:

- `connect()`: this thread's connection (one per thread and process);
- `write()`: one transaction that holds the store's write lock from its first statement, so that a
  claim checks a pair's load and writes in one step on every replica (SQLite: `BEGIN IMMEDIATE`;
  PostgreSQL: a transaction-scoped advisory lock); committed before it returns;
- `read(sql, args)`: a query outside any write.

The store's SQL is written once, in the dialect both accept (`ON CONFLICT`, `RETURNING`, `?` and
`:name` parameters); the PostgreSQL connection rewrites the parameter marks for psycopg. A full disk or
a lost server becomes a `StorageError` (nothing stored is lost; try again), logged once a minute.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from foundation.errors import ConfigError
from labeling_app.errors import LabelingError, StorageError

__all__ = ["StoreURL", "parse_store_url", "Database", "SQLiteDatabase", "OncePerMinute"]

STORE_OPTIONS = {"sqlite": {"synchronous", "claim_timeout"}, "postgresql": {"claim_timeout"}}
TRY_AGAIN = "nothing you submitted before is lost. Try again in a minute."


@dataclass(frozen=True)
class StoreURL:
    kind: str                                  # "sqlite" | "postgresql"
    target: str                                # the file, or the server URL without our options
    options: dict = field(default_factory=dict)
    shown: str = ""                            # for messages: the URL with its password hidden


def parse_store_url(url: str) -> StoreURL:
    """`sqlite:///relative.db`, `sqlite:////absolute.db`, a bare path, or
    `postgresql://user:password@host:port/dbname` (also `postgres://`); `?claim_timeout=SECONDS` on
    either, `?synchronous=full|normal|extra` on SQLite."""
    if "://" not in url:
        return StoreURL("sqlite", url, {}, url)
    parsed = urllib.parse.urlparse(url)
    scheme = {"postgres": "postgresql", "postgresql+psycopg": "postgresql"}.get(parsed.scheme, parsed.scheme)
    if scheme not in STORE_OPTIONS:
        raise ConfigError(f"store URL {url!r}: use sqlite:///labels.db or postgresql://user:password@host:"
                          f"port/dbname; got the scheme {parsed.scheme!r}.")
    options = dict(urllib.parse.parse_qsl(parsed.query))
    unknown = set(options) - STORE_OPTIONS[scheme]
    if unknown:
        raise ConfigError(f"store URL {url!r}: unknown option(s) {sorted(unknown)}; "
                          f"known: {', '.join(sorted(STORE_OPTIONS[scheme]))}.")
    if scheme == "postgresql":
        if not parsed.path.strip("/"):
            raise ConfigError(f"store URL {url!r}: name the database: postgresql://user@host:5432/labels.")
        netloc = parsed.netloc.rsplit("@", 1)
        shown_netloc = (netloc[0].split(":")[0] + ":***@" + netloc[1]
                        if len(netloc) == 2 and ":" in netloc[0] else parsed.netloc)
        target = urllib.parse.urlunparse(("postgresql", parsed.netloc, parsed.path, "", "", ""))
        return StoreURL("postgresql", target, options, f"postgresql://{shown_netloc}{parsed.path}")
    path = url.split("://", 1)[1].split("?", 1)[0]
    if not path.startswith("/") or path == "/":
        raise ConfigError(f"store URL {url!r}: write sqlite:///labels.db (relative) or sqlite:////abs/labels.db.")
    return StoreURL("sqlite", path[1:], options, url)


class OncePerMinute:
    """A log line at most once a minute, however often it is asked for (a full disk under 50
    labelers would otherwise write hundreds of lines a second)."""

    def __init__(self, seconds: float = 60.0):
        self.seconds, self.last, self.suppressed = seconds, 0.0, 0
        self._lock = threading.Lock()

    def warn(self, message: str) -> None:
        import logging

        with self._lock:
            now = time.time()
            if now - self.last < self.seconds:
                self.suppressed += 1
                return
            extra = f" ({self.suppressed} more since the last line)" if self.suppressed else ""
            self.last, self.suppressed = now, 0
        logging.getLogger("labeling_app").warning(message + extra)


class Database:
    """What both backends share: a connection per thread and process, and writers of this process
    queued on a lock, in order (rather than in the database's own retry loop, whose sleep-and-retry
    starves unlucky threads: seconds of tail latency under 50 labelers)."""

    kind = "?"

    def __init__(self, address: StoreURL):
        self.address = address
        self.options = address.options
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._storage_log = OncePerMinute()

    def connect(self):
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = self._open()
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def read(self, sql: str, args=()) -> list[tuple]:
        try:
            return self.connect().execute(sql, args).fetchall()
        except Exception as e:                     # noqa: BLE001 - only a storage failure is mapped
            self._raise_if_storage_failure(e)
            raise

    @contextmanager
    def write(self) -> Iterator:
        with self._write_lock:
            try:
                with self._transaction() as conn:
                    yield conn
            except Exception as e:                 # noqa: BLE001 - only a storage failure is mapped
                self._raise_if_storage_failure(e)
                raise

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _raise_if_storage_failure(self, error: Exception) -> None:
        reason = self.storage_failure(error)
        if reason:
            self._storage_log.warn(f"{self.address.shown}: cannot write ({error}); labels are refused "
                                   f"until it can")
            raise StorageError(f"Labels cannot be saved right now ({reason}); {TRY_AGAIN}") from None

    # what each backend supplies
    def _open(self): raise NotImplementedError
    def _transaction(self): raise NotImplementedError
    def storage_failure(self, error: Exception) -> str | None: raise NotImplementedError
    def has_table(self, conn, name: str) -> bool: raise NotImplementedError
    def run_script(self, conn, ddl: str) -> None: raise NotImplementedError
    def integrity_check(self) -> str: raise NotImplementedError
    def open_error(self, error: Exception) -> str: raise NotImplementedError
    def prepare(self) -> None: """Make the store's location ready (a folder; nothing for a server)."""


class SQLiteDatabase(Database):
    """A file in WAL mode; `synchronous=full` by default (a committed label survives a power cut)."""

    kind = "sqlite"

    def __init__(self, address: StoreURL):
        super().__init__(address)
        self.path = Path(address.target)
        self.synchronous = address.options.get("synchronous", "full").upper()
        if self.synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ConfigError(f"store URL option synchronous={self.synchronous.lower()!r}: "
                              f"use full, normal or extra.")

    def prepare(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise LabelingError(sqlite_open_error(self.path, e)) from None

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.DatabaseError as e:
            raise LabelingError(sqlite_open_error(self.path, e)) from None
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 60000")
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self.connect()
        conn.execute("BEGIN IMMEDIATE")                 # holds the write lock from the first statement
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:                     # SQLite may have rolled back already (disk full)
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def storage_failure(self, error: Exception) -> str | None:
        message = str(error).lower()
        full = ("disk is full", "disk i/o error", "database or disk is full")
        if isinstance(error, sqlite3.OperationalError) and any(m in message for m in full):
            return "the store's disk is full or failing"
        return None

    def has_table(self, conn, name: str) -> bool:
        return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                            (name,)).fetchone() is not None

    def run_script(self, conn, ddl: str) -> None:
        for statement in ddl.split(";\n"):
            if statement.strip():
                conn.execute(statement)

    def integrity_check(self) -> str:
        return self.read("PRAGMA integrity_check")[0][0]

    def open_error(self, error: Exception) -> str:
        return sqlite_open_error(self.path, error)


def sqlite_open_error(path: Path, error: Exception) -> str:
    """What went wrong opening the store file, and what to do."""
    message = getattr(error, "strerror", None) or str(error)
    folder = Path(path).parent
    if isinstance(error, (FileExistsError, NotADirectoryError)):
        return (f"{path}: cannot write the label store: a file stands where its folder should be. "
                f"Point --store at a writable location, e.g. sqlite:///$HOME/labels.db.")
    if ("readonly" in message or "read-only" in message.lower() or "unable to open" in message
            or isinstance(error, PermissionError) or (folder.exists() and not os.access(folder, os.W_OK))):
        return (f"{path}: cannot write the label store ({message}); its folder {folder} is read-only or "
                f"missing. Point --store at a writable location, e.g. sqlite:///$HOME/labels.db.")
    return f"{path}: cannot open the label store ({message}); is it an SQLite file?"
