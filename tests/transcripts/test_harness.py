"""The harness plays webhooks through the real engine and store, on a fake clock."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest

from responder.rules.loader import load_rules
from responder.transcripts.harness import Harness, Setup, StepFailed
from tests.conftest import REPO

UTC_ZONE = ZoneInfo("UTC")
T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def setup(provider: str = "textit") -> Setup:
    return Setup(provider, provider, "+6591234567", None, "+6531234567", T0, UTC_ZONE)


async def harness_for(rules: Path, provider: str = "textit") -> Harness:
    h = Harness(load_rules([rules]), setup(provider))
    await h.open()
    return h


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "rules.yaml").write_text(textwrap.dedent(text))
    return tmp_path


async def test_ivr_results_go_to_the_signed_notify_url() -> None:
    h = await harness_for(REPO / "examples" / "ivr-menu", "hoiio")
    seen = await h.incoming_call(False, "+6591234567", None)
    [gather] = seen.calls
    query = parse_qs(urlsplit(gather.params["notify_url"]).query)
    assert query["app_state"] == ["main-menu:menu:1"]
    assert query["sig"]
    seen = await h.ivr_result("gather", {"digits": "2"})
    assert [c.endpoint for c in seen.calls] == ["ivr/middle/record"]
    with pytest.raises(StepFailed, match="pending IVR block is ivr/middle/record, not gather"):
        await h.ivr_result("gather", {"digits": "1"})
    conversation = await h.conversation_now()
    assert conversation is not None
    assert conversation.state == "voicemail"


async def test_a_tampered_state_is_refused_like_the_server_does() -> None:
    h = await harness_for(REPO / "examples" / "ivr-menu", "hoiio")
    await h.incoming_call(False, "+6591234567", None)
    assert h.call is not None
    assert h.call.notify is not None
    h.call.notify = h.call.notify.replace("main-menu%3Amenu", "main-menu%3Asales")
    with pytest.raises(StepFailed, match="403"):
        await h.ivr_result("gather", {"digits": "1"})


async def test_missed_is_a_textit_event_only() -> None:
    h = await harness_for(REPO / "examples" / "ivr-menu", "hoiio")
    with pytest.raises(StepFailed, match="Hoiio reports no missed calls"):
        await h.incoming_call(True, "+6591234567", None)
    with pytest.raises(StepFailed, match="no call in progress"):
        await h.hangup()
    with pytest.raises(StepFailed, match="no webhook to repeat"):
        await h.repeat()


async def test_advance_fires_each_timer_at_its_own_time() -> None:
    h = await harness_for(REPO / "examples" / "sms-survey")
    await h.sms("JOIN", "+6591234567", None)
    seen = await h.advance(h.clock.now + 3 * 3600)
    # Reminder at +1h, give-up an hour after the reminder: both inside the 3 hours.
    texts = [c.params["text"] for c in seen.calls]
    assert texts[0].startswith("Reminder: how would you rate")
    assert texts[1].startswith("No problem")
    assert h.clock.now == T0.timestamp() + 3 * 3600
    conversation = await h.conversation_now()
    assert conversation is not None
    assert (conversation.outcome, conversation.updated) == ("no answer", T0.timestamp() + 7200)
    with pytest.raises(StepFailed, match="cannot go back"):
        await h.advance(T0.timestamp())


async def test_quiet_hours_hold_calls_until_the_window_ends(tmp_path: Path) -> None:
    rules = write(
        tmp_path,
        """
        compliance:
          quiet_hours: {timezone: UTC, hours: "09:00-12:00"}
        rules:
          - name: notify-staff
            on: sms.received
            sms: {to: "+6580000000", text: "New message from {{ contact }}"}
        """,
    )
    h = await harness_for(rules)
    seen = await h.sms("hello", "+6591234567", None)
    assert seen.calls == []
    [held] = seen.held
    assert held.not_before == datetime(2026, 1, 5, 12, 0, tzinfo=UTC).timestamp()
    seen = await h.advance(h.clock.now + 3600)
    assert seen.calls == []
    seen = await h.advance(h.clock.now + 3600)
    assert [c.params["text"] for c in seen.calls] == ["New message from +6591234567"]


async def test_repeat_replays_the_stored_answer_and_sends_nothing() -> None:
    h = await harness_for(REPO / "examples" / "keyword-autoresponder")
    first = await h.sms("order 123456", "+6591234567", None)
    assert first.reply is not None
    assert len(first.calls) == 1
    again = await h.repeat()
    assert again.reply == first.reply
    assert again.calls == []
    assert again.matched == []


async def test_flow_steps_carry_values_and_answer_json() -> None:
    h = await harness_for(REPO / "examples" / "flow-order-status")
    seen = await h.flow(
        {"name": "Order Status", "values": {"Order Number": "CU042"}}, "+12024561111", None
    )
    assert seen.body == {"status": "Processing", "order": "CU042", "eta": "within a week"}
    assert seen.matched == ["order-status-standard"]


async def test_played_blocks_and_raw_webhooks(tmp_path: Path) -> None:
    rules = write(
        tmp_path,
        """
        rules:
          - name: delivered
            on: sms.delivered
            http: {url: "https://hooks.test/delivered", json: {to: "{{ contact }}"}}
        dialogues:
          - name: hello
            start: {on: ivr.answer}
            states:
              intro: {say: "Hello.", next: bye}
              bye: {hangup: {say: "Bye."}, outcome: greeted}
        """,
    )
    h = await harness_for(rules, "hoiio")
    seen = await h.incoming_call(False, "+6591234567", None)
    assert [(c.endpoint, c.params["msg"]) for c in seen.calls] == [("ivr/middle/play", "Hello.")]
    seen = await h.ivr_result("play", {})
    assert [c.endpoint for c in seen.calls] == ["ivr/end/hangup"]
    conversation = await h.conversation_now()
    assert conversation is not None
    assert conversation.outcome == "greeted"
    seen = await h.webhook({"txn_ref": "AA-1", "sms_status": "delivered", "dest": "+6590000000"})
    assert seen.matched == ["delivered"]
    assert seen.calls[0].params["json"] == {"to": "+6590000000"}
