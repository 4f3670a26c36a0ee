"""Authentication over real HTTP: refusals answer 401/403 with JSON and change nothing."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from responder.testing.fakes import FakeProvider
from responder.web.auth import body_signature
from tests.conftest import REPO, wait_for, write_rules

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
MO_SMS = "event=mo_sms&sms=77&phone=%2B250788123123&text=hello"
HOIIO_SMS = b"txn_ref=AA-SI-5&msg=hello&from=%2B6591234567&to=%2B6531234567"
TOKEN = "token-secret-1"  # the fixture's HOIIO_ACCESS_TOKEN
TEXTIT_SECRET = "textit-webhook-secret-42"
HOIIO_SECRET = "hoiio-webhook-secret-43"
GLOBAL_SECRET = "global-webhook-secret-44"

RULES = """
rules:
  - name: echo
    on: sms.received
    reply: {text: "got {{ text }}"}
    sms: {text: "copy of {{ text }}", to: "+6500000000", via: hoiio}
"""


def counts(db: Path) -> dict[str, int]:
    """Rows per table of the store's SQLite file (read by a separate connection)."""
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    return write_rules(tmp_path / "r", RULES)


async def refused(
    client: Any, db: Path, fakes: list[FakeProvider], status: int, *args: Any, **kwargs: Any
) -> str:
    """POST and check the refusal: the status, a JSON error, and no trace of the request."""
    before = counts(db)
    resp = await client.post(*args, **kwargs)
    assert resp.status == status, await resp.text()
    assert resp.headers["Content-Type"].startswith("application/json")
    error = (await resp.json())["error"]
    await asyncio.sleep(0.1)  # a queued call would have reached a fake by now
    assert counts(db) == before
    assert all(fake.requests == [] for fake in fakes)
    return str(error)


async def test_secret_missing_wrong_and_right(
    make_client, rules: Path, tmp_path: Path, fake_hoiio: FakeProvider
) -> None:
    client = await make_client(rules, webhook_secret=GLOBAL_SECRET)
    db = tmp_path / "responder.db"
    url = "/webhooks/textit"
    error = await refused(client, db, [fake_hoiio], 401, url, data=MO_SMS, headers=FORM)
    assert error == "missing webhook secret (?secret= or ?password=)"
    error = await refused(
        client, db, [fake_hoiio], 403, f"{url}?secret=guess", data=MO_SMS, headers=FORM
    )
    assert error == "wrong webhook secret"
    await refused(client, db, [fake_hoiio], 401, f"{url}?secret=", data=MO_SMS, headers=FORM)
    # The same event, now with the secret: it was never recorded, so it runs now.
    resp = await client.post(f"{url}?password={GLOBAL_SECRET}", data=MO_SMS, headers=FORM)
    assert resp.status == 200
    assert (await resp.json())["text"] == "got hello"
    await wait_for(lambda: len(fake_hoiio.calls("sms/send")) == 1)


async def test_secret_is_not_an_event_parameter(make_client, tmp_path: Path) -> None:
    rules = write_rules(
        tmp_path / "r",
        """
        rules:
          - name: raw
            on: sms.received
            reply: {text: "{{ event | dictsort | map('first') | join(',') }}"}
        """,
    )
    client = await make_client(rules, webhook_secret=GLOBAL_SECRET)
    resp = await client.post(
        f"/webhooks/textit?secret={GLOBAL_SECRET}&password=x", data=MO_SMS, headers=FORM
    )
    assert (await resp.json())["text"] == "event,phone,sms,text"


async def test_channel_secrets_replace_the_global_one(
    make_client, rules: Path, tmp_path: Path, fake_hoiio: FakeProvider
) -> None:
    client = await make_client(
        rules, webhook_secret=GLOBAL_SECRET, webhook_secrets={"textit": TEXTIT_SECRET}
    )
    db = tmp_path / "responder.db"
    await refused(
        client,
        db,
        [fake_hoiio],
        403,
        f"/webhooks/textit?secret={GLOBAL_SECRET}",
        data=MO_SMS,
        headers=FORM,
    )
    ok = await client.post(f"/webhooks/textit?secret={TEXTIT_SECRET}", data=MO_SMS, headers=FORM)
    assert ok.status == 200
    hoiio = await client.post(f"/webhooks/hoiio?secret={GLOBAL_SECRET}", data=HOIIO_SMS)
    assert hoiio.status == 200


async def test_allow_list_refuses_other_addresses(
    make_client, rules: Path, tmp_path: Path, fake_hoiio: FakeProvider
) -> None:
    client = await make_client(rules, allow_ips="203.0.113.0/24")
    db = tmp_path / "responder.db"
    # The test client connects from 127.0.0.1; without a trusted proxy, headers don't count.
    error = await refused(
        client,
        db,
        [fake_hoiio],
        403,
        "/webhooks/textit",
        data=MO_SMS,
        headers={**FORM, "X-Forwarded-For": "203.0.113.9"},
    )
    assert error == "address 127.0.0.1 is not allowed"
    allowed = await make_client(rules, allow_ips="203.0.113.0/24, 127.0.0.0/8")
    assert (await allowed.post("/webhooks/textit", data=MO_SMS, headers=FORM)).status == 200


async def test_behind_a_trusted_proxy_the_forwarded_client_counts(
    make_client, rules: Path, tmp_path: Path, fake_hoiio: FakeProvider
) -> None:
    client = await make_client(rules, allow_ips="203.0.113.0/24", trusted_proxies="127.0.0.1")
    db = tmp_path / "responder.db"
    for hops, status in (
        ("198.51.100.1", 403),
        ("203.0.113.9, 198.51.100.1", 403),  # the allowed address was written by the client
        ("not-an-address", 403),
    ):
        await refused(
            client,
            db,
            [fake_hoiio],
            status,
            "/webhooks/textit",
            data=MO_SMS,
            headers={**FORM, "X-Forwarded-For": hops},
        )
    # No header: the proxy itself is the client, and it is not on the list.
    await refused(client, db, [fake_hoiio], 403, "/webhooks/textit", data=MO_SMS, headers=FORM)
    resp = await client.post(
        "/webhooks/textit",
        data=MO_SMS,
        headers={**FORM, "X-Forwarded-For": "198.51.100.1, 203.0.113.9"},
    )
    assert resp.status == 200


async def test_allow_list_comes_first(
    make_client, rules: Path, tmp_path: Path, fake_hoiio: FakeProvider
) -> None:
    client = await make_client(rules, allow_ips="203.0.113.0/24", webhook_secret=GLOBAL_SECRET)
    db = tmp_path / "responder.db"
    error = await refused(
        client,
        db,
        [fake_hoiio],
        403,
        f"/webhooks/textit?secret={GLOBAL_SECRET}",
        data=MO_SMS,
        headers=FORM,
    )
    assert "not allowed" in error
    # Nothing about channels leaks to a refused address either.
    assert (await client.post("/webhooks/nope")).status == 403


async def test_hoiio_signature(
    make_client, rules: Path, tmp_path: Path, fake_hoiio: FakeProvider
) -> None:
    client = await make_client(rules, hoiio_verify_signature=True)
    db = tmp_path / "responder.db"
    url = "/webhooks/hoiio"
    error = await refused(client, db, [fake_hoiio], 401, url, data=HOIIO_SMS, headers=FORM)
    assert error == "missing X-Hoiio-Signature header"
    good = body_signature(TOKEN, HOIIO_SMS)
    for bad in ("0" * 64, body_signature(TOKEN, HOIIO_SMS + b"&x=1"), good[:-1]):
        error = await refused(
            client,
            db,
            [fake_hoiio],
            403,
            url,
            data=HOIIO_SMS,
            headers={**FORM, "X-Hoiio-Signature": bad},
        )
        assert error == "X-Hoiio-Signature does not match the body"
    # TextIt is not signed: the setting does not touch it.
    assert (await client.post("/webhooks/textit", data=MO_SMS, headers=FORM)).status == 200
    await wait_for(lambda: len(fake_hoiio.calls("sms/send")) == 1)
    resp = await client.post(
        url, data=HOIIO_SMS, headers={**FORM, "X-Hoiio-Signature": good.upper()}
    )
    assert resp.status == 200
    await wait_for(lambda: len(fake_hoiio.calls("sms/send")) == 3)  # echo reply + copy


async def test_secret_is_checked_before_the_signature(
    make_client, rules: Path, tmp_path: Path, fake_hoiio: FakeProvider
) -> None:
    client = await make_client(
        rules, hoiio_verify_signature=True, webhook_secrets={"hoiio": HOIIO_SECRET}
    )
    db = tmp_path / "responder.db"
    good = {**FORM, "X-Hoiio-Signature": body_signature(TOKEN, HOIIO_SMS)}
    error = await refused(client, db, [fake_hoiio], 401, "/webhooks/hoiio", data=HOIIO_SMS)
    assert error.startswith("missing webhook secret")
    error = await refused(
        client, db, [fake_hoiio], 401, f"/webhooks/hoiio?secret={HOIIO_SECRET}", data=HOIIO_SMS
    )
    assert error.startswith("missing X-Hoiio-Signature")
    resp = await client.post(f"/webhooks/hoiio?secret={HOIIO_SECRET}", data=HOIIO_SMS, headers=good)
    assert resp.status == 200


async def test_no_secret_or_signature_reaches_a_log_line(
    make_client, rules: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await make_client(
        rules,
        webhook_secret=GLOBAL_SECRET,
        webhook_secrets={"hoiio": HOIIO_SECRET},
        hoiio_verify_signature=True,
        log_level="DEBUG",
    )
    good = body_signature(TOKEN, HOIIO_SMS)
    wrong_secret = "wrong-secret-that-must-not-be-logged"
    wrong_sig = "f" * 63 + "e"
    posts: list[tuple[str, dict[str, str]]] = [
        (f"/webhooks/textit?secret={wrong_secret}", FORM),
        (f"/webhooks/textit?password={GLOBAL_SECRET}", FORM),
        (f"/webhooks/hoiio?secret={GLOBAL_SECRET}", FORM),
        (f"/webhooks/hoiio?secret={HOIIO_SECRET}", {**FORM, "X-Hoiio-Signature": wrong_sig}),
        (f"/webhooks/hoiio?secret={HOIIO_SECRET}", {**FORM, "X-Hoiio-Signature": good}),
    ]
    statuses = []
    for url, headers in posts:
        body = HOIIO_SMS if "hoiio" in url else MO_SMS.encode()
        statuses.append((await client.post(url, data=body, headers=headers)).status)
    assert statuses == [403, 200, 403, 403, 200]
    await client.close()  # shutdown logs too
    lines = [
        f"{r.name} {r.getMessage()} {r.exc_text or ''}"
        for r in caplog.records
        if r.name != "aiohttp.access"  # the test server's access log; `serve` runs without
    ]
    assert any("refused request" in line for line in lines)
    for line in lines:
        for secret in (GLOBAL_SECRET, HOIIO_SECRET, wrong_secret, good, wrong_sig, TOKEN):
            assert secret not in line, line


async def test_start_up_warns_once_per_open_channel(
    make_client, rules: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="responder")
    await make_client(
        rules,
        channels={"textit": "textit", "hoiio": "hoiio", "ivr": "hoiio"},
        webhook_secrets={"textit": TEXTIT_SECRET},
    )
    warnings = [r.getMessage() for r in caplog.records if "unauthenticated" in r.getMessage()]
    assert len(warnings) == 2
    assert warnings[0].startswith("channel 'hoiio' is unauthenticated")
    assert "RESPONDER_WEBHOOK_SECRET_HOIIO" in warnings[0]
    assert "HOIIO_VERIFY_SIGNATURE=true" in warnings[0]
    assert warnings[1].startswith("channel 'ivr' is unauthenticated")
    assert all(r.levelname == "WARNING" for r in caplog.records if "unauthenticated" in r.message)
    caplog.clear()
    await make_client(rules, allow_ips="127.0.0.1")
    assert not [r for r in caplog.records if "unauthenticated" in r.getMessage()]


async def test_ivr_notify_url_carries_the_channel_secret(
    make_client, fake_hoiio: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await make_client(
        REPO / "examples" / "ivr-menu",
        public_url="https://ivr.example.org",
        webhook_secrets={"hoiio": HOIIO_SECRET},
    )
    answer = "ivr_block=answer&session=S-1&txn_ref=AA-1&from=%2B6591234567&to=%2B6531234567"
    resp = await client.post(f"/webhooks/hoiio?secret={HOIIO_SECRET}", data=answer, headers=FORM)
    assert resp.status == 200
    await wait_for(lambda: len(fake_hoiio.requests) == 1)
    notify = urlsplit(fake_hoiio.requests[0].params["notify_url"])
    assert parse_qs(notify.query)["secret"] == [HOIIO_SECRET]
    # Hoiio posts the block's result to that URL: it passes the check and moves the call on.
    resp = await client.post(
        f"{notify.path}?{notify.query}",
        data="ivr_block=gather&session=S-1&txn_ref=AA-1&from=%2B6591234567&to=%2B6531234567"
        "&digits=2",
        headers=FORM,
    )
    assert resp.status == 200
    await wait_for(lambda: len(fake_hoiio.requests) == 2)
    assert fake_hoiio.requests[1].path == "/open/ivr/middle/record"
    for record in caplog.records:
        if record.name != "aiohttp.access":  # the test server's; `serve` runs without
            assert HOIIO_SECRET not in record.getMessage()
