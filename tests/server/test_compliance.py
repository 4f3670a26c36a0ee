"""The compliance layer over real HTTP, TextIt and Hoiio alike: STOP/START/HELP ahead of
rules and dialogues, opted-out contacts hear nothing, quiet hours, caps and the loop guard.
The clock is the test's; timers are fired by the test."""

from __future__ import annotations

import itertools
import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from responder.conversations import conversation_key
from responder.testing.fakes import FakeProvider
from responder.web.server import STORE, TIMERS
from tests.conftest import wait_for, write_rules

SGT = ZoneInfo("Asia/Singapore")
T0 = datetime(2026, 3, 10, 15, 0, tzinfo=SGT).timestamp()  # a Tuesday afternoon
EVENING = datetime(2026, 3, 10, 20, 30, tzinfo=SGT).timestamp()
MORNING = datetime(2026, 3, 11, 8, 0, tzinfo=SGT).timestamp()
HOUR = 3600.0
ALICE = "+6591234567"
BOB = "+6598765432"
OUR_NUMBER = "+6531234567"
STOP_REPLY = (
    "You have been unsubscribed and will receive no more messages. Reply START to resubscribe."
)
START_REPLY = "You are subscribed again. Reply STOP to unsubscribe."
HELP_REPLY = "Acme: text HOURS for our hours, STOP to opt out."

RULES = """
compliance:
  help: {reply: "Acme: text HOURS for our hours, STOP to opt out."}
  quiet_hours: {timezone: Asia/Singapore, hours: "21:00-08:00", action: QUIET_ACTION}
rules:
  - name: missed
    on: call.missed
    limit: {per_contact: 1, every: 6h}
    reply: {text: "Sorry we missed your call."}
  - name: hoiio-missed
    on: ivr.answer
    limit: {per_contact: 1, every: 6h}
    hangup: {}
    reply: {text: "Thanks for calling."}
  - name: hoiio-missed-repeat
    on: ivr.answer
    hangup: {}
  - name: join
    on: sms.received
    when: {text: {keyword: [join]}}
    start: survey
  - name: refer
    on: sms.received
    when: {text: {keyword: [refer]}}
    sms: {to: "+6598765432", text: "{{ contact }} thinks you would like us."}
  - name: echo
    on: sms.received
    reply: {text: "You said: {{ text }}"}
dialogues:
  - name: survey
    mode: sms
    states:
      q1:
        say: "Rate us 1-5?"
        on:
          - {text: {number: {min: 1, max: 5}}, goto: thanks}
          - {otherwise: true, goto: q1}
        wait: {timeout: 1h, goto: reminder}
      reminder:
        say: "Reminder: rate us 1-5?"
        on: [{otherwise: true, goto: thanks}]
        wait: {timeout: 1h, goto: bye}
      thanks: {say: "Thanks!", end: true}
      bye: {say: "Bye.", end: true}
"""


IDS = itertools.count(1000)  # message ids unique across contacts: each is a new delivery


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rules_dir(tmp_path: Path, action: str = "defer", help_reply: bool = True) -> Path:
    text = RULES.replace("QUIET_ACTION", action)
    if not help_reply:
        text = text.replace(f'  help: {{reply: "{HELP_REPLY}"}}\n', "")
    return write_rules(tmp_path / f"rules-{action}-{help_reply}", text)


class TextIt:
    """Posts TextIt account events for one contact; returns the reply body."""

    def __init__(self, client: Any, phone: str = ALICE) -> None:
        self.client = client
        self.phone = phone

    async def post(self, **fields: str) -> dict[str, Any] | None:
        data = {"relayer": "5", "relayer_phone": "+250788000000", "phone": self.phone, **fields}
        resp = await self.client.post("/webhooks/textit", data=data)
        assert resp.status == 200
        body = await resp.read()
        return json.loads(body) if body else None

    async def say(self, text: str) -> str | None:
        reply = await self.post(event="mo_sms", sms=str(next(IDS)), text=text)
        if reply is None:
            return None
        assert reply["phone"] == [self.phone]
        return str(reply["text"])

    async def miss(self) -> str | None:
        reply = await self.post(event="mo_miss", call=str(next(IDS)), duration="0")
        return None if reply is None else str(reply["text"])


class Hoiio:
    """Posts Hoiio notifications for one contact."""

    def __init__(self, client: Any, phone: str = ALICE) -> None:
        self.client = client
        self.phone = phone

    async def post(self, **fields: str) -> None:
        resp = await self.client.post("/webhooks/hoiio", data=fields)
        assert resp.status == 200
        assert await resp.read() == b""

    async def say(self, text: str) -> None:
        await self.post(
            msg=text, to=OUR_NUMBER, txn_ref=f"AA-R-{next(IDS)}", **{"from": self.phone}
        )

    async def call(self) -> None:
        await self.post(
            ivr_block="answer",
            session=f"S-{next(IDS)}",
            txn_ref=f"AA-I-{next(IDS)}",
            to=OUR_NUMBER,
            **{"from": self.phone},
        )


async def outbox(client: Any, endpoint: str, to: str | None = None) -> list[Any]:
    """The calls enqueued for ``endpoint`` (to ``to``), oldest first. What the guard drops
    never reaches the outbox, so this is everything that was or will be sent."""
    items = await client.server.app[STORE].outbox(None, 1000)
    calls = [i.call for i in reversed(items) if i.call.endpoint == endpoint]
    if to is not None:
        calls = [
            c for c in calls if c.params.get("dest") == to or c.params.get("urns") == [f"tel:{to}"]
        ]
    return calls


async def texts(client: Any, to: str) -> list[str]:
    """Every SMS enqueued to ``to``, through Hoiio or TextIt."""
    hoiio = await outbox(client, "sms/send", to)
    textit = await outbox(client, "broadcasts.json", to)
    return [c.params["msg"] for c in hoiio] + [c.params["text"] for c in textit]


def timers_of(client: Any) -> Any:
    """The app's timer worker, its loop stopped: the test fires timers itself."""
    worker = client.server.app[TIMERS]
    worker.stop()
    return worker


async def conversation(client: Any, channel: str, contact: str = ALICE) -> Any:
    return await client.server.app[STORE].get_conversation(conversation_key(channel, contact, None))


# -- STOP / START / HELP ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "stop", ["STOP", "  stop. ", "Unsubscribe!", "END", "quit", "Cancel", "Arrêt", "berhenti"]
)
async def test_textit_stop_then_nothing_but_the_confirmation_then_start(
    make_client, tmp_path: Path, stop: str
) -> None:
    client = await make_client(rules_dir(tmp_path), clock=Clock())
    alice = TextIt(client)
    assert await alice.say("hello") == "You said: hello"
    assert await alice.say(stop) == STOP_REPLY
    assert await alice.say("hello") is None  # no rule reply
    assert await alice.miss() is None  # no missed-call reply
    assert await alice.say("JOIN") is None  # no dialogue message
    assert await alice.say(stop) == STOP_REPLY  # asking again is confirmed again
    assert await alice.say("Unstop") == START_REPLY
    assert await alice.say("hello") == "You said: hello"
    assert await texts(client, ALICE) == []


async def test_hoiio_stop_then_no_missed_call_sms_then_start(make_client, tmp_path: Path) -> None:
    clock = Clock()
    client = await make_client(rules_dir(tmp_path), clock=clock)
    alice = Hoiio(client)
    await alice.say("STOP")
    await alice.call()
    await alice.say("hello")
    assert await texts(client, ALICE) == [STOP_REPLY]
    assert len(await outbox(client, "ivr/end/hangup")) == 1  # her call is still hung up on
    await alice.say("start")
    clock.now += 6 * HOUR + 1  # the missed-call limit window has passed
    await alice.call()
    await alice.say("hello")
    assert await texts(client, ALICE) == [
        STOP_REPLY,
        START_REPLY,
        "Thanks for calling.",
        "You said: hello",
    ]


async def test_stop_on_one_provider_holds_on_the_other(make_client, tmp_path: Path) -> None:
    client = await make_client(rules_dir(tmp_path), clock=Clock())
    await Hoiio(client).say("STOP")
    alice = TextIt(client)
    assert await alice.miss() is None
    assert await alice.say("hello") is None
    await Hoiio(client).call()
    assert await texts(client, ALICE) == [STOP_REPLY]


async def test_no_proactive_sms_to_an_opted_out_contact(make_client, tmp_path: Path) -> None:
    client = await make_client(rules_dir(tmp_path), clock=Clock())
    assert await TextIt(client, BOB).say("stop") == STOP_REPLY
    alice = TextIt(client)
    assert await alice.say("REFER") is None
    assert await texts(client, BOB) == []
    assert await TextIt(client, BOB).say("start") == START_REPLY
    assert await alice.say("REFER") is None
    assert await texts(client, BOB) == [f"{ALICE} thinks you would like us."]


async def test_help_is_answered_and_without_a_help_reply_goes_to_the_rules(
    make_client, tmp_path: Path
) -> None:
    client = await make_client(rules_dir(tmp_path), clock=Clock())
    assert await TextIt(client).say("Help?") == HELP_REPLY
    await Hoiio(client, BOB).say("HELP")
    assert await texts(client, BOB) == [HELP_REPLY]
    other = await make_client(rules_dir(tmp_path, help_reply=False), store="memory://")
    assert await TextIt(other).say("HELP") == "You said: HELP"


# -- inside a dialogue --------------------------------------------------------------------------


async def test_stop_in_the_middle_of_a_textit_dialogue_ends_it(make_client, tmp_path: Path) -> None:
    clock = Clock()
    client = await make_client(rules_dir(tmp_path), clock=clock)
    timers = timers_of(client)
    alice = TextIt(client)
    assert await alice.say("JOIN") == "Rate us 1-5?"
    # The dialogue's `otherwise` would take any word: STOP never reaches it.
    assert await alice.say("STOP") == STOP_REPLY
    ended = await conversation(client, "textit")
    assert (ended.status, ended.outcome, ended.state) == ("ended", "opted out", "q1")
    clock.now += 2 * HOUR
    assert await timers.fire_due() == 0  # the reminder timer went with the conversation
    assert await alice.say("3") is None
    assert await alice.say("START") == START_REPLY
    assert await alice.say("3") == "You said: 3"  # the dialogue does not come back
    assert await texts(client, ALICE) == []


async def test_stop_in_the_middle_of_a_hoiio_dialogue_ends_it(make_client, tmp_path: Path) -> None:
    clock = Clock()
    client = await make_client(rules_dir(tmp_path), clock=clock)
    timers = timers_of(client)
    alice = Hoiio(client)
    await alice.say("JOIN")
    await alice.say("  Stop! ")
    ended = await conversation(client, "hoiio")
    assert (ended.status, ended.outcome) == ("ended", "opted out")
    clock.now += 2 * HOUR
    assert await timers.fire_due() == 0
    await alice.say("4")
    assert await texts(client, ALICE) == ["Rate us 1-5?", STOP_REPLY]


async def test_help_inside_a_dialogue_does_not_move_it(make_client, tmp_path: Path) -> None:
    client = await make_client(rules_dir(tmp_path), clock=Clock())
    alice = TextIt(client)
    assert await alice.say("JOIN") == "Rate us 1-5?"
    before = await conversation(client, "textit")
    assert await alice.say("HELP") == HELP_REPLY
    after = await conversation(client, "textit")
    assert (after.state, after.seq, after.status) == (before.state, before.seq, "active")
    assert await alice.say("4") == "Thanks!"


async def test_help_without_a_help_reply_skips_the_dialogue(make_client, tmp_path: Path) -> None:
    client = await make_client(rules_dir(tmp_path, help_reply=False), clock=Clock())
    alice = TextIt(client)
    assert await alice.say("JOIN") == "Rate us 1-5?"
    before = await conversation(client, "textit")
    assert await alice.say("help") == "You said: help"
    after = await conversation(client, "textit")
    assert (after.state, after.seq, after.version) == (before.state, before.seq, before.version)
    assert await alice.say("5") == "Thanks!"


async def test_no_timer_sms_to_a_contact_who_opted_out_elsewhere(
    make_client, tmp_path: Path
) -> None:
    clock = Clock()
    client = await make_client(rules_dir(tmp_path), clock=clock)
    timers = timers_of(client)
    assert await TextIt(client).say("JOIN") == "Rate us 1-5?"
    await Hoiio(client).say("STOP")  # another channel: the TextIt conversation goes on
    assert (await conversation(client, "textit")).status == "active"
    clock.now += HOUR
    assert await timers.fire_due() == 1
    ended = await conversation(client, "textit")
    assert (ended.status, ended.outcome, ended.state) == ("ended", "opted out", "q1")
    assert await texts(client, ALICE) == [STOP_REPLY]  # no reminder
    clock.now += HOUR
    assert await timers.fire_due() == 0


async def test_a_message_in_a_dialogue_after_opting_out_elsewhere_ends_it(
    make_client, tmp_path: Path
) -> None:
    client = await make_client(rules_dir(tmp_path), clock=Clock())
    alice = TextIt(client)
    assert await alice.say("JOIN") == "Rate us 1-5?"
    await Hoiio(client).say("STOP")
    assert await alice.say("4") is None
    ended = await conversation(client, "textit")
    assert (ended.status, ended.outcome) == ("ended", "opted out")
    assert await texts(client, ALICE) == [STOP_REPLY]


async def test_no_sms_dialogue_starts_for_an_opted_out_contact(make_client, tmp_path: Path) -> None:
    rules = write_rules(
        tmp_path / "starts",
        RULES.replace("QUIET_ACTION", "defer")
        + """
  - name: poll
    mode: sms
    start: {on: sms.received, when: {text: {keyword: [poll]}}}
    states:
      ask: {say: "Yes or no?", on: [{otherwise: true, goto: done}]}
      done: {say: "Thanks.", end: true}
""",
    )
    client = await make_client(rules, clock=Clock())
    alice = TextIt(client)
    assert await alice.say("stop") == STOP_REPLY
    assert await alice.say("JOIN") is None  # a rule's start
    assert await conversation(client, "textit") is None
    assert await alice.say("POLL") is None  # a dialogue's own start
    assert await conversation(client, "textit") is None
    assert await alice.say("start") == START_REPLY
    assert await alice.say("POLL") == "Yes or no?"
    assert (await conversation(client, "textit")).dialogue == "poll"


# -- quiet hours --------------------------------------------------------------------------------


async def test_quiet_hours_defer_a_reminder_to_the_morning(
    make_client, tmp_path: Path, fake_textit: FakeProvider
) -> None:
    clock = Clock(EVENING)
    client = await make_client(rules_dir(tmp_path), clock=clock)
    timers = timers_of(client)
    assert await TextIt(client).say("JOIN") == "Rate us 1-5?"  # 20:30: an answer, not held
    clock.now += HOUR  # 21:30: the reminder is due inside quiet hours
    assert await timers.fire_due() == 1
    [reminder] = await outbox(client, "broadcasts.json", ALICE)
    assert reminder.params["text"] == "Reminder: rate us 1-5?"
    assert reminder.not_before == MORNING
    store = client.server.app[STORE]
    assert await store.claim_outbox(MORNING - 1, 60.0, 10) == []
    clock.now = MORNING
    await wait_for(lambda: len(fake_textit.calls("/broadcasts.json")) == 1, within=10.0)
    assert fake_textit.calls("/broadcasts.json")[0].json["text"] == "Reminder: rate us 1-5?"


async def test_quiet_hours_drop_a_reminder(make_client, tmp_path: Path, caplog) -> None:
    clock = Clock(EVENING)
    client = await make_client(rules_dir(tmp_path, action="drop"), clock=clock)
    timers = timers_of(client)
    assert await TextIt(client).say("JOIN") == "Rate us 1-5?"
    clock.now += HOUR
    with caplog.at_level(logging.INFO, "responder.compliance"):
        assert await timers.fire_due() == 1
    assert await outbox(client, "broadcasts.json") == []
    assert "quiet hours: broadcasts.json to +6591234567 dropped" in caplog.text
    # The dialogue itself moved on; by day its messages go out again.
    clock.now = MORNING
    assert await timers.fire_due() == 1
    assert [c.params["text"] for c in await outbox(client, "broadcasts.json")] == ["Bye."]


async def test_answers_are_not_held_in_quiet_hours(make_client, tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 3, 10, 23, 0, tzinfo=SGT).timestamp())
    client = await make_client(rules_dir(tmp_path, action="drop"), clock=clock)
    assert await TextIt(client).miss() == "Sorry we missed your call."
    await Hoiio(client, BOB).call()
    [sms] = await outbox(client, "sms/send", BOB)
    assert (sms.params["msg"], sms.not_before) == ("Thanks for calling.", None)


# -- caps ---------------------------------------------------------------------------------------


async def test_one_missed_call_reply_per_caller_per_6h(make_client, tmp_path: Path) -> None:
    clock = Clock()
    client = await make_client(rules_dir(tmp_path), clock=clock)
    alice, bob = TextIt(client), Hoiio(client, BOB)
    assert await alice.miss() == "Sorry we missed your call."
    await bob.call()
    clock.now += 6 * HOUR - 1
    assert await alice.miss() is None
    await bob.call()
    assert await TextIt(client, "+6500000000").miss() == "Sorry we missed your call."
    clock.now += 2
    assert await alice.miss() == "Sorry we missed your call."
    await bob.call()
    assert await texts(client, BOB) == ["Thanks for calling.", "Thanks for calling."]
    assert len(await outbox(client, "ivr/end/hangup")) == 3  # every call is hung up on


async def test_compliance_cap_over_http(make_client, tmp_path: Path) -> None:
    clock = Clock()
    rules = write_rules(
        tmp_path / "capped",
        """
        compliance: {cap: {per_contact: 2, every: 1d}}
        rules:
          - {name: echo, on: sms.received, reply: {text: "ok"}}
        """,
    )
    client = await make_client(rules, clock=clock)
    alice = TextIt(client)
    got = [await alice.say("a"), await alice.say("b"), await alice.say("c")]
    assert got == ["ok", "ok", None]
    clock.now += 86400 - 1
    assert await alice.say("d") is None
    clock.now += 2
    assert await alice.say("e") == "ok"


# -- loop guard ---------------------------------------------------------------------------------


async def test_loop_guard_over_http(make_client, tmp_path: Path, caplog) -> None:
    clock = Clock()
    client = await make_client(rules_dir(tmp_path), clock=clock)
    bot, hoiio_bot = TextIt(client), Hoiio(client, BOB)
    replies = []
    with caplog.at_level(logging.WARNING, "responder.compliance"):
        for n in range(12):
            replies.append(await bot.say(f"auto {n}"))
            await hoiio_bot.say(f"auto {n}")
            clock.now += 4  # 12 messages in 48 s
    assert replies == [f"You said: auto {n}" for n in range(10)] + [None, None]
    assert await texts(client, BOB) == [f"You said: auto {n}" for n in range(10)]
    assert "loop guard: more than 10 replies to +6591234567 within 60s" in caplog.text
    assert "loop guard: more than 10 replies to +6598765432 within 60s" in caplog.text
    clock.now += 60
    assert await bot.say("hello again") == "You said: hello again"


async def test_a_textit_contact_known_only_by_uuid_can_opt_out(make_client, tmp_path: Path) -> None:
    client = await make_client(rules_dir(tmp_path), clock=Clock())
    uuid = "5d76d86b-3bb9-4d5a-b822-c9d86f5d8e4f"

    async def say(text: str) -> Any:
        data = {"event": "mo_sms", "sms": str(next(IDS)), "contact": uuid, "text": text}
        resp = await client.post("/webhooks/textit", data=data)
        assert resp.status == 200
        body = await resp.read()
        return json.loads(body) if body else None

    assert await say("STOP") == {"contact": [uuid], "text": STOP_REPLY}
    assert await say("hello") is None
    assert await say("START") == {"contact": [uuid], "text": START_REPLY}
    assert await say("hello") == {"contact": [uuid], "text": "You said: hello"}
