"""Calendars: open or closed at a time, the next opening, holidays and special days, DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from responder.errors import TemplateError
from responder.events import Event
from responder.matching.calendars import (
    END_OF_DAY,
    Calendar,
    CalendarView,
    calendar_names,
    views,
)
from responder.matching.conditions import CalendarCondition, Scope

SGT = ZoneInfo("Asia/Singapore")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAY = ((time(9), time(12)), (time(13), time(18)))
OFFICE = Calendar(
    "office",
    SGT,
    (WEEKDAY,) * 5 + (((time(10), time(14)),), ()),
    {date(2026, 12, 25): "Christmas Day", date(2026, 12, 28): ""},
    {date(2026, 12, 24): ((time(9), time(12)),), date(2026, 12, 27): ((time(11), time(13)),)},
)


def sgt(*args: int) -> datetime:
    return datetime(*args, tzinfo=SGT)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("when", "is_open"),
    [
        (sgt(2026, 3, 10, 8, 59), False),  # Tuesday, before opening
        (sgt(2026, 3, 10, 9, 0), True),
        (sgt(2026, 3, 10, 11, 59, 59), True),
        (sgt(2026, 3, 10, 12, 0), False),  # lunch
        (sgt(2026, 3, 10, 13, 0), True),
        (sgt(2026, 3, 10, 18, 0), False),
        (sgt(2026, 3, 14, 10, 0), True),  # Saturday
        (sgt(2026, 3, 14, 14, 0), False),
        (sgt(2026, 3, 15, 12, 0), False),  # Sunday: closed
        (sgt(2026, 12, 25, 10, 0), False),  # a Friday, but a holiday
        (sgt(2026, 12, 28, 10, 0), False),  # an unnamed holiday
        (sgt(2026, 12, 24, 10, 0), True),  # Christmas Eve: mornings only
        (sgt(2026, 12, 24, 14, 0), False),
        (sgt(2026, 12, 27, 12, 0), True),  # a Sunday opened specially
    ],
)
def test_open_or_closed(when: datetime, is_open: bool) -> None:
    assert OFFICE.is_open(when) is is_open
    assert OFFICE.is_open(when.astimezone(UTC)) is is_open  # any timezone in, same answer


@pytest.mark.parametrize(
    ("when", "opens"),
    [
        (sgt(2026, 3, 10, 7, 0), sgt(2026, 3, 10, 9, 0)),
        (sgt(2026, 3, 10, 10, 0), sgt(2026, 3, 10, 13, 0)),  # open: the next opening
        (sgt(2026, 3, 10, 12, 30), sgt(2026, 3, 10, 13, 0)),
        (sgt(2026, 3, 13, 19, 0), sgt(2026, 3, 14, 10, 0)),  # Friday evening -> Saturday
        (sgt(2026, 3, 14, 15, 0), sgt(2026, 3, 16, 9, 0)),  # Saturday -> Monday
        (sgt(2026, 12, 24, 13, 0), sgt(2026, 12, 26, 10, 0)),  # over Christmas
        (sgt(2026, 12, 26, 15, 0), sgt(2026, 12, 27, 11, 0)),  # the special Sunday
        (sgt(2026, 12, 27, 14, 0), sgt(2026, 12, 29, 9, 0)),  # over the unnamed holiday
    ],
)
def test_next_open(when: datetime, opens: datetime) -> None:
    found = OFFICE.next_open(when)
    assert found == opens
    assert found is not None
    assert found.tzinfo == SGT


def test_holiday_names() -> None:
    assert OFFICE.holiday(sgt(2026, 12, 25, 23, 0)) == "Christmas Day"
    assert OFFICE.holiday(sgt(2026, 12, 28, 0, 0)) == ""
    assert OFFICE.holiday(sgt(2026, 12, 26, 0, 0)) is None
    # 2026-12-24 17:00 UTC is already the 25th in Singapore.
    assert OFFICE.holiday(datetime(2026, 12, 24, 17, 0, tzinfo=UTC)) == "Christmas Day"


def test_opening_hours_keep_their_local_hour_across_dst() -> None:
    office = Calendar("ny", NEW_YORK, (((time(9), time(17)),),) * 5 + ((), ()), {}, {})
    # Friday 2026-03-06 (EST, UTC-5): 09:00 local is 14:00 UTC.
    assert not office.is_open(datetime(2026, 3, 6, 13, 30, tzinfo=UTC))
    assert office.is_open(datetime(2026, 3, 6, 14, 0, tzinfo=UTC))
    # Monday 2026-03-09 (EDT, UTC-4): 09:00 local is 13:00 UTC.
    assert office.is_open(datetime(2026, 3, 9, 13, 0, tzinfo=UTC))
    assert not office.is_open(datetime(2026, 3, 9, 21, 0, tzinfo=UTC))
    opens = office.next_open(datetime(2026, 3, 6, 23, 0, tzinfo=UTC))
    assert opens is not None
    assert opens.astimezone(UTC) == datetime(2026, 3, 9, 13, 0, tzinfo=UTC)
    # And back in November: Monday 2026-11-02 09:00 EST is 14:00 UTC.
    opens = office.next_open(datetime(2026, 10, 30, 22, 0, tzinfo=UTC))
    assert opens is not None
    assert opens.astimezone(UTC) == datetime(2026, 11, 2, 14, 0, tzinfo=UTC)


def test_a_period_past_midnight_is_one_period() -> None:
    night = Calendar(
        "night",
        SGT,
        (((time(20), END_OF_DAY),), ((time(0), time(2)),), (), (), (), (), ()),
        {},
        {},
    )
    assert night.is_open(sgt(2026, 3, 9, 23, 59, 59))  # Monday night
    assert night.is_open(sgt(2026, 3, 10, 1, 0))  # Tuesday small hours
    assert night.period(sgt(2026, 3, 9, 21, 0)) == (sgt(2026, 3, 9, 20, 0), sgt(2026, 3, 10, 2, 0))
    assert night.next_open(sgt(2026, 3, 9, 21, 0)) == sgt(2026, 3, 16, 20, 0)
    assert night.next_open(sgt(2026, 3, 10, 3, 0)) == sgt(2026, 3, 16, 20, 0)


def test_never_opening_within_the_lookahead() -> None:
    closed = Calendar("closed", SGT, ((),) * 7, {}, {})
    assert closed.next_open(sgt(2026, 3, 10, 10, 0)) is None


def test_the_template_view() -> None:
    view = CalendarView(OFFICE, sgt(2026, 3, 10, 10, 30).astimezone(UTC))
    assert (view.name, view.timezone, view.open, view.closed) == (
        "office",
        "Asia/Singapore",
        True,
        False,
    )
    assert view.closes == sgt(2026, 3, 10, 12, 0)
    assert view.next_open == sgt(2026, 3, 10, 13, 0)
    assert view.holiday is None
    assert view.local_now == sgt(2026, 3, 10, 10, 30)
    closed = views({"office": OFFICE}, sgt(2026, 12, 25, 10, 0))["office"]
    assert (closed.open, closed.closes, closed.holiday) == (False, None, "Christmas Day")
    assert closed.next_open is not None
    assert closed.next_open.strftime("%A %H:%M") == "Saturday 10:00"


def test_open_and_closed_conditions() -> None:
    event = Event(provider="textit", channel="textit", kind="sms.received", contact="+65")
    calendars = {"office": OFFICE}

    def scope(when: datetime) -> Scope:
        return Scope(now=when, context=dict, calendars=calendars)

    is_open, is_closed = CalendarCondition("office", True), CalendarCondition("office", False)
    assert is_open.test(event, scope(sgt(2026, 3, 10, 10, 0))) == {}
    assert is_closed.test(event, scope(sgt(2026, 3, 10, 10, 0))) is None
    assert is_open.test(event, scope(sgt(2026, 12, 25, 10, 0))) is None
    assert is_closed.test(event, scope(sgt(2026, 12, 25, 10, 0))) == {}
    with pytest.raises(TemplateError, match="unknown calendar 'other'"):
        CalendarCondition("other", True).test(event, scope(sgt(2026, 3, 10, 10, 0)))


def test_calendar_names_read_by_a_template() -> None:
    env = ImmutableSandboxedEnvironment()
    source = (
        "{{ calendars.a.open }}{{ calendars['b'] }}{{ calendars[x] }}{{ other.c }}{{ calendars }}"
    )
    assert calendar_names(env.parse(source)) == {"a", "b"}
