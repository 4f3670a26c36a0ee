"""The ``calendars:`` block of the rules language and the ``open:`` / ``closed:`` conditions."""

from __future__ import annotations

import re
from datetime import date, time
from typing import Any, Final

from responder.matching.calendars import END_OF_DAY, Calendar, Ranges
from responder.matching.conditions import CalendarCondition
from responder.rules.spec import INVALID, Ctx, Defs, Field, ListOf, Obj, Spec, Str
from responder.rules.terms import DateSpec, TimezoneSpec, parse_days
from responder.rules.yamlnodes import LMap

NAME_PATTERN: Final = r"[A-Za-z0-9_.-]+"
MAX_RANGES: Final = 24  # opening periods in one day
MAX_DATES: Final = 1000  # holidays or special days in one calendar
_RANGE = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")
_CLOSED: Final = "closed"


def _show(span: tuple[time, time]) -> str:
    start, end = span
    shown_end = "24:00" if end == END_OF_DAY else end.strftime("%H:%M")
    return f"{start.strftime('%H:%M')}-{shown_end}"


def _parse_range(text: str, line: int, ctx: Ctx, path: str) -> Any:
    match = _RANGE.fullmatch(text.strip())
    if not match:
        return ctx.error(line, path, f"{text.strip()!r} is not hours like 09:00-18:00 or closed")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
        return ctx.error(line, path, f"{text.strip()!r} is not a time of day")
    start = time(h1, m1)
    end = END_OF_DAY if h2 == 24 else time(h2, m2)
    if end <= start:
        return ctx.error(
            line,
            path,
            f"{text.strip()!r} does not end after it starts (to open past midnight, "
            "end at 24:00 and open the next day at 00:00)",
        )
    return start, end


class RangesSpec(Spec):
    """One day's opening hours: ``closed``, ``09:00-12:00, 13:00-18:00`` or a list."""

    description = "Opening hours: 'closed', or HH:MM-HH:MM ranges (comma-separated or a list)."

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        texts = ListOf(Str()).parse(value, line, ctx, path)
        if texts is INVALID:
            return INVALID
        parts = [p for text in texts for p in text.split(",") if p.strip()]
        if [p.strip().casefold() for p in parts] == [_CLOSED]:
            return ()
        if not parts:
            return ctx.error(line, path, "no hours given (write 'closed' for a closed day)")
        if len(parts) > MAX_RANGES:
            return ctx.error(line, path, f"more than {MAX_RANGES} ranges in one day")
        spans = [_parse_range(p, line, ctx, path) for p in parts]
        if any(s is INVALID for s in spans):
            return INVALID
        spans.sort()
        merged: list[tuple[time, time]] = []
        for span in spans:
            if merged and span[0] < merged[-1][1]:
                return ctx.error(line, path, f"{_show(merged[-1])} and {_show(span)} overlap")
            if merged and span[0] == merged[-1][1]:
                merged[-1] = (merged[-1][0], span[1])  # 09:00-12:00, 12:00-18:00 is one period
            else:
                merged.append(span)
        return tuple(merged)

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        text = {"type": "string", "description": self.description}
        return {"anyOf": [text, {"type": "array", "items": {"type": "string"}}]}


class WeekSpec(Spec):
    """Opening hours by weekday: keys like ``mon-fri``, ``sat``, ``sun``; unlisted days are
    closed."""

    description = (
        "Opening hours per weekday: keys mon..sun, ranges (mon-fri) or lists (sat, sun); "
        "values as in RangesSpec. Days not listed are closed."
    )

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        if not isinstance(value, dict):
            return ctx.error(line, path, "expected a mapping of days to hours, e.g. mon-fri: ...")
        key_lines = value.key_lines if isinstance(value, LMap) else {}
        week: list[Ranges | None] = [None] * 7
        given_at: dict[int, int] = {}
        bad = False
        for key, hours in value.items():
            key_line = key_lines.get(key, line)
            sub = f"{path}.{key}"
            days = parse_days((str(key),), key_line, ctx, sub)
            ranges = RangesSpec().parse(hours, key_line, ctx, sub)
            if days is INVALID or ranges is INVALID:
                bad = True
                continue
            for day in sorted(days):
                if day in given_at:
                    names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
                    ctx.error(
                        key_line,
                        sub,
                        f"{names[day]} already has hours (line {given_at[day]})",
                    )
                    bad = True
                    continue
                given_at[day] = key_line
                week[day] = ranges
        if bad:
            return INVALID
        return tuple(r or () for r in week)

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        return {
            "type": "object",
            "description": self.description,
            "additionalProperties": RangesSpec().schema(defs),
        }


def _build_holiday(fields: dict[str, Any], line: int, ctx: Ctx, path: str) -> Any:
    return date.fromisoformat(fields["date"]), fields["name"] or ""


HOLIDAY: Final = Obj(
    {
        "date": Field(DateSpec(), required=True),
        "name": Field(Str("Shown to templates as calendars.NAME.holiday.", max_len=100)),
    },
    "A holiday with a name.",
    build=_build_holiday,
)


class HolidaySpec(Spec):
    description = "A date (YYYY-MM-DD), or {date, name}."

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        if isinstance(value, dict):
            return HOLIDAY.parse(value, line, ctx, path)
        text = DateSpec().parse(value, line, ctx, path)
        return INVALID if text is INVALID else (date.fromisoformat(text), "")

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        return {
            "description": self.description,
            "anyOf": [DateSpec().schema(defs), HOLIDAY.schema(defs)],
        }


class SpecialSpec(Spec):
    """Dates with their own hours, instead of the weekday's (or the holiday's)."""

    description = "Dates (YYYY-MM-DD) with their own hours (or 'closed'), instead of the weekday's."

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        if not isinstance(value, dict):
            return ctx.error(line, path, "expected a mapping of dates to hours")
        if len(value) > MAX_DATES:
            return ctx.error(line, path, f"more than {MAX_DATES} special days")
        key_lines = value.key_lines if isinstance(value, LMap) else {}
        out: dict[date, Ranges] = {}
        bad = False
        for key, hours in value.items():
            key_line = key_lines.get(key, line)
            sub = f"{path}.{key}"
            day = DateSpec().parse(str(key), key_line, ctx, sub)
            ranges = RangesSpec().parse(hours, key_line, ctx, sub)
            if day is INVALID or ranges is INVALID:
                bad = True
                continue
            out[date.fromisoformat(day)] = ranges
        return INVALID if bad else out

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        return {
            "type": "object",
            "description": self.description,
            "propertyNames": DateSpec().schema(defs),
            "additionalProperties": RangesSpec().schema(defs),
        }


def _build_calendar(name: str) -> Any:
    def build(fields: dict[str, Any], line: int, ctx: Ctx, path: str) -> Any:
        holidays: dict[date, str] = {}
        lines = ctx.key_lines
        for day, holiday in fields["holidays"] or ():
            if day in holidays:
                return ctx.error(
                    lines.get("holidays", line), f"{path}.holidays", f"{day} is listed twice"
                )
            holidays[day] = holiday
        week = fields["hours"]
        special = fields["special"] or {}
        if not any(week) and not any(special.values()):
            return ctx.error(line, path, f"calendar {name!r} is never open")
        return Calendar(name, fields["timezone"], week, holidays, special, ctx.file, line)

    return build


def _calendar(name: str | None) -> Obj:
    return Obj(
        {
            "description": Field(Str("Free text for humans.")),
            "timezone": Field(TimezoneSpec("IANA timezone, e.g. Asia/Singapore."), required=True),
            "hours": Field(WeekSpec(), required=True),
            "holidays": Field(
                ListOf(HolidaySpec(), "Closed all day.", single=False, max_items=MAX_DATES)
            ),
            "special": Field(SpecialSpec()),
        },
        "A named calendar: weekly opening hours, holidays and special days in a timezone.",
        build=_build_calendar(name) if name is not None else None,
    )


class CalendarsSpec(Spec):
    description = "Named calendars, used by the open: and closed: conditions and templates."

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        if not isinstance(value, dict):
            return ctx.error(line, path, "expected a mapping of calendar names to calendars")
        key_lines = value.key_lines if isinstance(value, LMap) else {}
        out: list[Calendar] = []
        for name, body in value.items():
            key_line = key_lines.get(name, line)
            sub = f"{path}.{name}"
            if not re.fullmatch(NAME_PATTERN, str(name)):
                ctx.error(key_line, sub, f"{name!r} is not a name of letters, digits, _ . -")
                continue
            parsed = _calendar(str(name)).parse(body, key_line, ctx, sub)
            if parsed is not INVALID:
                out.append(parsed)
        return tuple(out)  # the valid ones: references to them are still checked

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        return {
            "type": "object",
            "description": self.description,
            "propertyNames": {"pattern": f"^(?:{NAME_PATTERN})$"},
            "additionalProperties": _calendar(None).schema(defs),
        }


class CalendarRefSpec(Spec):
    """``open: NAME`` / ``closed: NAME``; the name is checked once every file is read."""

    def __init__(self, want_open: bool) -> None:
        self.want_open = want_open
        self.description = (
            f"The named calendar is {'open' if want_open else 'closed'} at the event's time."
        )

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        name = Str(pattern=NAME_PATTERN, pattern_hint="a calendar name").parse(
            value, line, ctx, path
        )
        if name is INVALID:
            return INVALID
        ctx.calendar_refs.append((name, line, path))
        return CalendarCondition(name, self.want_open)

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        return {"type": "string", "pattern": f"^(?:{NAME_PATTERN})$", **self._doc({})}


CALENDARS: Final = CalendarsSpec()
OPEN: Final = CalendarRefSpec(True)
CLOSED: Final = CalendarRefSpec(False)
