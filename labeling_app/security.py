"""What makes the app safe to expose to a team: a login whose guessing is limited, whose password
hash never blocks the server and whose wrong name costs what a wrong password costs; and a
Content-Security-Policy under which no page loads anything from another host.

- Per account: `account_failures` wrong passwords within `window` lock the account for `lockout`
  (kept in the store, so every replica refuses it, and visible to admins, who can lift it:
  `align label unlock NAME` or the admin page). A locked account is refused even with the right
  password, with the same reply as a wrong one.
- Per client address: `client_failures` failed logins within `window` get HTTP 429 until the window
  moves on, whatever names they try.
- The scrypt check runs in a worker thread (`asyncio.to_thread`): Gradio awaits an async auth
  function, so labelers' requests keep flowing during a login flood. Unknown names are checked
  against a dummy hash (`Accounts.authenticate`), so timing does not tell which accounts exist.

The counting uses the `limits` library's moving windows (in memory, per replica); the lockouts
themselves live in the store.

- Files whose name carries the export marker (the admin's export zip) are served to admins only;
  a labeler who has the URL gets 403.
- A refused API call (a pair not yours, a wrong type, an admin function for a labeler, a full disk)
  is answered 409, 400, 403 or 503 with its message, not Gradio's 500.
- Every response carries a Content-Security-Policy that allows the app's own origin only (plus
  inline styles and scripts, which Gradio's page needs): an image or any other URL that reaches a
  page (pair text is rendered as Markdown) is not fetched, and a referrer never leaves.
"""

from __future__ import annotations

import asyncio
import json

__all__ = ["LoginGuard", "ClientLoginLimit", "ContentSecurityPolicy", "AdminFiles", "RefusalStatus",
           "refusal_title", "CSP"]

CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
       "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
       "connect-src 'self'; media-src 'self' blob:; frame-src 'none'; object-src 'none'; "
       "base-uri 'self'; form-action 'self'")


class LoginGuard:
    def __init__(self, store, *, account_failures: int = 5, client_failures: int = 20, window: int = 900,
                 lockout: int = 900):
        from limits import RateLimitItemPerSecond, storage, strategies

        self.store, self.lockout = store, lockout
        self._limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
        self._account = RateLimitItemPerSecond(account_failures, window)
        self._client = RateLimitItemPerSecond(client_failures, window)

    async def authenticate(self, username: str, password: str) -> bool:
        """The app's `auth` function: True only for the right password of an account that is not locked."""
        ok = await asyncio.to_thread(self.store.accounts.authenticate, username, password)
        if ok:
            self._limiter.clear(self._account, "account", username)
            return True
        self._limiter.hit(self._account, "account", username)
        if not self._limiter.test(self._account, "account", username):     # the n-th failure in the window
            reason = f"{self._account.amount} wrong passwords within {self._account.get_expiry()} s"
            await asyncio.to_thread(self.store.accounts.lock, username, self.lockout, reason)
        return False

    def client_blocked(self, client: str) -> bool:
        """True once `client_failures` logins from this address failed within the window."""
        return not self._limiter.test(self._client, "client", client)

    def client_failed(self, client: str) -> None:
        self._limiter.hit(self._client, "client", client)


class ClientLoginLimit:
    """ASGI middleware: refuses `POST .../login` with 429 from an address over its failure limit, and
    counts each failed login (status 400) against the address it came from."""

    def __init__(self, app, guard: LoginGuard):
        self.app, self.guard = app, guard

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith("/login"):
            return await self.app(scope, receive, send)
        client = (scope.get("client") or ("unknown", 0))[0]
        if self.guard.client_blocked(client):
            body = json.dumps({"detail": "Too many failed logins from this address; wait a few minutes "
                                         "before trying again."}).encode()
            await send({"type": "http.response.start", "status": 429,
                        "headers": [(b"content-type", b"application/json"), (b"retry-after", b"300")]})
            await send({"type": "http.response.body", "body": body})
            return

        async def counting_send(message):
            if message["type"] == "http.response.start" and message["status"] == 400:
                self.guard.client_failed(client)
            await send(message)

        await self.app(scope, receive, counting_send)


class ContentSecurityPolicy:
    """ASGI middleware: `CSP` and `Referrer-Policy: no-referrer` on every HTTP response."""

    def __init__(self, app, policy: str = CSP):
        self.app, self.policy = app, policy.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"content-security-policy", self.policy),
                                      (b"referrer-policy", b"no-referrer")]
            await send(message)

        await self.app(scope, receive, with_headers)


def session_user(scope) -> str | None:
    """The user signed in on this request, from Gradio's login cookie (None when signed out)."""
    app = scope.get("app")
    cookie_id = getattr(app, "cookie_id", None)
    if cookie_id is None:
        return None
    from http.cookies import SimpleCookie

    cookies = SimpleCookie()
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            cookies.load(value.decode("latin-1"))
    for key in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
        if key in cookies:
            return getattr(app, "tokens", {}).get(cookies[key].value)
    return None


class AdminFiles:
    """ASGI middleware: a file request (`/gradio_api/file=...`) for a path holding `marker` is answered
    403 unless the signed-in user is an admin of `store`."""

    def __init__(self, app, store, marker: str):
        self.app, self.store, self.marker = app, store, marker

    async def __call__(self, scope, receive, send):
        from urllib.parse import unquote

        from labeling_app.errors import AuthError

        path = unquote(scope.get("path", "")) if scope["type"] == "http" else ""
        if "file=" in path and self.marker in path:
            user = session_user(scope)
            is_admin = False
            if user:
                try:
                    is_admin = self.store.accounts.role(user) == "admin"
                except AuthError:                       # an account removed since it signed in
                    is_admin = False
            if not is_admin:
                await send({"type": "http.response.start", "status": 403,
                            "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "http.response.body", "body": b"Exports are for admins only."})
                return
        await self.app(scope, receive, send)


# The title a refusal is shown under, and the HTTP status the API answers it with.
REFUSALS = {"Not yours to label": 409, "Not allowed": 403, "Cannot save right now": 503,
            "Check the request": 400}


def refusal_title(error: Exception) -> str:
    from labeling_app.errors import AuthError, NotAssignedError, StorageError

    if isinstance(error, NotAssignedError):
        return "Not yours to label"
    if isinstance(error, AuthError):
        return "Not allowed"
    if isinstance(error, StorageError):
        return "Cannot save right now"
    return "Check the request"


class RefusalStatus:
    """ASGI middleware: Gradio answers every error of a direct API call (`/gradio_api/run/...`) with 500;
    a refusal (its title one of `REFUSALS`) gets its own status instead, with the same JSON body."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if "/gradio_api/run/" not in path and "/gradio_api/api/" not in path:
            return await self.app(scope, receive, send)
        held: dict = {}

        async def relay(message):
            if message["type"] == "http.response.start" and message["status"] == 500:
                held["start"], held["body"] = message, b""
                return
            if "start" not in held:
                return await send(message)
            held["body"] += message.get("body", b"")
            if message.get("more_body"):
                return
            try:
                status = REFUSALS.get(json.loads(held["body"]).get("title"), 500)
            except (ValueError, AttributeError):
                status = 500
            await send({**held["start"], "status": status})
            await send({"type": "http.response.body", "body": held["body"]})

        await self.app(scope, receive, relay)
