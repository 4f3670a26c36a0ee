"""The shared terms of the rules language: names of days, hours, dates, timezones and event
kinds, and the limits every part of the language checks texts against."""

from __future__ import annotations

import functools
import re
from datetime import date, time
from difflib import get_close_matches
from fnmatch import fnmatchcase
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from responder.events import KINDS
from responder.rules.spec import INVALID, Ctx, Defs, ListOf, Spec, Str

DAY_NAMES: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PROVIDER_NAMES: Final = ["textit", "hoiio"]
# Longest reply text TextIt accepts in a webhook answer; Hoiio msg limit for IVR speech.
TEXTIT_REPLY_MAX: Final = 480
HOIIO_MSG_MAX: Final = 1000
SMS_TEXT_MAX: Final = 640
# Hoiio's dial and transfer statuses are answered, unanswered, failed and busy; an older
# spelling is read as Hoiio's name for it.
OLD_STATUSES: Final = {"no_answer": "unanswered", "noanswer": "unanswered"}

_KIND_PATTERN = re.compile(r"[a-z*?]+(\.[a-z*?]+)?")


@functools.lru_cache(maxsize=256)
def _kinds_matching(pattern: str) -> frozenset[str]:
    return frozenset(k for k in KINDS if fnmatchcase(k, pattern))


class KindSpec(Spec):
    """An event kind, or a glob over kinds such as ``sms.*``."""

    description = "An event kind (e.g. sms.received) or a glob such as sms.* or *."

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        if not isinstance(value, str) or not _KIND_PATTERN.fullmatch(value):
            return ctx.error(line, path, f"{value!r} is not an event kind")
        matched = _kinds_matching(value)
        if not matched:
            close = get_close_matches(value, sorted(KINDS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return ctx.error(line, path, f"unknown event kind {value!r}{hint}")
        return matched

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        return {"type": "string", "description": self.description, "examples": sorted(KINDS)}


def parse_hours(value: str) -> tuple[time, time] | None:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})", value.strip())
    if not match:
        return None
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
        return None
    end = time(23, 59, 59, 999999) if h2 == 24 else time(h2, m2)
    start = time(h1, m1)
    if start == end:
        return None  # an empty window would never match
    return start, end


def parse_days(values: tuple[str, ...], line: int, ctx: Ctx, path: str) -> Any:
    days: set[int] = set()
    for item in values:
        for part in item.replace(" ", "").lower().split(","):
            first, dash, last = part.partition("-")
            if first not in DAY_NAMES or (dash and last not in DAY_NAMES):
                return ctx.error(line, path, f"{item!r} is not a day or range like mon-fri")
            a = DAY_NAMES.index(first)
            b = DAY_NAMES.index(last) if last else a
            days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(days)


class TimezoneSpec(Str):
    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        name = super().parse(value, line, ctx, path)
        if name is INVALID:
            return INVALID
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            return ctx.error(line, path, f"unknown timezone {name!r}")


class HoursSpec(Str):
    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        text = super().parse(value, line, ctx, path)
        if text is INVALID:
            return INVALID
        hours = parse_hours(text)
        if hours is None:
            return ctx.error(line, path, f"{text!r} is not a window like 09:00-18:00")
        return hours


class DaysSpec(ListOf):
    def __init__(self, description: str) -> None:
        super().__init__(Str(), description)

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        names = super().parse(value, line, ctx, path)
        return INVALID if names is INVALID else parse_days(names, line, ctx, path)


class DateSpec(Str):
    def __init__(self) -> None:
        super().__init__(
            "A date, YYYY-MM-DD.", pattern=r"\d{4}-\d{2}-\d{2}", pattern_hint="a date YYYY-MM-DD"
        )

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        text = super().parse(value, line, ctx, path)
        if text is INVALID:
            return INVALID
        try:
            date.fromisoformat(text)
        except ValueError:
            return ctx.error(line, path, f"{text!r} is not a date on the calendar")
        return text
