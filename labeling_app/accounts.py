"""Labeler accounts and lockouts (`LabelStore.accounts`): who may label and who may administer (roles,
passwords checked in constant time, lockouts after repeated failures), in the store's database, so that
every account change is one committed write like any label and every replica sees it."""

from __future__ import annotations

import time

from foundation.errors import ConfigError
from labeling_app.errors import AuthError, LabelingError
from labeling_app.pairs import ROLES
from labeling_app.passwords import DUMMY_HASH, check_password, hash_password

__all__ = ["Accounts"]


class Accounts:
    """Accounts and lockouts in a store's database (`labeling_app.database.Database`)."""

    def __init__(self, db):
        self.db = db

    def add_labeler(self, name: str, password: str, role: str = "labeler") -> None:
        if role not in ROLES:
            raise ConfigError(f"role must be one of {', '.join(ROLES)}, got {role!r}.")
        if (not name or len(name) > 64
                or not name.replace("-", "").replace("_", "").replace(".", "").isalnum()):
            raise LabelingError(f"user name {name!r}: use 1-64 letters, digits, '-', '_' or '.'.")
        if len(password) < 4:
            raise LabelingError(f"user {name!r}: the password must have at least 4 characters.")
        with self.db.write() as conn:
            if conn.execute("SELECT 1 FROM labelers WHERE name = ?", (name,)).fetchone():
                raise LabelingError(f"user {name!r} exists already; choose another name.")
            conn.execute("INSERT INTO labelers VALUES (?, ?, ?, ?)",
                         (name, role, hash_password(password), time.time()))

    def authenticate(self, name: str, password: str) -> bool:
        """The right password of an account that is not locked. An unknown name is checked against a
        dummy hash and a locked account's password is still checked, so each reply costs the same."""
        row = self.db.read("SELECT password_hash FROM labelers WHERE name = ?", (name,))
        right = check_password(password, row[0][0] if row else DUMMY_HASH)
        return bool(row) and right and not self.is_locked(name)

    # -- lockouts ---------------------------------------------------------------------------------

    def lock(self, name: str, seconds: float, reason: str) -> bool:
        """Lock an existing account for `seconds` (e.g. after repeated wrong passwords); False if unknown."""
        now = time.time()
        with self.db.write() as conn:
            if not conn.execute("SELECT 1 FROM labelers WHERE name = ?", (name,)).fetchone():
                return False
            conn.execute("INSERT INTO lockouts VALUES (?, ?, ?, ?) ON CONFLICT (labeler) DO UPDATE SET "
                         "locked_at = excluded.locked_at, until = excluded.until, reason = excluded.reason",
                         (name, now, now + seconds, reason))
        return True

    def unlock(self, name: str) -> bool:
        """Lift a lockout (an admin's action); False when the account was not locked."""
        with self.db.write() as conn:
            return conn.execute("DELETE FROM lockouts WHERE labeler = ?", (name,)).rowcount > 0

    def is_locked(self, name: str) -> bool:
        return bool(self.db.read("SELECT 1 FROM lockouts WHERE labeler = ? AND until > ?",
                                 (name, time.time())))

    def lockouts(self) -> list[tuple[str, float, float, str]]:
        """(labeler, locked at, until, reason) of the accounts locked now."""
        return [tuple(r) for r in self.db.read("SELECT labeler, locked_at, until, reason FROM lockouts "
                                            "WHERE until > ? ORDER BY locked_at", (time.time(),))]

    def role(self, name: str | None) -> str:
        row = self.db.read("SELECT role FROM labelers WHERE name = ?", (name,)) if name else []
        if not row:
            raise AuthError(f"unknown user {name!r}: "
                            f"ask an admin to run `align label add-user {name or 'NAME'}`.")
        return row[0][0]

    def require_admin(self, name: str | None) -> None:
        if self.role(name) != "admin":
            raise AuthError(f"user {name!r} is a labeler; this needs an admin account.")

    def labelers(self) -> list[tuple[str, str]]:
        return [tuple(r) for r in self.db.read("SELECT name, role FROM labelers ORDER BY name")]

    @staticmethod
    def add_imported(conn, name: str, now: float) -> None:
        """An account for a labeler whose labels come from another tool, inside the caller's transaction:
        a random password, so that nobody logs in as them until an admin gives the account one."""
        import secrets

        if not conn.execute("SELECT 1 FROM labelers WHERE name = ?", (name,)).fetchone():
            conn.execute("INSERT INTO labelers VALUES (?, 'labeler', ?, ?)",
                         (name, hash_password(secrets.token_urlsafe(24)), now))
