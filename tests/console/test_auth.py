"""Who gets into the console: nobody without the token; the token as a bearer or once in the
login form for a session cookie; state-changing requests need the cookie's CSRF token."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer

from responder.console.auth import COOKIE, SESSION_SECONDS, Gate, safe_next
from responder.settings import Settings
from responder.web.server import create_app
from tests.console.conftest import EXAMPLES, TOKEN, ConsoleFactory

PAGES = [
    "/console/conversations",
    "/console/webhooks",
    "/console/outbox",
    "/console/rules",
    "/console/simulator",
    "/console/webhooks/abc",
    "/console/conversations/abc",
]
ACTIONS = [
    "/console/outbox/retry",
    "/console/rules/reload",
    "/console/simulator/sessions",
    "/console/logout",
]


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_sessions_are_signed_with_the_token_and_expire() -> None:
    clock = Clock()
    gate = Gate(TOKEN, clock)
    session = gate.new_session()
    assert gate.session_ok(session)
    assert not Gate("another-token-of-sixteen", clock).session_ok(session)
    issued, nonce, mac = session.split(".")
    assert not gate.session_ok(f"{int(issued) + 1}.{nonce}.{mac}")  # a changed time
    assert not gate.session_ok(f"{issued}.{nonce}.{'0' * len(mac)}")
    assert not gate.session_ok("")
    assert not gate.session_ok(None)
    assert not gate.session_ok("a.b")
    clock.now += SESSION_SECONDS - 1
    assert gate.session_ok(session)
    clock.now += 1
    assert not gate.session_ok(session)


def test_csrf_tokens_belong_to_one_session() -> None:
    gate = Gate(TOKEN)
    one, two = gate.new_session(), gate.new_session()
    assert gate.csrf_ok(one, gate.csrf(one))
    assert not gate.csrf_ok(two, gate.csrf(one))
    assert not gate.csrf_ok(one, None)
    assert not gate.csrf_ok(one, "")


def test_logins_are_slowed_after_ten_failures_a_minute() -> None:
    clock = Clock()
    gate = Gate(TOKEN, clock)
    for _ in range(10):
        assert gate.may_try()
        gate.failed()
    assert not gate.may_try()
    clock.now += 61
    assert gate.may_try()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/console/outbox?status=dead", "/console/outbox?status=dead"),
        ("https://evil.example/", "/console/"),
        ("//evil.example/console/", "/console/"),
        ("/console//evil.example", "/console/"),
        ("/console/\\evil", "/console/"),
        ("/metrics", "/console/"),
        (None, "/console/"),
    ],
)
def test_after_login_only_console_pages_are_a_destination(given: str | None, expected: str) -> None:
    assert safe_next(given) == expected


async def test_without_the_token_every_page_and_action_is_refused(console: ConsoleFactory) -> None:
    client = await console(login=False)
    for path in PAGES:
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 303, path
        assert resp.headers["Location"].startswith("/console/login?next=/console/"), path
        json_resp = await client.get(path, headers={"Accept": "application/json"})
        assert json_resp.status == 401, path
    for path in [*ACTIONS, "/console/simulator/sessions/1-x/steps"]:
        resp = await client.post(path, data={"key": "x"}, allow_redirects=False)
        assert resp.status == 401, path
        resp = await client.post(path, headers={"Authorization": "Bearer wrong-token-0123456"})
        assert resp.status == 401, path
    login = await client.get("/console/login")
    assert login.status == 200
    assert "Log in" in await login.text()


async def test_a_wrong_token_is_refused_and_the_right_one_opens_a_session(
    console: ConsoleFactory,
) -> None:
    client = await console(login=False)
    resp = await client.post("/console/login", data={"token": "guess" * 4}, allow_redirects=False)
    assert resp.status == 401
    assert "wrong token" in await resp.text()
    assert COOKIE not in {c.key for c in client.session.cookie_jar}
    resp = await client.post(
        "/console/login",
        data={"token": TOKEN, "next": "/console/outbox"},
        allow_redirects=False,
    )
    assert resp.status == 303
    assert resp.headers["Location"] == "/console/outbox"
    cookie = resp.cookies[COOKIE]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/console"
    assert (await client.get("/console/outbox")).status == 200


async def test_too_many_wrong_tokens_get_429_even_with_the_right_one(
    console: ConsoleFactory,
) -> None:
    client = await console(login=False)
    for _ in range(10):
        await client.post("/console/login", data={"token": "x" * 20})
    resp = await client.post("/console/login", data={"token": TOKEN}, allow_redirects=False)
    assert resp.status == 429


async def test_a_cookies_posts_need_its_csrf_token_and_this_origin(
    console: ConsoleFactory,
) -> None:
    client = await console()
    csrf = client.csrf  # type: ignore[attr-defined]
    resp = await client.post("/console/rules/reload", allow_redirects=False)
    assert resp.status == 403
    assert "CSRF" in (await resp.json())["error"]
    resp = await client.post("/console/rules/reload", data={"csrf": "0" * 32})
    assert resp.status == 403
    resp = await client.post(
        "/console/rules/reload",
        data={"csrf": csrf},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert resp.status == 403
    assert "cross-site" in (await resp.json())["error"]
    resp = await client.post("/console/rules/reload", data={"csrf": csrf}, allow_redirects=False)
    assert resp.status == 303
    resp = await client.post(
        "/console/simulator/sessions", json={"kind": "sms"}, headers={"X-CSRF-Token": csrf}
    )
    assert resp.status == 200
    resp = await client.post("/console/logout", data={"csrf": csrf}, allow_redirects=False)
    assert resp.status == 303
    assert (await client.get("/console/rules", allow_redirects=False)).status == 303


async def test_a_bearer_needs_no_cookie_and_no_csrf(console: ConsoleFactory) -> None:
    client = await console(login=False)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert (await client.get("/console/rules", headers=bearer)).status == 200
    resp = await client.post("/console/rules/reload", headers=bearer, allow_redirects=False)
    assert resp.status == 303


async def test_every_answer_carries_the_headers_that_keep_it_to_itself(
    console: ConsoleFactory,
) -> None:
    client = await console()
    for path in ["/console/rules", "/console/login", "/console/nowhere"]:
        resp = await client.get(path)
        assert "script-src 'self'" in resp.headers["Content-Security-Policy"], path
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Cache-Control"] == "no-store"
    static = await client.get("/console/static/console.css")
    assert static.status == 200
    assert static.headers["Cache-Control"].startswith("public")
    assert (await client.get("/console/nowhere")).status == 404


async def test_without_a_token_there_is_no_console_at_all() -> None:
    settings = Settings.from_env({}, rules=(str(EXAMPLES / "sms-survey"),), store="memory://")
    async with TestClient(TestServer(create_app(settings))) as client:
        for path in ["/console", "/console/", "/console/login", "/console/static/console.css"]:
            assert (await client.get(path)).status == 404, path


@pytest.mark.parametrize(
    "path",
    [
        "/console/static/../rules",
        "/console/static/%2e%2e/rules",
        "/console/static/..%2frules",
        "/console/login/../rules",
        "/console/static/%2e%2e/%2e%2e/console/rules",
    ],
)
async def test_no_path_reaches_a_page_around_the_token(console: ConsoleFactory, path: str) -> None:
    client = await console(login=False)
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    answer = await reader.read()
    writer.close()
    status = int(answer.split(b" ", 2)[1])
    assert status in (303, 404), answer[:300]
    assert b"Loaded" not in answer
