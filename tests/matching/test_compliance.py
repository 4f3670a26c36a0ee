"""The compliance model: which messages are STOP/START/HELP, when quiet hours end, and
which outbound calls reach a contact."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from responder.events import Event
from responder.matching.compliance import (
    DEFAULT_STOP,
    Compliance,
    QuietHours,
    defer,
    event_contact,
    recipient,
)
from responder.outbound import OutboundCall

ALICE = "+6591234567"
SGT = ZoneInfo("Asia/Singapore")
NEW_YORK = ZoneInfo("America/New_York")


def sms(text: str | None, kind: str = "sms.received", **kw: object) -> Event:
    fields: dict[str, object] = {"contact": ALICE, **kw}
    return Event(provider="textit", channel="textit", kind=kind, text=text, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "stop",
        "Stop",
        "  STOP  ",
        "STOP.",
        "stop!",
        "¡Stop!",
        "\tStOp\n",
        "UNSUBSCRIBE",
        "end",
        "Quit",
        "CANCEL",
        "stopall",
        "Arrêt",
        "ARRET",
        "baja",
        "Stopp",
        "berhenti",
        "退订",
    ],
)
def test_stop_words_in_any_case_with_punctuation_and_spaces(text: str) -> None:
    assert Compliance().keyword(sms(text)) == "stop"


@pytest.mark.parametrize("text", ["START", "start!", " Unstop ", "resume", "Subscribe."])
def test_start_words(text: str) -> None:
    assert Compliance().keyword(sms(text)) == "start"


@pytest.mark.parametrize("text", ["HELP", "help?", " Help "])
def test_help_word(text: str) -> None:
    assert Compliance().keyword(sms(text)) == "help"


@pytest.mark.parametrize(
    "text",
    [
        "please stop",  # not the whole message: a sentence is for the rules
        "stop it",
        "stopping",
        "don't stop",
        "STOP STOP",
        "helpful",
        "",
        "   ",
        "...",
        "s t o p",
    ],
)
def test_other_texts_are_not_keywords(text: str) -> None:
    assert Compliance().keyword(sms(text)) is None


def test_only_incoming_sms_with_a_sender_are_keywords() -> None:
    compliance = Compliance()
    assert compliance.keyword(sms("STOP", kind="flow.step")) is None
    assert compliance.keyword(sms("STOP", kind="sms.sent")) is None
    assert compliance.keyword(sms(None)) is None
    assert compliance.keyword(sms("STOP", contact=None)) is None
    # A TextIt contact known only by UUID can still opt out.
    assert compliance.keyword(sms("STOP", contact=None, contact_uuid="c-1")) == "stop"


def test_configured_words_replace_the_defaults() -> None:
    compliance = Compliance(stop_words=frozenset({"halt", "stopp"}))
    assert compliance.keyword(sms("HALT")) == "stop"
    assert compliance.keyword(sms("stop")) is None
    assert "stop" in DEFAULT_STOP


def test_event_contact_prefers_the_number() -> None:
    assert event_contact(sms("x", contact_uuid="c-1")) == ALICE
    assert event_contact(sms("x", contact=None, contact_uuid="c-1")) == "c-1"
    assert event_contact(sms("x", contact=None)) is None


# -- quiet hours ------------------------------------------------------------------------------


def at(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone).astimezone(UTC)  # type: ignore[misc]


def test_quiet_hours_across_midnight() -> None:
    quiet = QuietHours(SGT, time(21, 0), time(8, 0))
    assert quiet.quiet_until(at(SGT, 2026, 3, 10, 20, 59)) is None
    assert quiet.quiet_until(at(SGT, 2026, 3, 10, 21, 0)) == at(SGT, 2026, 3, 11, 8, 0)
    assert quiet.quiet_until(at(SGT, 2026, 3, 10, 23, 30)) == at(SGT, 2026, 3, 11, 8, 0)
    assert quiet.quiet_until(at(SGT, 2026, 3, 11, 3, 0)) == at(SGT, 2026, 3, 11, 8, 0)
    assert quiet.quiet_until(at(SGT, 2026, 3, 11, 8, 0)) is None


def test_quiet_hours_within_one_day() -> None:
    quiet = QuietHours(SGT, time(12, 0), time(14, 0), "drop")
    assert quiet.quiet_until(at(SGT, 2026, 3, 10, 11, 59)) is None
    assert quiet.quiet_until(at(SGT, 2026, 3, 10, 13, 0)) == at(SGT, 2026, 3, 10, 14, 0)
    assert quiet.quiet_until(at(SGT, 2026, 3, 10, 14, 0)) is None


def test_quiet_hours_end_at_local_time_across_a_dst_change() -> None:
    quiet = QuietHours(NEW_YORK, time(21, 0), time(8, 0))
    # The night clocks go forward (2026-03-08): 23:00 EST, the window ends 08:00 EDT.
    end = quiet.quiet_until(at(NEW_YORK, 2026, 3, 7, 23, 0))
    assert end == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)  # 08:00 EDT = 12:00 UTC
    # The night they go back (2026-11-01): 08:00 EST = 13:00 UTC.
    end = quiet.quiet_until(at(NEW_YORK, 2026, 10, 31, 22, 0))
    assert end == datetime(2026, 11, 1, 13, 0, tzinfo=UTC)


def test_quiet_hours_to_midnight() -> None:
    quiet = QuietHours(SGT, time(22, 0), time(23, 59, 59, 999999))
    end = quiet.quiet_until(at(SGT, 2026, 3, 10, 23, 0))
    assert end is not None
    assert end.astimezone(SGT).time() == time(23, 59, 59, 999999)


# -- recipients -------------------------------------------------------------------------------


def call(
    provider: str, endpoint: str, params: dict[str, object], contact: str | None = None
) -> OutboundCall:
    return OutboundCall("k", provider, endpoint, params, contact=contact)


def test_recipient_of_each_kind_of_call() -> None:
    assert recipient(call("hoiio", "sms/send", {"dest": ALICE, "msg": "hi"})) == ALICE
    assert recipient(call("hoiio", "ivr/start/dial", {"dest": ALICE})) == ALICE
    assert recipient(call("textit", "broadcasts.json", {"urns": [f"tel:{ALICE}"]})) == ALICE
    assert (
        recipient(call("textit", "broadcasts.json", {"urns": ["whatsapp:123"]})) == "whatsapp:123"
    )
    assert recipient(call("textit", "messages.json", {}, contact=ALICE)) == ALICE
    # Not messages to a contact: IVR blocks of a call in progress, transfers, own webhooks.
    assert recipient(call("hoiio", "ivr/end/hangup", {"session": "S-1"})) is None
    assert recipient(call("hoiio", "ivr/end/transfer", {"dest": "+6561234567"})) is None
    assert recipient(call("hoiio", "ivr/middle/gather", {"session": "S-1"})) is None
    assert recipient(call("http", "https://example.com/hook", {}, contact=ALICE)) is None
    assert recipient(call("hoiio", "sms/send", {"dest": ""})) is None


def test_defer_holds_a_call_until_a_time() -> None:
    held = defer(call("hoiio", "sms/send", {"dest": ALICE}), 123.0)
    assert held.not_before == 123.0
    assert held.params == {"dest": ALICE}
