"""The label store on a PostgreSQL server (psycopg 3): what lets several app replicas, on several
machines, share one queue with the promises of the SQLite store.

- Writes serialize on a transaction-scoped advisory lock (`pg_advisory_xact_lock`), taken as each write
  transaction's first statement and released by its commit: the same one-writer-at-a-time rule as
  SQLite's `BEGIN IMMEDIATE`, across every replica. Under READ COMMITTED each later statement sees
  every commit made before the lock was granted, so a claim's load check and its insert are atomic.
- A commit returns once the server has it durable (`synchronous_commit` as the server sets it; on by
  default): a label the app acknowledged survives a `kill -9` of the app and of the server.
- Parameters are bound on the client (`ClientCursor`), so `:name IS NULL` works for None as in SQLite.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from functools import lru_cache
from typing import Iterator

from labeling_app.database import Database, StoreURL
from labeling_app.errors import LabelingError

WRITE_LOCK = 0x616C69676E        # "align": the advisory lock key every replica's writers share
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@lru_cache(maxsize=512)
def to_psycopg(sql: str, named: bool) -> str:
    """The store's SQL (`?` or `:name` parameters) in psycopg's marks (`%s`, `%(name)s`)."""
    sql = sql.replace("%", "%%")
    return _NAMED.sub(r"%(\1)s", sql) if named else sql.replace("?", "%s")


class _Connection:
    """A psycopg connection that takes the store's SQL as sqlite3's does: `execute(sql, args)`."""

    def __init__(self, raw):
        self.raw = raw

    def execute(self, sql: str, args=()):
        return self.raw.execute(to_psycopg(sql, isinstance(args, dict)), args or None)

    def executemany(self, sql: str, rows):
        rows = list(rows)
        cur = self.raw.cursor()
        if rows:
            cur.executemany(to_psycopg(sql, isinstance(rows[0], dict)), rows)
        return cur

    def close(self) -> None:
        self.raw.close()


class PostgresDatabase(Database):
    kind = "postgresql"

    def __init__(self, address: StoreURL):
        super().__init__(address)
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise LabelingError("a postgresql:// store needs psycopg: "
                                "pip install 'psycopg[binary]'") from None
        self._connected = False

    def _open(self) -> _Connection:
        import psycopg

        try:
            raw = psycopg.connect(self.address.target, autocommit=True, connect_timeout=10,
                                  cursor_factory=psycopg.ClientCursor)
        except psycopg.Error as e:
            if self._connected:
                raise                  # the server went away after the store opened: a StorageError
            raise LabelingError(self.open_error(e)) from None
        self._connected = True
        return _Connection(raw)

    @contextmanager
    def _transaction(self) -> Iterator[_Connection]:
        conn = self.connect()
        with conn.raw.transaction():
            conn.raw.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            yield conn

    def storage_failure(self, error: Exception) -> str | None:
        import psycopg

        if isinstance(error, psycopg.errors.DiskFull):
            return "the database server's disk is full"
        if isinstance(error, (psycopg.OperationalError, psycopg.InterfaceError)):
            self.close()                               # a broken connection: the next call opens a new one
            return "the database server cannot be reached"
        return None

    def has_table(self, conn, name: str) -> bool:
        return conn.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() "
                            "AND table_name = ?", (name,)).fetchone() is not None

    def run_script(self, conn, ddl: str) -> None:
        """A migration step; rows it copied with their ids move each identity column's counter past them."""
        for statement in postgres_ddl(ddl).split(";\n"):
            if statement.strip():
                conn.execute(statement)
        self.resync_identities(conn)

    @staticmethod
    def resync_identities(conn) -> None:
        """Move every identity column's counter past the largest id its table holds."""
        identities = conn.execute("SELECT table_name, column_name FROM information_schema.columns "
                                  "WHERE table_schema = current_schema() AND is_identity = 'YES'").fetchall()
        for table, column in identities:
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                         f"COALESCE(MAX({column}), 0) + 1, false) FROM {table}")

    def integrity_check(self) -> str:
        self.read("SELECT 1")
        return "ok"                                   # the server keeps its own pages consistent

    def open_error(self, error: Exception) -> str:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return (f"{self.address.shown}: cannot open the label store ({reason}). Is the server running, "
                f"does the database exist (createdb NAME), and are the user and password right?")


def postgres_ddl(ddl: str) -> str:
    """A migration written for SQLite in PostgreSQL's types: ids become identity columns, integers
    64-bit, REAL double precision. Uniqueness on message JSON (which may exceed a btree entry's 2.7 kB)
    is kept on its md5, with a hash index for the lookups by value."""
    ddl = ddl.replace("INTEGER PRIMARY KEY", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
    ddl = re.sub(r"\bINTEGER\b", "BIGINT", ddl)
    ddl = re.sub(r"\bREAL\b", "DOUBLE PRECISION", ddl)
    ddl = ddl.replace("messages TEXT NOT NULL UNIQUE,", "messages TEXT NOT NULL,")
    ddl = ddl.replace(",\n        UNIQUE (prompt_id, messages)\n", "\n")
    if "CREATE TABLE responses" in ddl:
        ddl += ("CREATE UNIQUE INDEX prompts_unique ON prompts (md5(messages));\n"
                "CREATE INDEX prompts_lookup ON prompts USING hash (messages);\n"
                "CREATE UNIQUE INDEX responses_unique ON responses (prompt_id, md5(messages));\n"
                "CREATE INDEX responses_lookup ON responses USING hash (messages);\n")
    return ddl
