"""Template injection over real HTTP: whatever a contact sends comes back literally, in
webhook replies, in SMS bodies, through dialogue vars and in TextIt flow values."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest

from responder.testing.fakes import FakeProvider
from tests.conftest import wait_for, write_rules

FORM = {"Content-Type": "application/x-www-form-urlencoded"}

PAYLOADS = [
    "{{ 7*7 }}",
    "{% for %}",
    "{% for x in range(3) %}{{ x }}{% endfor %}",
    "{{ ''.__class__.__mro__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ self.__init__.__globals__.__builtins__ }}",
    "{{ config }}{% raw %}",
    "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "{{ 'x' * 100000000 }}",
    "{# unterminated",
    "{{ text }} {{ vars }} {{ event }}",
]

RULES = """
rules:
  - name: echo
    on: sms.received
    when: {text: {regex: "^echo (?P<said>.*)$"}}
    reply: {text: "You said: {{ captures.said }}|{{ text | upper }}"}
    sms: {text: "Copy: {{ text }}", to: "+6500000000", via: hoiio}
  - name: flow
    on: flow.step
    reply:
      json: {echo: "{{ values.answer.value }}", said: "{{ values.answer.text }}"}
  - name: ask
    on: sms.received
    when: {text: {keyword: [ask]}}
    start: ask

dialogues:
  - name: ask
    mode: sms
    states:
      question:
        say: "What is your name?"
        on:
          - {otherwise: true, set: {name: "{{ text }}"}, goto: greet}
      greet:
        say: "Hello {{ vars.name }}! Your name has {{ vars.name | length }} characters."
        end: true
"""


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    return write_rules(tmp_path / "r", RULES)


def mo_sms(sms_id: int, text: str) -> str:
    return f"event=mo_sms&sms={sms_id}&phone=%2B250788123123&text={quote(text)}"


@pytest.mark.parametrize("payload", PAYLOADS)
async def test_reply_and_sms_carry_the_text_literally(
    make_client, rules: Path, fake_hoiio: FakeProvider, payload: str
) -> None:
    client = await make_client(rules)
    resp = await client.post("/webhooks/textit", data=mo_sms(1, f"echo {payload}"), headers=FORM)
    assert resp.status == 200
    reply = await resp.json()
    assert reply["text"] == f"You said: {payload}|ECHO {payload.upper()}"
    await wait_for(lambda: len(fake_hoiio.calls("sms/send")) == 1)
    assert fake_hoiio.calls("sms/send")[0].params["msg"] == f"Copy: echo {payload}"


@pytest.mark.parametrize("payload", PAYLOADS)
async def test_hoiio_sms_reply_carries_the_text_literally(
    make_client, rules: Path, fake_hoiio: FakeProvider, payload: str
) -> None:
    client = await make_client(rules)
    body = f"txn_ref=AA-SI-1&from=%2B6591234567&to=%2B6531234567&msg={quote('echo ' + payload)}"
    assert (await client.post("/webhooks/hoiio", data=body, headers=FORM)).status == 200
    await wait_for(lambda: len(fake_hoiio.calls("sms/send")) == 2)
    sent = {r.params["dest"]: r.params["msg"] for r in fake_hoiio.calls("sms/send")}
    assert sent["+6591234567"] == f"You said: {payload}|ECHO {payload.upper()}"
    assert sent["+6500000000"] == f"Copy: echo {payload}"


@pytest.mark.parametrize("payload", PAYLOADS)
async def test_dialogue_vars_stay_data_when_rendered_later(
    make_client, rules: Path, payload: str
) -> None:
    client = await make_client(rules)
    first = await client.post("/webhooks/textit", data=mo_sms(1, "ask"), headers=FORM)
    assert (await first.json())["text"] == "What is your name?"
    second = await client.post("/webhooks/textit", data=mo_sms(2, payload), headers=FORM)
    assert second.status == 200
    assert (await second.json())["text"] == (
        f"Hello {payload}! Your name has {len(payload)} characters."
    )


@pytest.mark.parametrize("payload", PAYLOADS)
async def test_flow_values_stay_data(make_client, rules: Path, payload: str) -> None:
    client = await make_client(rules)
    document = {
        "contact": {"uuid": "5d76d86b-3bb9-4d5a-b822-c9d86f5d8e4f", "urn": "tel:+12024561111"},
        "flow": {"uuid": "50c3706e-fedb-42c0-8eab-dda3335714b7", "name": "Survey"},
        "results": {"answer": {"value": payload, "category": "All Responses", "input": payload}},
    }
    resp = await client.post(
        "/webhooks/textit", data=json.dumps(document), headers={"Content-Type": "application/json"}
    )
    assert resp.status == 200
    assert (await resp.json())["echo"] == payload
    # The legacy form webhook: values as a JSON list inside a form field.
    values = json.dumps(
        [
            {
                "label": "Answer",
                "category": {"base": "All Responses"},
                "value": payload,
                "text": payload,
            }
        ]
    )
    legacy = f"event=flow&run=7&flow=3&phone=%2B1&step=s-1&text=x&values={quote(values)}"
    resp = await client.post("/webhooks/textit", data=legacy, headers=FORM)
    assert resp.status == 200
    assert await resp.json() == {"echo": payload, "said": payload}


@pytest.mark.parametrize(
    "template",
    [
        "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}",
        "{{ text * 100000000 }}",
        "{% for a in range(10000) %}{{ text }}{% endfor %}",
        "{{ '%0100000000d' % 1 }}",
    ],
)
async def test_a_template_over_a_limit_answers_safely_and_sends_nothing(
    make_client, tmp_path: Path, fake_hoiio: FakeProvider, caplog, template: str
) -> None:
    rules = write_rules(
        tmp_path / "r",
        f"""
        rules:
          - name: costly
            on: sms.received
            reply: {{text: "first part"}}
            sms:
              - {{text: "queued before the failure", to: "+6500000000", via: hoiio}}
              - {{text: {json.dumps(template)}, to: "+6500000001", via: hoiio}}
        """,
    )
    client = await make_client(rules)
    resp = await client.post("/webhooks/textit", data=mo_sms(1, "hello"), headers=FORM)
    assert resp.status == 200
    assert await resp.read() == b""  # no half reply: the rule's actions all go, or none
    from responder.web.server import STORE

    assert await client.server.app[STORE].outbox() == []
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("rule 'costly': template failed: " in e for e in errors), errors
    assert fake_hoiio.requests == []
