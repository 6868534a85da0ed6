"""`AppConfig`: what `align label serve --config app.yaml` reads (every field optional)."""

from __future__ import annotations

from dataclasses import dataclass, field

from foundation.recipe import check

__all__ = ["AppConfig", "DEFAULT_GUIDELINES"]

DEFAULT_GUIDELINES = """\
**Which response is better?** Read the conversation, then both responses in full.

- Prefer the response that is **helpful, honest and harmless** for this user: it answers what was asked,
  is correct, and refuses clearly (and kindly) only when the request is harmful.
- Do not prefer a response for being longer. Ignore which side it is on.
- **Tie**: both are about equally good. **Both bad**: neither is acceptable.
- **Strength**: how much better the chosen one is (negligibly / slightly / better / significantly).
- Unsure, or cannot judge? **Skip** (s). Made a mistake? **Undo** (u) brings the last pair back.
"""


@dataclass
class AppConfig:
    """The labeling app: queue rules, limits and the text labelers see."""

    title: str = field(default="Preference labeling", metadata={"help": "Shown at the top of the page."})
    guidelines: str = field(default=DEFAULT_GUIDELINES, metadata={
        "help": "Markdown shown in the guidelines panel."})
    k: int | None = field(default=None, metadata={
        "help": "Labels per pair, from distinct labelers; "
                "kept in the store (empty: as stored, 3 for a new store)."})
    gold_rate: float | None = field(default=None, metadata={
        "help": "Share of queue items drawn from gold pairs (0-1); kept in the store (empty: as stored, 0)."})
    claim_timeout: float = field(default=600.0, metadata={
        "help": "Seconds after which an abandoned claim on a pair expires "
                "and the pair goes back to the queue."})
    max_text_chars: int = field(default=20_000, metadata={
        "help": "Longest prompt or response (characters) that import accepts; "
                "longer ones are refused by name."})
    batch: str | None = field(default=None, metadata={
        "help": "Serve only pairs imported with this batch tag."})
    login_failures: int = field(default=5, metadata={
        "help": "Wrong passwords for one account within login_window that lock it for lockout_seconds."})
    client_login_failures: int = field(default=20, metadata={
        "help": "Failed logins from one address within login_window after which it gets HTTP 429."})
    login_window: int = field(default=900, metadata={"help": "Seconds over which failed logins are counted."})
    lockout_seconds: int = field(default=900, metadata={
        "help": "How long a locked account stays locked, unless an admin lifts it (`align label unlock`)."})
    max_threads: int = field(default=64, metadata={
        "help": "Worker threads of the server (concurrent requests)."})

    def __post_init__(self):
        check(self.k is None or self.k >= 1, "k", self.k, "must be at least 1")
        check(self.gold_rate is None or 0.0 <= self.gold_rate < 1.0, "gold_rate", self.gold_rate,
              "must be a share in [0, 1), e.g. 0.05")
        check(self.claim_timeout > 0, "claim_timeout", self.claim_timeout,
              "must be a positive number of seconds")
        check(self.max_text_chars >= 100, "max_text_chars", self.max_text_chars, "must be at least 100")
        check(self.max_threads >= 1, "max_threads", self.max_threads, "must be at least 1")
        for name in ("login_failures", "client_login_failures", "login_window", "lockout_seconds"):
            check(getattr(self, name) >= 1, name, getattr(self, name), "must be a positive integer")
