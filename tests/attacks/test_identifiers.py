"""Identifiers are data (a property over real HTTP): any unicode in a webhook's ids, numbers,
texts and sessions (control characters, CR/LF, NUL, 10,000-character strings) ends up in
outbound headers, URLs, store keys and log lines without changing their meaning. For every
generated webhook: it is answered, its outbound requests are sent (the first try refused, so
each is tried twice) under one Idempotency-Key, values put into an http action's URL and
headers read back exactly, and the same webhook posted again is the same event: answered
from the store, nothing sent again.

One server serves every example of a property; ``RESPONDER_ATTACKS=long`` runs more."""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from responder.policy import DeliverySettings
from responder.printable import one_line
from responder.testing.fakes import FakeProvider
from responder.web.logs import JsonFormatter, TextFormatter, TraceFilter
from tests.attacks.support import pick
from tests.conftest import REPO, wait_for, write_rules

# A failing example with 10,000-character values has a large repr: show it all the same.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
EXAMPLES = pick(60, 1000)
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.generate],
)
# Any character but lone surrogates (no UTF-8 for them; the adapters' own tests cover them),
# control characters made likely, and some values of the longest length a field may have.
CHARS = st.characters(blacklist_categories=("Cs",))
CONTROL = st.sampled_from(["\r\n", "\n", "\r", "\x00", "\x1b[31m", "\u2028", "\t", ":", "%"])
SHORT = st.lists(st.one_of(CONTROL, st.text(CHARS, max_size=8)), max_size=6).map("".join)
# 10,000 characters is the limit of a field: the serial number and "m " in front fit in it.
LONG = st.text(CHARS, min_size=1, max_size=12).map(lambda s: (s * 10_000)[:9_990])
VALUE = st.one_of(SHORT.filter(lambda s: s.strip()), SHORT.filter(lambda s: s.strip()), LONG)
RULES = """
compliance:
  loop_guard: {replies: 100000, within: 1s}  # examples may repeat a number, fast
rules:
  - name: echo
    on: sms.received
    sms: {text: "Got: {{ text[:300] }}", via: hoiio}
    http:
      url: "%s/hook/{{ contact[:300] }}?text={{ text[:300] }}&n=1"
      headers: {X-Contact: "{{ contact[:300] }}", X-Text: "<{{ text[:300] }}>"}
      json: {contact: "{{ contact[:300] }}", text: "{{ text[:300] }}"}
"""
FAST_RETRIES = DeliverySettings(retry_base=0.01, retry_max=0.02)


class Server:
    """The one server of a property, with its fakes; each fake refuses the first try of
    every call (``fail_next`` set before each post), so every call is sent twice."""

    def __init__(self, client: Any, hoiio: FakeProvider, hook: FakeProvider) -> None:
        self.client, self.hoiio, self.hook = client, hoiio, hook


async def server_for(
    cache: dict[str, Server], make_client: Any, tmp_path: Any, hoiio: FakeProvider, hook: Any
) -> Server:
    if "server" not in cache:
        rules = write_rules(tmp_path / "rules", RULES % hook.url)
        (rules / "ivr.yaml").write_text((REPO / "examples/ivr-menu/rules.yaml").read_text())
        client = await make_client(
            rules, public_url="https://ivr.example.org", delivery=FAST_RETRIES
        )
        cache["server"] = Server(client, hoiio, hook)
    return cache["server"]


def keys_of(fake: FakeProvider) -> list[str]:
    return [r.headers.get("Idempotency-Key", "") for r in fake.requests]


async def post(server: Server, path: str, data: dict[str, str]) -> tuple[int, bytes]:
    response = await server.client.post(path, data=data)
    return response.status, await response.read()


async def sent(fake: FakeProvider, before: int, what: str) -> list[Any]:
    """The requests ``fake`` got since ``before``, once the first of them was accepted."""

    def accepted() -> bool:
        new = fake.requests[before:]
        return bool(new) and new[0].headers.get("Idempotency-Key") in fake.accepted

    await wait_for(accepted, 15, what)
    return fake.requests[before:]


def one_line_each(records: list[logging.LogRecord]) -> None:
    """Every log record is one line in both log formats, whatever the ids it names."""
    text, structured, fields = TextFormatter(), JsonFormatter(), TraceFilter()
    for original in records:
        record = logging.makeLogRecord(dict(original.__dict__))
        fields.filter(record)
        assert "\n" not in text.format(record)
        assert "\n" not in structured.format(record)


def check_retried_under_one_key(requests: list[Any]) -> str:
    """The first try refused, the second accepted: both under one printable key."""
    assert len(requests) == 2, requests
    keys = {r.headers.get("Idempotency-Key") for r in requests}
    assert len(keys) == 1
    (key,) = keys
    assert key
    assert key.isascii()
    assert key.isprintable()
    assert len(key) <= 200
    return str(key)


_cache: dict[int, dict[str, Server]] = {}
# Each example's event gets a number of its own in front of its generated id: examples may
# repeat an id, and the same id is the same event (answered from the store, nothing sent).
_serial = itertools.count(1)
_ran: collections.Counter[str] = collections.Counter()  # examples run, and answered 200


@PROPERTY
@given(sms_id=VALUE, phone=VALUE, text=VALUE)
@example(sms_id="S1\r\nX-Injected: 1", phone="+65 1&admin=1#x", text="a\x00b\r\nc")
@example(sms_id="a:b", phone="tel:+6591234567", text="%2F..%2F")
async def test_textit_ids_numbers_and_texts_are_data(
    make_client, tmp_path, fake_hoiio, fake_http, caplog, sms_id: str, phone: str, text: str
) -> None:
    caplog.set_level(logging.WARNING)
    cache = _cache.setdefault(id(make_client), {})
    server = await server_for(cache, make_client, tmp_path, fake_hoiio, fake_http)
    fake_hoiio.behaviour.fail_next = 1
    fake_http.behaviour.fail_next = 1
    before = (len(fake_hoiio.requests), len(fake_http.requests))
    # "m " first: a text that is only STOP, HELP... goes to compliance, not to the rule.
    sms_id = f"{next(_serial)}{sms_id}"
    data = {"event": "mo_sms", "sms": sms_id, "phone": phone, "text": "m " + text}
    status, body = await post(server, "/webhooks/textit", data)
    _ran["textit"] += 1
    _ran["textit 400"] += status == 400
    if status == 400:  # refused as a whole (e.g. a number the adapter cannot take): no effect
        assert len(fake_hoiio.requests) == before[0]
        return
    assert status == 200, body
    sms = await sent(fake_hoiio, before[0], "the SMS")
    hooks = await sent(fake_http, before[1], "the webhook")
    sms_key = check_retried_under_one_key(sms)
    hook_key = check_retried_under_one_key(hooks)
    assert sms_key != hook_key
    contact = sms[-1].params["dest"][:300]
    # The values came through the URL, the headers and the JSON body unchanged in meaning
    # (the JSON body is the reference; the SMS, cut to Hoiio's three parts, a prefix of it).
    hook = hooks[-1]
    said = hook.json["text"]
    assert said.startswith(sms[-1].params["msg"].removeprefix("Got: "))
    path, _, query = hook.target.partition("?")
    assert path.count("/") == 2  # /hook/<contact>: no segment added
    assert unquote(path.removeprefix("/hook/")) == contact
    assert [name for name, _ in parse_qsl(query)] == ["text", "n"]  # no parameter added
    assert hook.params.keys() == {"text", "n"}  # no parameter added
    assert hook.params["text"] == said
    assert hook.headers["X-Contact"] == one_line(contact)
    assert hook.headers["X-Text"] == f"<{one_line(said)}>"
    assert hook.json == {"contact": contact, "text": said}
    # The same webhook again: the same event, answered from the store, nothing sent.
    again = await server.client.post("/webhooks/textit", data=data)
    assert (again.status, await again.read()) == (status, body)
    await asyncio.sleep(0.05)
    assert len(fake_hoiio.requests) == before[0] + 2
    assert len(fake_http.requests) == before[1] + 2
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    one_line_each(caplog.records)


@PROPERTY
@given(txn_ref=VALUE, sender=VALUE, msg=VALUE)
@example(txn_ref="T1\r\nX: y", sender="+6591234567", msg="hi")
async def test_hoiio_sms_ids_numbers_and_texts_are_data(
    make_client, tmp_path, fake_hoiio, fake_http, caplog, txn_ref: str, sender: str, msg: str
) -> None:
    caplog.set_level(logging.WARNING)
    cache = _cache.setdefault(id(make_client), {})
    server = await server_for(cache, make_client, tmp_path, fake_hoiio, fake_http)
    fake_hoiio.behaviour.fail_next = 1
    fake_http.behaviour.fail_next = 1
    before = (len(fake_hoiio.requests), len(fake_http.requests))
    txn_ref = f"{next(_serial)}{txn_ref}"
    data = {"txn_ref": txn_ref, "from": sender, "to": "+6560000000", "msg": "m " + msg}
    status, body = await post(server, "/webhooks/hoiio", data)
    _ran["hoiio sms"] += 1
    _ran["hoiio sms 400"] += status == 400
    if status == 400:
        assert len(fake_hoiio.requests) == before[0]
        return
    assert status == 200, body
    check_retried_under_one_key(await sent(fake_hoiio, before[0], "the SMS"))
    hook = await sent(fake_http, before[1], "the webhook")
    check_retried_under_one_key(hook)
    assert hook[-1].params.keys() == {"text", "n"}
    again = await server.client.post("/webhooks/hoiio", data=data)
    assert (again.status, await again.read()) == (status, body)
    await asyncio.sleep(0.05)
    assert len(fake_hoiio.requests) == before[0] + 2
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    one_line_each(caplog.records)


@PROPERTY
@given(session=VALUE, txn_ref=VALUE, caller=VALUE)
@example(session="S-1\r\n&app_state=x", txn_ref="T:1", caller="+65%00")
async def test_hoiio_sessions_are_data(
    make_client, tmp_path, fake_hoiio, fake_http, caplog, session: str, txn_ref: str, caller: str
) -> None:
    """An IVR call answered with any session: its first block is sent with a notify_url
    whose query is exactly the signed state, and the notification that comes back to it,
    with the same session, is verified and moves the call on."""
    caplog.set_level(logging.WARNING)
    cache = _cache.setdefault(id(make_client), {})
    server = await server_for(cache, make_client, tmp_path, fake_hoiio, fake_http)
    fake_hoiio.behaviour.fail_next = 1
    before = len(fake_hoiio.requests)
    session = f"{next(_serial)}{session}"
    answer = {
        "ivr_block": "answer",
        "session": session,
        "txn_ref": txn_ref,
        "from": caller,
        "to": "+6531234567",
    }
    status, body = await post(server, "/webhooks/hoiio", answer)
    _ran["hoiio ivr"] += 1
    _ran["hoiio ivr 400"] += status == 400
    if status == 400:
        assert len(fake_hoiio.requests) == before
        return
    assert status == 200, body
    blocks = await sent(fake_hoiio, before, "the first block")
    check_retried_under_one_key(blocks)
    notify = urlsplit(blocks[-1].params["notify_url"])
    assert (notify.scheme, notify.netloc, notify.path) == (
        "https",
        "ivr.example.org",
        "/webhooks/hoiio",
    )
    query = dict(parse_qsl(notify.query))
    assert query.keys() == {"app_state", "sig"}
    # Hoiio's notification about the gather, to that URL, with the same session.
    fake_hoiio.behaviour.fail_next = 0
    pressed = await server.client.post(
        f"/webhooks/hoiio?{notify.query}",
        data={
            "ivr_block": "gather",
            "session": session,
            "txn_ref": txn_ref,
            "from": caller,
            "digits": "2",
        },
    )
    assert pressed.status == 200, await pressed.read()
    await wait_for(lambda: len(fake_hoiio.requests) >= before + 3, 15, "the next block")
    assert fake_hoiio.requests[-1].path.endswith("ivr/middle/record")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    one_line_each(caplog.records)


def test_the_properties_ran(record_figure) -> None:
    """Reports how many generated webhooks each property sent (it runs after them)."""
    if not _ran:
        pytest.skip("the properties did not run in this session")
    record_figure(
        "identifiers are data (hypothesis over real HTTP, "
        + ", ".join(
            f"{kind}: {_ran[kind]} webhooks, {_ran[kind + ' 400']} refused whole with 400"
            for kind in ("textit", "hoiio sms", "hoiio ivr")
        )
        + "): each one answered sent its calls twice under one key, values read back exactly "
        "from URL, headers and body, the same webhook again sent nothing, every log line one line"
    )
