"""The webhook endpoints over real HTTP: replies, idempotency, hostile input."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path

import pytest

from tests.conftest import REPO, wait_for, write_rules

MO_MISS = (
    "event=mo_miss&relayer=5&channel=5&relayer_phone=%2B250788111111&call=125156"
    "&phone=%2B250788123123&duration=0&time=2017-03-16T10%3A34%3A34.034000"
)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def test_textit_retry_three_times_is_byte_identical_and_replies_once(
    make_client, tmp_path: Path
) -> None:
    rules = write_rules(
        tmp_path / "r",
        """
        rules:
          - name: missed
            on: call.missed
            reply: {text: "Sorry {{ contact }}, it is {{ now.isoformat() }}"}
            sms: {text: "copy for the team", to: "+6500000000", via: hoiio}
    """,
    )
    client = await make_client(rules)
    bodies = []
    for _ in range(3):
        resp = await client.post("/webhooks/textit", data=MO_MISS, headers=FORM)
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "application/json"
        bodies.append(await resp.read())
    assert bodies[0] == bodies[1] == bodies[2]
    assert b"Sorry +250788123123" in bodies[0]
    app = client.server.app
    from responder.web.server import STORE

    items = await app[STORE].outbox()
    assert len(items) == 1  # the team SMS was queued once, not three times


async def test_concurrent_duplicates_reply_once(make_client, fake_hoiio, tmp_path: Path) -> None:
    rules = write_rules(
        tmp_path / "r",
        """
        rules:
          - name: missed
            on: call.missed
            reply: {text: "hello"}
            sms: {text: "alert {{ contact }}", to: "+6500000000", via: hoiio}
    """,
    )
    client = await make_client(rules)
    responses = await asyncio.gather(
        *(client.post("/webhooks/textit", data=MO_MISS, headers=FORM) for _ in range(10))
    )
    bodies = {await r.read() for r in responses}
    assert len(bodies) == 1
    await wait_for(lambda: len(fake_hoiio.requests) >= 1)
    await asyncio.sleep(0.2)
    assert len(fake_hoiio.calls("sms/send")) == 1


async def test_hoiio_resent_notification_makes_no_second_call_even_after_restart(
    make_client, fake_hoiio, tmp_path: Path
) -> None:
    query = "ivr_block=answer&session=S-9&txn_ref=AA-I-9&from=%2B6591234567&to=%2B6531234567"
    client = await make_client(REPO / "rules")
    assert (await client.post(f"/webhooks/hoiio?{query}")).status == 200
    await wait_for(lambda: len(fake_hoiio.requests) == 2)
    assert (await client.post(f"/webhooks/hoiio?{query}")).status == 200
    await client.close()
    # A new process on the same SQLite file.
    again = await make_client(REPO / "rules")
    assert (await again.post(f"/webhooks/hoiio?{query}")).status == 200
    await asyncio.sleep(0.3)
    assert len(fake_hoiio.requests) == 2


async def test_textit_replay_survives_restart(make_client) -> None:
    first = await make_client(REPO / "rules")
    body1 = await (await first.post("/webhooks/textit", data=MO_MISS, headers=FORM)).read()
    await first.close()
    second = await make_client(REPO / "rules")
    body2 = await (await second.post("/webhooks/textit", data=MO_MISS, headers=FORM)).read()
    assert body1 == body2 != b""


async def test_unknown_event_is_200_and_logged(make_client, caplog) -> None:
    caplog.set_level(logging.INFO)
    client = await make_client(REPO / "rules")
    resp = await client.post("/webhooks/textit", data="event=mo_brand_new&x=1", headers=FORM)
    assert resp.status == 200
    assert await resp.read() == b""
    assert any("unknown event 'mo_brand_new'" in r.getMessage() for r in caplog.records)


async def test_unknown_channel_is_404(make_client) -> None:
    client = await make_client(REPO / "rules")
    assert (await client.post("/webhooks/nope", data="a=b")).status == 404


async def test_long_field_is_400_naming_the_field(make_client) -> None:
    client = await make_client(REPO / "rules")
    body = "event=mo_sms&sms=1&phone=%2B1&text=" + "a" * 10_001
    resp = await client.post("/webhooks/textit", data=body, headers=FORM)
    assert resp.status == 400
    assert await resp.json() == {"error": "field 'text' is 10001 characters long (limit 10000)"}


async def test_render_error_still_answers(make_client, tmp_path: Path, caplog) -> None:
    rules = write_rules(
        tmp_path / "r",
        """
        rules:
          - name: fragile
            on: sms.received
            reply: {text: "{{ captures.colour.value }}"}
    """,
    )
    client = await make_client(rules)
    resp = await client.post(
        "/webhooks/textit", data="event=mo_sms&sms=1&phone=%2B1&text=hi", headers=FORM
    )
    assert resp.status == 200
    assert await resp.read() == b""
    assert any("fragile" in r.getMessage() for r in caplog.records if r.levelname == "ERROR")


HOSTILE = [
    ("non-utf8", b"event=mo_sms&sms=5&phone=%2B1&text=caf\xe9+%FF%FE", FORM, {200}),
    ("invalid-values-json", b"event=flow&run=1&flow=2&values=%5B%7Bnot+json", FORM, {200}),
    ("percent-errors", b"event=mo_sms&sms=6&phone=%2B1&text=%zz%4", FORM, {200}),
    ("missing-fields", b"event=mo_sms", FORM, {200}),
    ("empty-body", b"", FORM, {200}),
    ("wrong-content-type", b"<xml>hello</xml>", {"Content-Type": "text/xml"}, {200}),
    ("json-garbage", b"{not json", {"Content-Type": "application/json"}, {400}),
    ("json-array", b"[1, 2, 3]", {"Content-Type": "application/json"}, {400}),
    (
        "json-scalar-fields",
        b'{"flow": 5, "contact": []}',
        {"Content-Type": "application/json"},
        {200},
    ),
    ("binary", bytes(range(256)) * 4, {"Content-Type": "application/octet-stream"}, {200}),
    ("too-many-params", b"&".join(b"k%d=v" % i for i in range(2000)), FORM, {400}),
    ("field-too-long", b"event=mo_sms&text=" + b"a" * 10_001, FORM, {400}),
    ("deep-json", b"[" * 100_000, {"Content-Type": "application/json"}, {400}),
    ("deep-flow-values", b"event=flow&run=1&flow=2&values=" + b"%5B" * 100_000, FORM, {200}),
    ("two-megabytes", b"text=" + b"a" * (2 * 1024 * 1024), FORM, {413}),
]


@pytest.mark.parametrize("channel", ["textit", "hoiio"])
@pytest.mark.parametrize(
    ("name", "body", "headers", "statuses"), HOSTILE, ids=[h[0] for h in HOSTILE]
)
async def test_hostile_input_never_500(
    make_client,
    channel: str,
    name: str,
    body: bytes,
    headers: dict[str, str],
    statuses: set[int],
) -> None:
    client = await make_client(REPO / "rules")
    payload = io.BytesIO(body) if len(body) > 1024 * 1024 else body
    resp = await client.post(f"/webhooks/{channel}", data=payload, headers=headers)
    assert resp.status in statuses, (name, resp.status, await resp.text())
    if resp.status >= 400:
        assert resp.status != 500
    health = await client.get("/healthz")
    assert health.status == 200
