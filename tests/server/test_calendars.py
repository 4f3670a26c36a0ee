"""Calendars over real HTTP: the default rules answer differently in and out of office hours
and on holidays, for TextIt and Hoiio; dialogues branch on a calendar."""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from responder.web.server import STORE
from tests.conftest import REPO, write_rules

SGT = ZoneInfo("Asia/Singapore")
ALICE = "+6591234567"
OUR_NUMBER = "+6531234567"
IDS = itertools.count(1)

TUESDAY_MORNING = datetime(2026, 3, 10, 10, 0, tzinfo=SGT).timestamp()
TUESDAY_LUNCH = datetime(2026, 3, 10, 12, 30, tzinfo=SGT).timestamp()
SATURDAY_AFTERNOON = datetime(2026, 3, 14, 15, 0, tzinfo=SGT).timestamp()
CHRISTMAS = datetime(2026, 12, 25, 10, 0, tzinfo=SGT).timestamp()  # a Friday
CHRISTMAS_EVE_AFTERNOON = datetime(2026, 12, 24, 14, 0, tzinfo=SGT).timestamp()

MISSED_OPEN = "Sorry we missed your call. We will call you back as soon as we can."


def missed_closed(when: str) -> str:
    return (
        f"Sorry we missed your call. We are closed now and will call you back when we open, {when}."
    )


HOIIO_CLOSED = (
    "Thanks for calling. We are closed now and will call you back when we open, Monday 09:00."
)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def textit(client: Any, **fields: str) -> Any:
    data = {"relayer": "5", "phone": ALICE, **fields}
    resp = await client.post("/webhooks/textit", data=data)
    assert resp.status == 200
    body = await resp.read()
    return json.loads(body)["text"] if body else None


async def sms(client: Any, text: str) -> Any:
    return await textit(client, event="mo_sms", sms=str(next(IDS)), text=text)


async def missed(client: Any) -> Any:
    return await textit(client, event="mo_miss", call=str(next(IDS)), duration="0")


async def hoiio_sms_sent(client: Any) -> list[str]:
    items = await client.server.app[STORE].outbox(None, 100)
    return [i.call.params["msg"] for i in reversed(items) if i.call.endpoint == "sms/send"]


@pytest.mark.parametrize(
    ("now", "missed_call", "hours", "other"),
    [
        (
            TUESDAY_MORNING,
            MISSED_OPEN,
            "We are open now.",
            None,
        ),
        (
            TUESDAY_LUNCH,
            missed_closed("Tuesday 13:00"),
            "We open again Tuesday 13:00.",
            "Thanks for your message. We are closed and will answer when we open, Tuesday 13:00.",
        ),
        (
            SATURDAY_AFTERNOON,
            missed_closed("Monday 09:00"),
            "We open again Monday 09:00.",
            "Thanks for your message. We are closed and will answer when we open, Monday 09:00.",
        ),
        (
            CHRISTMAS,
            missed_closed("Saturday 10:00"),
            "We open again Saturday 10:00.",
            "Thanks for your message. We are closed for Christmas Day and will answer when we "
            "open, Saturday 10:00.",
        ),
        (
            CHRISTMAS_EVE_AFTERNOON,  # a Thursday with morning hours only
            missed_closed("Saturday 10:00"),
            "We open again Saturday 10:00.",
            "Thanks for your message. We are closed and will answer when we open, Saturday 10:00.",
        ),
    ],
)
async def test_default_rules_in_and_out_of_office_hours(
    make_client, now: float, missed_call: str, hours: str, other: str | None
) -> None:
    client = await make_client(REPO / "rules", clock=Clock(now))
    assert await missed(client) == missed_call
    opening = "We are open Monday to Friday 9am-12pm and 1pm-6pm, Saturday 10am-2pm."
    assert await sms(client, "Hours?") == f"{opening} {hours}"
    assert await sms(client, "Is anyone there") == other


async def test_default_rules_hoiio_missed_call_out_of_hours(make_client) -> None:
    clock = Clock(SATURDAY_AFTERNOON)
    client = await make_client(REPO / "rules", clock=clock)
    query = {"ivr_block": "answer", "from": ALICE, "to": OUR_NUMBER}
    resp = await client.post("/webhooks/hoiio", data={**query, "session": "S-1", "txn_ref": "A-1"})
    assert resp.status == 200
    assert await hoiio_sms_sent(client) == [HOIIO_CLOSED]
    # Still one SMS per caller per 6 hours, open or closed.
    clock.now = SATURDAY_AFTERNOON + 2 * 3600
    resp = await client.post("/webhooks/hoiio", data={**query, "session": "S-2", "txn_ref": "A-2"})
    assert resp.status == 200
    assert await hoiio_sms_sent(client) == [HOIIO_CLOSED]


DIALOGUE = """
calendars:
  support:
    timezone: Asia/Singapore
    hours: {mon-fri: 09:00-18:00}
    holidays: [{date: 2026-12-25, name: Christmas Day}]
dialogues:
  - name: menu
    mode: sms
    start: {on: sms.received, when: {text: {keyword: [menu]}}}
    states:
      menu:
        say: "Reply 1 for opening hours, 2 to talk to someone."
        on:
          - {text: {only: ["2"]}, closed: support, goto: later}
          - {text: {only: ["2"]}, goto: agent}
          - {otherwise: true, goto: hours}
      agent: {say: "Connecting you to the team now.", end: true}
      later:
        say: >-
          The team is away{% if calendars.support.holiday %} for
          {{ calendars.support.holiday }}{% endif %}; someone will text you
          {{ calendars.support.next_open.strftime('%A at %H:%M') }}.
        end: true
      hours: {say: "Mon-Fri 9:00-18:00.", end: true}
"""


@pytest.mark.parametrize(
    ("now", "answer"),
    [
        (TUESDAY_MORNING, "Connecting you to the team now."),
        (SATURDAY_AFTERNOON, "The team is away; someone will text you Monday at 09:00."),
        (CHRISTMAS, "The team is away for Christmas Day; someone will text you Monday at 09:00."),
    ],
)
async def test_a_dialogue_branches_on_a_calendar(
    make_client, tmp_path: Path, now: float, answer: str
) -> None:
    client = await make_client(write_rules(tmp_path / "menu", DIALOGUE), clock=Clock(now))
    assert await sms(client, "MENU") == "Reply 1 for opening hours, 2 to talk to someone."
    assert await sms(client, "2") == answer
