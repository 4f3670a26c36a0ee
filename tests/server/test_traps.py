"""Traps rule authors fall into, over real HTTP: a compliance word inside a dialogue, a
"from anywhere" handler, a flow value the run has not collected, texts a provider refuses,
the old transfer status spelling, and what /healthz counts."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from responder.actions.sms_parts import GSM_LIMIT, UNICODE_LIMIT
from responder.testing.fakes import FakeProvider
from tests.conftest import wait_for, write_rules

ALICE = "+6591234567"
BOB = "+6598765432"
ORDER = """
dialogues:
  - name: order
    mode: sms
    start: {on: sms.received, when: {text: {keyword: [order]}}}
    any:
      - {text: {only: [cancel]}, goto: cancelled}
      - {text: {only: [menu]}, goto: menu}
    states:
      menu:
        say: "1 pizza, 2 pasta"
        on:
          - {text: {only: ["1", "2"]}, set: {dish: "{{ text }}"}, goto: size}
      size:
        say: "Size? S, M or L"
        on:
          - {text: {only: [s, m, l]}, goto: done}
      done: {say: "Ordered.", end: true, outcome: ordered}
      cancelled: {say: "Order cancelled.", end: true, outcome: cancelled}
"""


def sms(n: int, contact: str, text: str) -> dict[str, str]:
    return {"event": "mo_sms", "sms": f"T{n}", "phone": contact, "text": text}


async def say(client: Any, n: int, contact: str, text: str) -> str | None:
    response = await client.post("/webhooks/textit", data=sms(n, contact, text))
    assert response.status == 200
    body = await response.read()
    return json.loads(body)["text"] if body else None


async def test_cancel_ends_the_dialogue_while_active_and_opts_out_otherwise(
    make_client: Any, tmp_path: Path
) -> None:
    client = await make_client(write_rules(tmp_path / "r", ORDER))
    assert await say(client, 1, ALICE, "order") == "1 pizza, 2 pasta"
    assert await say(client, 2, ALICE, "1") == "Size? S, M or L"
    # CANCEL is an opt-out word, but the active dialogue's any: takes it first.
    assert await say(client, 3, ALICE, "Cancel") == "Order cancelled."
    # Alice is still subscribed: a new order starts.
    assert await say(client, 4, ALICE, "order") == "1 pizza, 2 pasta"
    # MENU from any waiting state goes back to the menu.
    assert await say(client, 5, ALICE, "2") == "Size? S, M or L"
    assert await say(client, 6, ALICE, "menu") == "1 pizza, 2 pasta"
    # STOP always opts out, dialogue or not.
    assert (await say(client, 7, ALICE, "stop") or "").startswith("You have been unsubscribed")
    assert await say(client, 8, ALICE, "order") is None
    # Without an active dialogue, CANCEL is the opt-out word it always was.
    assert (await say(client, 9, BOB, "cancel") or "").startswith("You have been unsubscribed")
    assert await say(client, 10, BOB, "order") is None


async def test_a_flow_value_the_run_has_not_collected_renders_blank(
    make_client: Any, tmp_path: Path
) -> None:
    rules = write_rules(
        tmp_path / "r",
        """
        rules:
          - name: status
            on: flow.step
            reply:
              json:
                order: "{{ values.order.value }}"
                shipping: "[{{ values.shipping.value }}]"
                method: "{{ values.shipping.category | default('none') }}"
        """,
    )
    client = await make_client(rules)
    flow = {
        "contact": "C-1",
        "flow": "7",
        "step": "S-1",
        "run": "R-1",
        "time": "2026-12-06T10:00:00Z",
        "values": json.dumps([{"label": "Order", "value": "CU1", "category": "All"}]),
    }
    response = await client.post("/webhooks/textit", data=flow)
    assert response.status == 200
    assert await response.json() == {"order": "CU1", "shipping": "[]", "method": "none"}


async def test_a_blank_reply_is_not_sent_and_is_counted(
    make_client: Any, tmp_path: Path, fake_hoiio: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    rules = write_rules(
        tmp_path / "r",
        """
        rules:
          - name: echo
            on: sms.received
            reply: {text: "{{ captures.nothing | default('') }}  "}
            sms: {via: hoiio, to: "+6500000001", text: "{{ '' }}"}
        """,
    )
    client = await make_client(rules)
    caplog.set_level(logging.WARNING)
    response = await client.post("/webhooks/textit", data=sms(1, ALICE, "hello"))
    assert response.status == 200
    assert await response.read() == b""  # no {"text": ""}: TextIt refuses a blank text
    hoiio = await client.post("/webhooks/hoiio", data={"from": ALICE, "msg": "x", "txn_ref": "H1"})
    assert hoiio.status == 200
    metrics = await (await client.get("/metrics")).text()
    assert 'responder_blank_texts_total{rule="echo"} 4.0' in metrics
    assert fake_hoiio.calls("/sms/send") == []
    assert any("rule 'echo': its reply text rendered empty" in r.message for r in caplog.records)


@pytest.mark.parametrize(
    ("text", "limit"),
    [("x" * 600, GSM_LIMIT), ("{" * 300, GSM_LIMIT), ("中" * 300, UNICODE_LIMIT)],
    ids=["gsm", "gsm-extended", "unicode"],
)
async def test_a_hoiio_sms_longer_than_three_parts_is_cut_the_same_on_every_path(
    make_client: Any, tmp_path: Path, fake_hoiio: FakeProvider, text: str, limit: int
) -> None:
    rules = write_rules(
        tmp_path / "r",
        """
        rules:
          - name: long
            on: sms.received
            when: {provider: hoiio}
            reply: {text: "{{ text }}"}
          - name: long-sms
            on: sms.received
            when: {provider: textit}
            sms: {via: hoiio, text: "{{ text }}"}
        """,
    )
    client = await make_client(rules)
    await client.post("/webhooks/hoiio", data={"from": ALICE, "msg": text, "txn_ref": "H1"})
    await client.post("/webhooks/textit", data=sms(2, ALICE, text))
    await wait_for(lambda: len(fake_hoiio.calls("/sms/send")) == 2)
    sent = [r.params["msg"] for r in fake_hoiio.calls("/sms/send")]
    assert sent[0] == sent[1]
    assert sent[0] == text[: limit // 2] if text[0] == "{" else sent[0] == text[:limit]


async def test_the_old_no_answer_spelling_matches_unanswered(
    make_client: Any, tmp_path: Path, fake_hoiio: FakeProvider
) -> None:
    rules = write_rules(
        tmp_path / "r",
        """
        rules:
          - name: transfer-failed
            on: ivr.transfer
            when: {status: [no_answer]}
            hangup: {say: "Nobody answered."}
        """,
    )
    client = await make_client(rules)
    data = {
        "ivr_block": "transfer",
        "session": "S-1",
        "txn_ref": "T-1",
        "from": ALICE,
        "transfer_status": "unanswered",
    }
    assert (await client.post("/webhooks/hoiio", data=data)).status == 200
    await wait_for(lambda: len(fake_hoiio.calls("/ivr/end/hangup")) == 1)


async def test_healthz_counts_rules_and_dialogues(make_client: Any, tmp_path: Path) -> None:
    client = await make_client(write_rules(tmp_path / "r", ORDER))
    health = await (await client.get("/healthz")).json()
    assert (health["rules"], health["dialogues"]) == (0, 1)
