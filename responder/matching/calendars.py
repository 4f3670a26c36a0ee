"""Calendars: named business hours per weekday, holidays and special days in a timezone, and
the ``open:`` / ``closed:`` conditions and template values built on them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from jinja2 import nodes

Ranges = tuple[tuple[time, time], ...]  # sorted, disjoint [start, end) local times of one day

# Every limit has a number: how far ahead the next opening is looked for. A calendar that
# is open on no weekday is refused by `check`, so only a run of holidays or special closed
# days longer than this can hide it.
LOOKAHEAD_DAYS: Final = 400
END_OF_DAY: Final = time(23, 59, 59, 999999)  # how 24:00 is kept


@dataclass(frozen=True, slots=True)
class Calendar:
    """When a place is open, in its own timezone; holidays and special days win over the
    weekly hours."""

    name: str
    zone: ZoneInfo
    week: tuple[Ranges, ...]  # seven days, Monday first
    holidays: Mapping[date, str]  # date -> name ("" when none was given)
    special: Mapping[date, Ranges]
    file: str = ""
    line: int = 0

    def hours_on(self, day: date) -> Ranges:
        """The opening hours of one local date."""
        if day in self.special:
            return self.special[day]
        if day in self.holidays:
            return ()
        return self.week[day.weekday()]

    def period(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The opening period ``now`` is in (local start and end), or None when closed."""
        local = now.astimezone(self.zone)
        clock = local.time().replace(tzinfo=None)
        day = local.date()
        for start, end in self.hours_on(day):
            if start <= clock < end:
                return self._at(day, start), self._until(day, end)
        return None

    def is_open(self, now: datetime) -> bool:
        return self.period(now) is not None

    def next_open(self, now: datetime) -> datetime | None:
        """When it next opens after ``now`` (local time), or None within LOOKAHEAD_DAYS."""
        today = now.astimezone(self.zone).date()
        current = self.period(now)
        for offset in range(LOOKAHEAD_DAYS + 1):
            day = today + timedelta(days=offset)
            for start, _ in self.hours_on(day):
                opens = self._at(day, start)
                if opens > now and (current is None or opens > current[1]):
                    return opens
        return None

    def _until(self, day: date, end: time) -> datetime:
        """Where an opening period really ends: one that runs to 24:00 goes on into the
        next day when that day opens at 00:00 (``mon: 20:00-24:00``, ``tue: 00:00-02:00``)."""
        for _ in range(LOOKAHEAD_DAYS):
            if end != END_OF_DAY:
                break
            day += timedelta(days=1)
            ranges = self.hours_on(day)
            if not ranges or ranges[0][0] != time(0):
                return self._at(day, time(0))
            end = ranges[0][1]
        return self._at(day, end)

    def holiday(self, now: datetime) -> str | None:
        """The name of the holiday ``now`` falls on ("" when unnamed), or None."""
        day = now.astimezone(self.zone).date()
        return self.holidays.get(day)

    def _at(self, day: date, clock: time) -> datetime:
        # Wall time in the zone; zoneinfo picks the offset in force on that date, so opening
        # hours stay at their local hour across daylight-saving changes.
        return datetime.combine(day, clock, tzinfo=self.zone)


@dataclass(frozen=True, slots=True)
class CalendarView:
    """What templates see as ``calendars.NAME``: computed for the event's time on demand."""

    calendar: Calendar
    now: datetime

    @property
    def name(self) -> str:
        return self.calendar.name

    @property
    def timezone(self) -> str:
        return self.calendar.zone.key

    @property
    def open(self) -> bool:
        return self.calendar.is_open(self.now)

    @property
    def closed(self) -> bool:
        return not self.open

    @property
    def closes(self) -> datetime | None:
        """When the current opening period ends (local time), or None when closed."""
        period = self.calendar.period(self.now)
        return None if period is None else period[1]

    @property
    def next_open(self) -> datetime | None:
        """When it next opens (local time)."""
        return self.calendar.next_open(self.now)

    @property
    def holiday(self) -> str | None:
        return self.calendar.holiday(self.now)

    @property
    def local_now(self) -> datetime:
        return self.now.astimezone(self.calendar.zone)


def views(calendars: Mapping[str, Calendar], now: datetime) -> dict[str, CalendarView]:
    return {name: CalendarView(calendar, now) for name, calendar in calendars.items()}


def calendar_names(source: nodes.Template) -> set[str]:
    """The calendar names a parsed template reads (``calendars.office``,
    ``calendars['office']``), so `check` can refuse unknown ones."""
    found: set[str] = set()
    for node in source.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name == "calendars":
            found.add(node.attr)
    for item in source.find_all(nodes.Getitem):
        if (
            isinstance(item.node, nodes.Name)
            and item.node.name == "calendars"
            and isinstance(item.arg, nodes.Const)
            and isinstance(item.arg.value, str)
        ):
            found.add(item.arg.value)
    return found
