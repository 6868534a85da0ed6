"""The store's SQLite file: its URL, what to say when it cannot be opened, and what a full or failing
disk looks like (with a log line at most once a minute)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import urllib.parse
from pathlib import Path

from foundation.errors import ConfigError

__all__ = ["parse_store_url", "open_error", "is_storage_failure", "OncePerMinute"]


def is_storage_failure(error: sqlite3.OperationalError) -> bool:
    message = str(error).lower()
    return "disk is full" in message or "disk i/o error" in message or "database or disk is full" in message


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



def open_error(path: Path, error: Exception) -> str:
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


def parse_store_url(url: str) -> tuple[Path, dict[str, str]]:
    """`sqlite:///relative.db`, `sqlite:////absolute.db` or a bare path -> (path, query options)."""
    if "://" not in url:
        return Path(url), {}
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme != "sqlite":
        raise ConfigError(f"store URL {url!r}: only sqlite:/// is supported (e.g. sqlite:///labels.db); "
                          f"got the scheme {parsed.scheme!r}.")
    path = url.split("://", 1)[1].split("?", 1)[0]
    if not path.startswith("/") or path == "/":
        raise ConfigError(f"store URL {url!r}: write sqlite:///labels.db (relative) or sqlite:////abs/labels.db.")
    options = dict(urllib.parse.parse_qsl(parsed.query))
    unknown = set(options) - {"synchronous", "claim_timeout"}
    if unknown:
        raise ConfigError(f"store URL {url!r}: unknown option(s) {sorted(unknown)}; "
                          f"known: synchronous, claim_timeout.")
    return Path(path[1:]), options
