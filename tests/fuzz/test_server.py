"""The HTTP server under hostile input: never a 5xx, never a logged crash, and a refused
request leaves the store exactly as it was."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from tests.fuzz import http
from tests.fuzz.harness import RULE_SETS, Answer, Server, raw_request

SECRET = "fuzz-webhook-secret-7"
TOKEN = "fuzz-hoiio-token-8"
ALLOWED = "10.0.0.0/8"


@pytest.fixture(params=sorted(RULE_SETS))
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """No authentication: every request reaches the adapters and the engine."""
    running = Server(tmp_path / "fuzz.db", RULE_SETS[request.param])
    yield running
    running.close()


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[Server]:
    """Every check on: allow-list behind a trusted proxy, secret, Hoiio signature."""
    running = Server(
        tmp_path / "fuzz.db",
        RULE_SETS["default+examples"],
        webhook_secret=SECRET,
        hoiio_access_token=TOKEN,
        hoiio_app_id="fuzz-app",
        hoiio_verify_signature=True,
        allow_ips=ALLOWED,
        trusted_proxies="127.0.0.1/32",
    )
    yield running
    running.close()


def exchange(server: Server, request: http.Request) -> Answer:
    """Send ``request``; check the answer is no server error and a refusal changed nothing."""
    before = server.snapshot()
    seen = len(server.errors.records)
    answer = server.send(raw_request(request.method, request.target, request.headers, request.body))
    new = server.errors.records[seen:]
    assert not new, [f"{r.name}: {r.getMessage()}" for r in new]
    assert answer.status < 500, answer
    ours = answer.headers.get("content-type", "").startswith("application/json")
    # Shown by --hypothesis-show-statistics: how far requests got.
    event(f"status {answer.status}{' (responder)' if ours and answer.status >= 400 else ''}")
    if answer.status >= 400:
        assert server.snapshot() == before, f"{answer.status} but the store changed"
    if answer.status in (400, 401, 403) and answer.headers.get("content-type", "").startswith(
        "application/json"
    ):
        assert json.loads(answer.body)["error"]
    return answer


@given(request=http.requests())
# Found by the fuzz run: aiohttp's Content-Type parser raised on ";0*" (a 500).
@example(
    request=http.Request(b"POST", "/webhooks/textit", [], None, [(b"Content-Type", b";0*")], b"")
)
# A body that does not decompress as its Content-Encoding says (was a 500).
@example(
    request=http.Request(
        b"POST", "/webhooks/hoiio", [], None, [(b"Content-Encoding", b"gzip")], b"x"
    )
)
def test_any_request(server: Server, request: http.Request, count_case: Callable[[], None]) -> None:
    count_case()
    exchange(server, request)


def _refused_by_auth(request: http.Request) -> bool:
    """Whether the request lacks a credential it needs: then it must be refused."""
    if request.path not in ("/webhooks/textit", "/webhooks/hoiio") or request.method != b"POST":
        return False
    forwarded = b" ".join(v for n, v in request.headers if n.lower() == b"x-forwarded-for")
    if b"10." not in forwarded:
        return True
    offered = [] if request.raw_query is not None else request.query
    if not any(k in ("secret", "password") and v == SECRET for k, v in offered):
        return True
    if request.provider == "hoiio":
        good = http.signature(TOKEN, request.body)
        sigs = [v.strip().lower() for n, v in request.headers if n.lower() == b"x-hoiio-signature"]
        return good not in sigs
    return False


# Found by the fuzz run: undecodable X-Hoiio-Signature bytes made the comparison raise (a 500).
_BAD_SIG_BYTES = http.Request(
    b"POST", "/webhooks/hoiio", [("secret", SECRET)], None, [(b"X-Hoiio-Signature", b"\x80")], b""
)


@given(
    request=http.requests(secret=SECRET, token_=TOKEN, encodings=False),
    via_allowed=st.integers(0, 3).map(bool),  # three in four
)
@example(request=_BAD_SIG_BYTES, via_allowed=True)
def test_any_request_with_authentication(
    locked: Server, request: http.Request, via_allowed: bool, count_case: Callable[[], None]
) -> None:
    count_case()
    if via_allowed:  # usually come from an allowed address, so the other checks matter
        request.headers.append((b"X-Forwarded-For", b"10.1.2.3"))
    answer = exchange(locked, request)
    if _refused_by_auth(request):
        assert 400 <= answer.status < 500, answer
