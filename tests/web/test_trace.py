"""One trace per webhook over real HTTP: the trace id header, what matched, the effects,
dialogue transitions, timings, masked contacts, and never a secret."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from responder.conversations import Conversation
from responder.events import Event
from responder.outbound import OutboundCall
from responder.runtime.outcome import Outcome
from responder.testing.fakes import FakeProvider
from responder.web.logs import JsonFormatter, TextFormatter, TraceFilter
from responder.web.server import _log_trace
from responder.web.trace import WebhookTrace, _summary, webhook_trace
from tests.conftest import REPO, wait_for, write_rules

RULES = """
rules:
  - name: hours
    on: sms.received
    when: {text: {keyword: hours}}
    reply: {text: "We are open 9-18, {{ contact }}."}
    sms: {text: "asked: {{ text }}", to: "+6500000000", via: hoiio}
    http: {url: "https://hooks.example.org/in?token=hook-secret-9", json: {who: "{{ contact }}"},
           headers: {Authorization: "Bearer header-secret-7"}}
"""
SECRETS = ("hook-secret-9", "header-secret-7", "token-secret-1", "textit-secret-1", "wh-secret-5")


def describe(fields: dict[str, Any]) -> str:
    """The one-line message a trace's fields make: what a text line must say."""
    effects = fields.get("effects") or {}
    return _summary(
        fields["channel"],
        fields["kind"],
        fields.get("contact") or fields.get("session") or "-",
        duplicate=bool(fields.get("duplicate")),
        matched=fields.get("matched"),
        replied=bool(effects.get("reply")),
        calls=len(effects.get("calls") or ()),
        errors=len(fields.get("errors") or ()),
        concurrent=bool(fields.get("concurrent_duplicate")),
    )


def traces(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "responder.trace"]


def as_json(record: logging.LogRecord) -> dict[str, Any]:
    TraceFilter().filter(record)
    return dict(json.loads(JsonFormatter().format(record)))


async def test_a_webhook_trace_says_what_matched_and_what_it_led_to(
    make_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, fake_http: FakeProvider
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await make_client(
        write_rules(tmp_path / "r", RULES),
        webhook_secret="wh-secret-5",
        capture_http_url=fake_http.url,
    )
    data = {"event": "mo_sms", "sms": "7", "phone": "+6591234567", "text": "hours please"}
    resp = await client.post("/webhooks/textit?secret=wh-secret-5", data=data)
    assert resp.status == 200
    trace_id = resp.headers["X-Trace-Id"]
    (record,) = traces(caplog)
    line = as_json(record)
    assert line["trace_id"] == trace_id
    assert line["event"] == "webhook"
    assert line["message"] == (
        "textit sms.received from +6591234567: rules ['hours'], replied, 2 call(s)"
    )
    assert (line["channel"], line["kind"], line["contact"]) == (
        "textit",
        "sms.received",
        "+6591234567",
    )
    assert line["text"] == "hours please"
    assert line["matched"] == ["hours"]
    assert line["effects"]["reply"] == {"text": "We are open 9-18, +6591234567."}
    sms, hook = line["effects"]["calls"]
    assert sms == {
        "provider": "hoiio",
        "action": "sms/send",
        "endpoint": "sms/send",
        "rule": "hours",
        "params": {"dest": "+6500000000", "msg": "asked: hours please"},
    }
    assert hook["endpoint"] == "https://hooks.example.org/in?..."
    assert hook["params"] == {}
    assert set(line["timings_ms"]) == {"total", "engine", "commit"}
    assert all(v >= 0 for v in line["timings_ms"].values())
    await wait_for(lambda: len(fake_http.requests) == 1)
    # The retry of the same delivery is traced as such.
    resp = await client.post("/webhooks/textit?secret=wh-secret-5", data=data)
    retry = as_json(traces(caplog)[1])
    assert retry["duplicate"] is True
    assert retry["trace_id"] == resp.headers["X-Trace-Id"] != trace_id
    # (aiohttp's access log, which `responder serve` turns off, would show the query string.)
    ours = [r for r in caplog.records if r.name.startswith("responder")]
    everything = "".join(r.getMessage() + json.dumps(as_json(r)) for r in ours)
    for secret in SECRETS:
        assert secret not in everything


async def test_contacts_can_be_masked(
    make_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client = await make_client(write_rules(tmp_path / "r", RULES), log_contacts="masked")
    data = {"event": "mo_sms", "sms": "8", "phone": "+6591234567", "text": "hours"}
    assert (await client.post("/webhooks/textit", data=data)).status == 200
    line = as_json(traces(caplog)[0])
    assert line["contact"] == "+65*****567"
    assert line["effects"]["calls"][0]["params"]["dest"] == "+65*****000"


async def test_a_dialogue_step_is_traced_with_its_transition(
    make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    client = await make_client(REPO / "examples" / "sms-survey")
    for n, text in enumerate(["JOIN", "5"]):
        data = {"event": "mo_sms", "sms": f"s{n}", "phone": "+6591234567", "text": text}
        assert (await client.post("/webhooks/textit", data=data)).status == 200
    start, step = (as_json(r) for r in traces(caplog))
    assert start["transition"] == {"dialogue": "survey", "from": "(start)", "to": "rating"}
    assert step["transition"] == {"dialogue": "survey", "from": "rating", "to": "recommend"}
    assert step["matched"] == ["dialogue:survey"]
    assert step["effects"]["reply"]["text"].startswith("Would you recommend us")


async def test_refused_and_unknown_requests_carry_a_trace_id_too(
    make_client: Any, tmp_path: Path
) -> None:
    client = await make_client(write_rules(tmp_path / "r", RULES), webhook_secret="wh-secret-5")
    resp = await client.post("/webhooks/textit", data={"event": "mo_sms"})
    assert resp.status == 401
    assert len(resp.headers["X-Trace-Id"]) == 16
    resp = await client.post("/webhooks/nope", headers={"X-Request-Id": "lb-0123456789"})
    assert resp.status == 404
    assert resp.headers["X-Trace-Id"] == "lb-0123456789"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"matched": [], "effects": {}},
            "textit flow.step from +6591234567: no rule matched, 0 call(s)",
        ),
        (
            {"matched": ["none"], "effects": {"reply": {"text": "x"}}},
            "textit flow.step from +6591234567: rules ['none'], replied, 0 call(s)",
        ),
        (
            {"matched": [], "errors": ["dialogue: no public URL"], "effects": {"calls": [{}]}},
            "textit flow.step from +6591234567: no rule matched, 1 call(s), 1 error(s)",
        ),
    ],
)
def test_the_one_line_message_tells_no_match_from_a_rule_named_none(
    fields: dict[str, Any], message: str
) -> None:
    base = {"channel": "textit", "kind": "flow.step", "contact": "+6591234567"}
    assert describe({**base, **fields}) == message


CALL = OutboundCall(
    "k1", "hoiio", "sms/send", {"dest": "+6500000000", "msg": "hi", "n": 2}, rule="hours"
)
HOOK = OutboundCall("k2", "http", "https://hooks.example.org/in?token=t", {"a": 1}, rule="hook")
OUTCOMES = [
    None,
    Outcome(),
    Outcome(reply_text="We are open.", matched=("hours",), calls=(CALL, HOOK)),
    Outcome(variables={"b": 1, "a": 2}, matched=("flow", "more"), limited=("capped",)),
    Outcome(errors=("template failed",), matched=("none",)),
    Outcome(
        reply_text="Rate us 1-5",
        matched=("dialogue:survey",),
        transition=("survey", "(start)", "rating"),
        conversation=Conversation(
            "c", "survey", "rating", "textit", "textit", status="ended", outcome="done"
        ),
    ),
]
EVENTS = [
    Event("textit", "textit", "sms.received", contact="+6591234567", text="hours?"),
    Event("hoiio", "hoiio", "ivr.answered", session="S-1", digits="1", status="ok"),
    Event("textit", "main", "flow.step", contact="", provider_event="flow"),
]


def _old_style_record(trace: WebhookTrace) -> logging.LogRecord:
    """The record as the server logged a trace before: ``info("%s", describe(fields))``."""
    fields = webhook_trace(
        trace.event,
        trace.key,
        trace.outcome,
        fresh=trace.fresh,
        masked=trace.masked,
        timings=trace.timings,
    )
    log = logging.getLogger("responder.trace")
    return log.makeRecord(
        log.name,
        logging.INFO,
        __file__,
        1,
        "%s",
        (describe(fields),),
        None,
        extra={"trace": {"event": "webhook", **fields}, "trace_id": "6f1c2a9e0b7d4c11"},
    )


@pytest.mark.parametrize("outcome", OUTCOMES)
@pytest.mark.parametrize("event", EVENTS)
@pytest.mark.parametrize(("fresh", "masked"), [(True, False), (False, False), (True, True)])
def test_a_trace_record_writes_the_lines_the_fields_and_describe_make(
    event: Event, outcome: Outcome | None, fresh: bool, masked: bool
) -> None:
    timings = {"total": 0.00212, "engine": 0.0004, "commit": 1.5}
    trace = WebhookTrace(event, "key:1", outcome, fresh=fresh, masked=masked, timings=timings)
    record = trace.record(logging.getLogger("responder.trace"), "6f1c2a9e0b7d4c11")
    old = _old_style_record(trace)
    record.created, record.msecs = old.created, old.msecs
    assert str(trace) == describe(trace.as_dict()) == record.getMessage()
    for formatter in (JsonFormatter(), TextFormatter()):
        for each in (record, old):
            TraceFilter().filter(each)
        assert formatter.format(record) == formatter.format(old)
    assert (record.name, record.levelno) == ("responder.trace", logging.INFO)


def test_no_trace_record_is_made_when_info_is_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="responder.trace")
    trace = WebhookTrace(EVENTS[0], "k", None, fresh=False, masked=False, timings={})
    _log_trace(trace)
    assert caplog.records == []
    assert trace._message is None  # not even the message was built
    caplog.set_level(logging.INFO, logger="responder.trace")
    _log_trace(trace)
    assert [r.getMessage() for r in caplog.records] == [
        "textit sms.received from +6591234567: retried delivery answered with the stored response"
    ]
