"""Who may use the console: the token as a bearer, or a session cookie signed with it after
the login form; CSRF tokens for the cookie's state-changing requests; headers that keep the
pages to themselves."""

from __future__ import annotations

import collections
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import quote

from aiohttp import web
from aiohttp.typedefs import Middleware

COOKIE: Final = "responder_console"
SESSION_SECONDS: Final = 12 * 3600
CSRF_FIELD: Final = "csrf"
CSRF_HEADER: Final = "X-CSRF-Token"
# Failed logins in any minute before the login form answers 429 (the token is long and
# random; this keeps a guesser from trying many per second).
MAX_FAILURES_A_MINUTE: Final = 10
# Pages and the assets their scripts load come from this server only; Mermaid writes the
# styles of its diagrams inline, hence 'unsafe-inline' for styles (never for scripts).
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # "no-referrer" makes form posts say Origin: null
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Gate:
    """Checks the token, and makes and checks session cookies and CSRF tokens."""

    def __init__(self, token: str, clock: Callable[[], float] = time.time) -> None:
        self._token = token.encode()
        self._key = hmac.new(self._token, b"responder console: session", hashlib.sha256).digest()
        self.clock = clock
        self._failures: collections.deque[float] = collections.deque()

    @property
    def secret(self) -> bytes:
        """A key for other uses (references), derived from the token."""
        return hmac.new(self._token, b"responder console: other", hashlib.sha256).digest()

    def token_ok(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self._token)

    def may_try(self) -> bool:
        """Whether a login may be tried now (few failures in the last minute)."""
        now = self.clock()
        while self._failures and self._failures[0] <= now - 60:
            self._failures.popleft()
        return len(self._failures) < MAX_FAILURES_A_MINUTE

    def failed(self) -> None:
        self._failures.append(self.clock())

    def new_session(self) -> str:
        body = f"{int(self.clock())}.{secrets.token_urlsafe(12)}"
        return f"{body}.{self._sign(body)}"

    def session_ok(self, value: str | None) -> bool:
        if not value or value.count(".") != 2:
            return False
        body, _, mac = value.rpartition(".")
        if not hmac.compare_digest(mac.encode(), self._sign(body).encode()):
            return False
        issued = body.split(".", 1)[0]
        return issued.isdigit() and 0 <= self.clock() - int(issued) < SESSION_SECONDS

    def csrf(self, session: str) -> str:
        return self._sign(f"csrf.{session}")[:32]

    def csrf_ok(self, session: str, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(str(given).encode(), self.csrf(session).encode())

    def who(self, request: web.Request) -> str | None:
        """``bearer``, ``cookie`` or None (not allowed in)."""
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and given and self.token_ok(given.strip()):
            return "bearer"
        if self.session_ok(request.cookies.get(COOKIE)):
            return "cookie"
        return None

    def _sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a console page, never another site."""
    if (
        target
        and target.startswith("/console/")
        and "//" not in target
        and "\\" not in target
        and not any(ord(ch) < 32 for ch in target)
    ):
        return target
    return "/console/"


def guard(gate: Gate, open_routes: frozenset[str]) -> Middleware:
    """The middleware: every console request but those of ``open_routes`` (route names) and
    the static files needs the token; a cookie's POST needs its CSRF token and, when the
    browser sends one, an ``Origin`` of this server. Decided by the route the request
    matched, not by its path."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        name = resource.name if resource is not None else None
        if isinstance(resource, web.StaticResource):
            # The package's own files, the same for everyone: cached (the pages ask for them
            # with the version in the query, so an upgrade is fetched afresh).
            response = await handler(request)
            response.headers["Cache-Control"] = "public, max-age=86400"
            return _headed(response)
        if name in open_routes:
            return _headed(await handler(request))
        who = gate.who(request)
        if who is None:
            if request.method == "GET" and "json" not in request.headers.get("Accept", ""):
                login = "/console/login?next=" + quote(request.path_qs, safe="/")
                return _headed(web.Response(status=303, headers={"Location": login}))
            return _headed(
                web.json_response(
                    {"error": "the console needs its token (log in, or Authorization: Bearer)"},
                    status=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
            )
        if request.method not in ("GET", "HEAD") and who == "cookie":
            problem = await _forged(gate, request)
            if problem:
                return _headed(web.json_response({"error": problem}, status=403))
        return _headed(await handler(request))

    return middleware


async def _forged(gate: Gate, request: web.Request) -> str | None:
    """Why a cookie's state-changing request is refused, or None."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        return f"cross-site request refused (Origin {origin})"
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        value = (await request.post()).get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not gate.csrf_ok(request.cookies.get(COOKIE, ""), given):
        return "missing or wrong CSRF token (reload the page)"
    return None


def _headed(response: web.StreamResponse) -> web.StreamResponse:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")
    return response
