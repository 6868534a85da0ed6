"""Account passwords: scrypt hashes (n = 2^14, r = 8, p = 1) with a random salt, compared in constant
time. `DUMMY_HASH` is what an unknown name is checked against, so that a login costs the same whether
the account exists or not."""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["hash_password", "check_password", "DUMMY_HASH"]


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    return f"scrypt$16384$8$1${salt.hex()}${digest.hex()}"


DUMMY_HASH = hash_password("an account that does not exist", salt=b"\0" * 16)


def check_password(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                             dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)
