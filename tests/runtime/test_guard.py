"""The guard against a real store (in memory, a SQLite file and Redis): opt-outs, caps,
quiet hours and the loop guard applied to outcomes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from responder.conversations import Conversation, TimerWrite
from responder.events import Event
from responder.matching.compliance import Compliance, QuietHours, Window
from responder.outbound import Commit, OutboundCall, StoredResponse
from responder.runtime.guard import TIMEOUT_KIND, Guard, own_counts
from responder.runtime.outcome import Outcome
from responder.stores import open_store
from responder.stores.base import Store, Wanted
from responder.stores.prefetched import Prefetched

ALICE = "+6591234567"
BOB = "+6598765432"
SGT = ZoneInfo("Asia/Singapore")
# 2026-03-10 15:00 in Singapore (a Tuesday afternoon), and 23:00 the same day.
AFTERNOON = datetime(2026, 3, 10, 15, 0, tzinfo=SGT).timestamp()
NIGHT = datetime(2026, 3, 10, 23, 0, tzinfo=SGT).timestamp()
MORNING = datetime(2026, 3, 11, 8, 0, tzinfo=SGT).timestamp()
OK = StoredResponse(200, "text/plain", b"")


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'g.db'}"
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
    s = open_store(url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def event(contact: str = ALICE, kind: str = "sms.received", provider: str = "textit") -> Event:
    return Event(provider=provider, channel=provider, kind=kind, contact=contact, text="hi")


def hoiio_sms(key: str, to: str) -> OutboundCall:
    return OutboundCall(key, "hoiio", "sms/send", {"dest": to, "msg": "hi"}, contact=to)


def broadcast(key: str, to: str) -> OutboundCall:
    return OutboundCall(key, "textit", "broadcasts.json", {"urns": [f"tel:{to}"], "text": "hi"})


def webhook(key: str) -> OutboundCall:
    return OutboundCall(key, "http", "https://example.com/hook", {"json": {}}, contact=ALICE)


def dial(key: str, to: str) -> OutboundCall:
    return OutboundCall(key, "hoiio", "ivr/start/dial", {"dest": to}, contact=to)


async def opt(store: Store, contact: str, out: bool, now: float = AFTERNOON) -> None:
    await store.commit(
        Commit(f"opt-{contact}-{out}-{now}", OK, now=now, opt_outs=((contact, out),))
    )


async def record(store: Store, outcome: Outcome, key: str, now: float) -> None:
    """Commit the way the server does, so the guard's hits count next time."""
    _, fresh, _ = await store.commit(Commit(key, OK, outcome.calls, outcome.hits, now))
    assert fresh


def keys(outcome: Outcome) -> list[str]:
    return [call.key for call in outcome.calls]


# -- opt-outs ---------------------------------------------------------------------------------


async def test_opted_out_contact_gets_no_reply_sms_or_dial(store: Store) -> None:
    await opt(store, ALICE, True)
    guard = Guard(store)
    outcome = Outcome(
        reply_text="Hello",
        calls=(hoiio_sms("a", ALICE), broadcast("b", ALICE), webhook("c"), hoiio_sms("d", BOB)),
    )
    got = await guard.apply(Compliance(), event(), outcome, AFTERNOON)
    assert got.reply_text is None
    assert keys(got) == ["c", "d"]  # our own webhook and another contact still go


async def test_opt_out_holds_across_providers_and_opt_in_lifts_it(store: Store) -> None:
    guard = Guard(store)
    await opt(store, ALICE, True)
    outcome = Outcome(reply_text="x", calls=(hoiio_sms("a", ALICE),))
    got = await guard.apply(Compliance(), event(provider="hoiio"), outcome, AFTERNOON)
    assert (got.reply_text, got.calls) == (None, ())
    await opt(store, ALICE, False, AFTERNOON + 1)
    got = await guard.apply(Compliance(), event(provider="hoiio"), outcome, AFTERNOON + 2)
    assert (got.reply_text, keys(got)) == ("x", ["a"])


async def test_a_dial_to_an_opted_out_contact_ends_its_conversation(store: Store) -> None:
    await opt(store, BOB, True)
    conversation = Conversation("hoiio:ivr:dial-r1", "callback", "call", "hoiio", "hoiio", BOB)
    outcome = Outcome(
        calls=(dial("a", BOB),), conversation=conversation, timer=TimerWrite("x", 5.0)
    )
    got = await Guard(store).apply(Compliance(), event(), outcome, AFTERNOON)
    assert got.calls == ()
    assert got.conversation is not None
    assert (got.conversation.status, got.conversation.outcome) == (
        "ended",
        "not dialled: opted out",
    )
    assert got.timer == TimerWrite("hoiio:ivr:dial-r1", None)


async def test_flow_step_variables_are_not_a_message(store: Store) -> None:
    await opt(store, ALICE, True)
    outcome = Outcome(reply_text="x", variables={"a": 1})
    got = await Guard(store).apply(Compliance(), event(kind="flow.step"), outcome, AFTERNOON)
    assert got == outcome


async def test_confirmations_reach_opted_out_contacts(store: Store) -> None:
    await opt(store, ALICE, True)
    compliance = Compliance(
        cap=Window(1, 3600.0), quiet_hours=QuietHours(SGT, time(21, 0), time(8, 0))
    )
    outcome = Outcome(reply_text="Unsubscribed.", calls=(hoiio_sms("a", ALICE),), exempt=True)
    for n in range(3):  # caps and quiet hours do not hold back a confirmation
        got = await Guard(store).apply(compliance, event(), outcome, NIGHT + n)
        assert got.reply_text == "Unsubscribed."
        assert [(c.key, c.not_before) for c in got.calls] == [("a", None)]
        await record(store, got, f"k{n}", NIGHT + n)


async def test_confirmations_count_towards_the_loop_guard(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Two auto-responders bouncing STOP and START stop after the loop guard's limit."""
    compliance = Compliance(loop_guard=Window(3, 60.0))
    outcome = Outcome(reply_text="You are subscribed again.", exempt=True)
    replies = []
    for n in range(5):
        got = await Guard(store).apply(compliance, event(), outcome, AFTERNOON + n)
        replies.append(got.reply_text)
        await record(store, got, f"k{n}", AFTERNOON + n)
    assert replies == [outcome.reply_text] * 3 + [None, None]
    assert "loop guard: more than 3 replies to +6591234567 within 60s" in caplog.text


# -- caps -------------------------------------------------------------------------------------


async def test_cap_per_contact_in_a_window(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    compliance = Compliance(cap=Window(2, 6 * 3600.0))
    guard = Guard(store)
    now = AFTERNOON
    sent = []
    for n, at in enumerate([now, now + 60, now + 120, now + 6 * 3600 + 1]):
        got = await guard.apply(compliance, event(), Outcome(reply_text=f"r{n}"), at)
        sent.append(got.reply_text)
        await record(store, got, f"k{n}", at)
    assert sent == ["r0", "r1", None, "r3"]
    assert "cap of 2 message(s) per 21600s reached for +6591234567: not sent" in caplog.text


async def test_cap_counts_every_message_and_is_per_contact(store: Store) -> None:
    compliance = Compliance(cap=Window(2, 3600.0))
    guard = Guard(store)
    three = Outcome(
        reply_text="r", calls=(hoiio_sms("a", ALICE), hoiio_sms("b", ALICE), hoiio_sms("c", BOB))
    )
    got = await guard.apply(compliance, event(), three, AFTERNOON)
    # Alice would get three messages: none of them go. Bob gets his one.
    assert (got.reply_text, keys(got)) == (None, ["c"])
    await record(store, got, "k1", AFTERNOON)
    got = await guard.apply(compliance, event(), Outcome(reply_text="r"), AFTERNOON + 1)
    assert got.reply_text == "r"


# -- loop guard -------------------------------------------------------------------------------


async def test_loop_guard_stops_replying_and_resumes_after_the_window(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    compliance = Compliance()  # the default: 10 replies within 60 s
    guard = Guard(store)
    replies = []
    with caplog.at_level(logging.WARNING, "responder.compliance"):
        for n in range(12):
            outcome = Outcome(reply_text="hi", calls=(hoiio_sms(f"s{n}", ALICE), webhook(f"w{n}")))
            got = await guard.apply(compliance, event(), outcome, AFTERNOON + n)
            replies.append((got.reply_text, keys(got)))
            await record(store, got, f"k{n}", AFTERNOON + n)
    # A reply with an SMS counts once per incoming message.
    assert replies[:10] == [("hi", [f"s{n}", f"w{n}"]) for n in range(10)]
    # The 11th and 12th: no reply, no SMS; the rule's own webhook still runs.
    assert replies[10:] == [(None, ["w10"]), (None, ["w11"])]
    assert caplog.text.count("loop guard: more than 10 replies to +6591234567 within 60s") == 2
    later = await guard.apply(compliance, event(), Outcome(reply_text="hi"), AFTERNOON + 61)
    assert later.reply_text == "hi"


async def test_loop_guard_ignores_timers_other_contacts_and_can_be_raised(store: Store) -> None:
    compliance = Compliance(loop_guard=Window(1, 60.0))
    guard = Guard(store)
    got = await guard.apply(compliance, event(), Outcome(reply_text="a"), AFTERNOON)
    await record(store, got, "k1", AFTERNOON)
    timer = await guard.apply(
        compliance, event(kind=TIMEOUT_KIND), Outcome(calls=(broadcast("t", ALICE),)), AFTERNOON
    )
    assert keys(timer) == ["t"]
    to_bob = await guard.apply(
        compliance, event(), Outcome(calls=(hoiio_sms("b", BOB),)), AFTERNOON + 1
    )
    assert keys(to_bob) == ["b"]
    again = await guard.apply(compliance, event(), Outcome(reply_text="a"), AFTERNOON + 2)
    assert again.reply_text is None
    off = Compliance(loop_guard=None)
    assert (await guard.apply(off, event(), Outcome(reply_text="a"), AFTERNOON + 3)).reply_text


# -- quiet hours ------------------------------------------------------------------------------

QUIET = QuietHours(SGT, time(21, 0), time(8, 0))


async def test_quiet_hours_hold_proactive_messages_until_the_window_ends(store: Store) -> None:
    compliance = Compliance(quiet_hours=QUIET)
    guard = Guard(store)
    reminder = Outcome(calls=(broadcast("t", ALICE), webhook("w")))
    got = await guard.apply(compliance, event(kind=TIMEOUT_KIND), reminder, NIGHT)
    assert [(c.key, c.not_before) for c in got.calls] == [("t", MORNING), ("w", None)]
    # A message to another number is proactive too; the answer to Alice's own message is not.
    answer = Outcome(reply_text="r", calls=(hoiio_sms("a", ALICE), hoiio_sms("b", BOB)))
    got = await guard.apply(compliance, event(), answer, NIGHT)
    assert got.reply_text == "r"
    assert [(c.key, c.not_before) for c in got.calls] == [("a", None), ("b", MORNING)]
    # Outside the window nothing is held.
    got = await guard.apply(compliance, event(kind=TIMEOUT_KIND), reminder, AFTERNOON)
    assert [c.not_before for c in got.calls] == [None, None]


async def test_quiet_hours_drop(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    compliance = Compliance(quiet_hours=QuietHours(SGT, time(21, 0), time(8, 0), "drop"))
    guard = Guard(store)
    with caplog.at_level(logging.INFO, "responder.compliance"):
        got = await guard.apply(
            compliance,
            event(kind=TIMEOUT_KIND),
            Outcome(calls=(broadcast("t", ALICE), webhook("w"))),
            NIGHT,
        )
    assert keys(got) == ["w"]
    assert "quiet hours: broadcasts.json to +6591234567 dropped" in caplog.text
    got = await guard.apply(
        compliance, event(kind=TIMEOUT_KIND), Outcome(calls=(broadcast("t", ALICE),)), MORNING
    )
    assert keys(got) == ["t"]


async def test_a_dial_dropped_in_quiet_hours_ends_its_conversation(store: Store) -> None:
    compliance = Compliance(quiet_hours=QuietHours(SGT, time(21, 0), time(8, 0), "drop"))
    conversation = Conversation("hoiio:ivr:dial-r1", "callback", "call", "hoiio", "hoiio", BOB)
    outcome = Outcome(calls=(dial("a", BOB),), conversation=conversation)
    got = await Guard(store).apply(compliance, event(), outcome, NIGHT)
    assert got.conversation is not None
    assert got.conversation.outcome == "not dialled: quiet hours"
    deferred = await Guard(store).apply(Compliance(quiet_hours=QUIET), event(), outcome, NIGHT)
    assert [c.not_before for c in deferred.calls] == [MORNING]
    assert deferred.conversation == conversation


def test_fixed_times_are_what_they_say() -> None:
    assert datetime.fromtimestamp(NIGHT, UTC).isoformat() == "2026-03-10T15:00:00+00:00"
    assert datetime.fromtimestamp(MORNING, UTC).isoformat() == "2026-03-11T00:00:00+00:00"


# -- reads through a prefetch -----------------------------------------------------------------


async def test_the_guard_reads_the_prefetch_and_the_store_for_the_rest(store: Store) -> None:
    compliance = Compliance(cap=Window(1, 3600.0))
    wanted = Wanted("k", None, ALICE, own_counts(compliance, event(), AFTERNOON))
    assert wanted.hits == ((f"cap:{ALICE}", AFTERNOON - 3600.0), (f"loop:{ALICE}", AFTERNOON - 60))
    before = await Prefetched.take(store, wanted, AFTERNOON)
    opt_outs = ((BOB, True),)
    await store.commit(
        Commit("o", OK, now=AFTERNOON - 10, hits=(f"cap:{ALICE}",), opt_outs=opt_outs)
    )
    after = await Prefetched.take(store, wanted, AFTERNOON)
    outcome = Outcome(reply_text="hi", calls=(hoiio_sms("k#0", BOB),))
    guard = Guard(store)
    # Alice's cap is counted from each prefetch's moment; Bob's opt-out is read from the store.
    got = await guard.apply(compliance, event(), outcome, AFTERNOON, before)
    assert (got.reply_text, keys(got)) == ("hi", [])
    got = await guard.apply(compliance, event(), outcome, AFTERNOON, after)
    assert (got.reply_text, keys(got)) == (None, [])
    # Without a prefetch the guard reads the store, as it did before.
    got = await guard.apply(compliance, event(), outcome, AFTERNOON)
    assert (got.reply_text, keys(got)) == (None, [])
