"""Conditions: pure tests of an Event that return captures on a match and None otherwise."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from responder.errors import TemplateError
from responder.events import Event, value_key
from responder.frozen import quick_init
from responder.matching.bounded import Regex
from responder.matching.calendars import Calendar
from responder.matching.regex import MAX_REGEX_TEXT
from responder.templating.templates import Expression

Captures = dict[str, str]
NO_CAPTURES: Captures = {}

_NUMBER = re.compile(r"[-+]?(?:\d+(?:[.,]\d*)?|[.,]\d+)")
_EDGE_PUNCT = re.compile(r"^\W+|\W+$")


@quick_init
@dataclass(frozen=True, slots=True)
class Scope:
    """What a condition may consult besides the event: the clock, the template context and
    the rule set's calendars."""

    now: datetime
    context: Callable[[], Mapping[str, Any]]
    calendars: Mapping[str, Calendar] = field(default_factory=dict)


class Condition(Protocol):
    def test(self, event: Event, scope: Scope) -> Captures | None:
        """Captures (possibly empty) when the event matches, else None."""
        ...


@lru_cache(maxsize=16)
def words(text: str) -> tuple[str, ...]:
    """Words of ``text``, case-folded, with punctuation stripped from their edges.

    Remembered for the last few texts: the compliance keywords, the rule index and every
    keyword condition ask for the words of the same message."""
    out = []
    for raw in text.split():
        if (raw[0].isalnum() or raw[0] == "_") and (raw[-1].isalnum() or raw[-1] == "_"):
            out.append(raw.casefold())  # nothing to strip: the usual word, without a regex
            continue
        word = _EDGE_PUNCT.sub("", raw).casefold()
        if word:
            out.append(word)
    return tuple(out)


def parse_number(text: str) -> float | None:
    """The number ``text`` is (``12``, ``-3.5``, ``4,5``), or None."""
    stripped = text.strip()
    if not _NUMBER.fullmatch(stripped):
        return None
    return float(stripped.replace(",", "."))


@dataclass(frozen=True, slots=True)
class TextTest:
    """Tests on one piece of text; every test given must pass."""

    keyword: frozenset[str] | None = None
    only: frozenset[str] | None = None
    any_word: frozenset[str] | None = None
    phrase: tuple[re.Pattern[str], ...] | None = None
    regex: Regex | None = None
    number: tuple[float | None, float | None] | None = None
    empty: bool | None = None
    exact: frozenset[str] | None = None  # case-sensitive whole value (digits)

    def test(self, text: str | None) -> Captures | None:
        value = text or ""
        if self.empty is not None and (value.strip() == "") != self.empty:
            return None
        if self.exact is not None and value.strip() not in self.exact:
            return None
        if self.keyword is not None or self.only is not None or self.any_word is not None:
            found = words(value)
            if self.keyword is not None and (not found or found[0] not in self.keyword):
                return None
            if self.only is not None and " ".join(found) not in self.only:
                return None
            if self.any_word is not None and self.any_word.isdisjoint(found):
                return None
        if self.phrase is not None and not any(p.search(value) for p in self.phrase):
            return None
        if self.number is not None:
            number = parse_number(value)
            low, high = self.number
            if number is None or (low is not None and number < low):
                return None
            if high is not None and number > high:
                return None
        if self.regex is not None:
            # Bounded cost even for an accepted pattern: only the start of a long text.
            # Bounded time too: RE2 where it can, else a time budget (matching/bounded.py).
            groups = self.regex.groups(value[:MAX_REGEX_TEXT])
            if groups is None:
                return None
            return {k: v for k, v in groups.items() if v is not None}
        return NO_CAPTURES


def phrase_pattern(phrase: str) -> re.Pattern[str]:
    """Match ``phrase`` as whole words, case-insensitively, with any whitespace between."""
    parts = [re.escape(w) for w in phrase.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(parts) + r"(?!\w)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TextCondition:
    field: str  # "text" or "digits"
    check: TextTest

    def test(self, event: Event, scope: Scope) -> Captures | None:
        return self.check.test(getattr(event, self.field))


@dataclass(frozen=True, slots=True)
class PatternCondition:
    """A number or address against glob patterns (``+65*``, ``tel:+1206???????``)."""

    field: str
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def test(self, event: Event, scope: Scope) -> Captures | None:
        value = getattr(event, self.field) or ""
        if self.include and not any(fnmatchcase(value, p) for p in self.include):
            return None
        if any(fnmatchcase(value, p) for p in self.exclude):
            return None
        return NO_CAPTURES


@dataclass(frozen=True, slots=True)
class OneOfCondition:
    """A field equal (case-insensitively) to one of a set of values."""

    get: Callable[[Event], str | None]
    values: frozenset[str]
    name: str = ""  # the key it was written as (channel, status, flow.name...), for display

    def test(self, event: Event, scope: Scope) -> Captures | None:
        value = self.get(event)
        return NO_CAPTURES if value is not None and value.casefold() in self.values else None


@dataclass(frozen=True, slots=True)
class ValueCondition:
    """A collected flow value, by label: its category, value and/or text."""

    label: str
    category: frozenset[str] | None = None
    value: TextTest | None = None
    text: TextTest | None = None

    def test(self, event: Event, scope: Scope) -> Captures | None:
        found = event.values.get(value_key(self.label))
        if found is None:
            return None
        if self.category is not None and found.category.casefold() not in self.category:
            return None
        captures: Captures = {}
        for check, text in ((self.value, found.value), (self.text, found.text)):
            if check is not None:
                got = check.test(text)
                if got is None:
                    return None
                captures.update(got)
        return captures


@dataclass(frozen=True, slots=True)
class TimeCondition:
    """Local time in a timezone within given weekdays and an hours window (may wrap midnight)."""

    zone: ZoneInfo
    days: frozenset[int] | None = None  # Monday = 0
    start: time | None = None
    end: time | None = None
    dates: frozenset[str] | None = None  # ISO dates, e.g. holidays

    def test(self, event: Event, scope: Scope) -> Captures | None:
        local = scope.now.astimezone(self.zone)
        if self.days is not None and local.weekday() not in self.days:
            return None
        if self.dates is not None and local.date().isoformat() not in self.dates:
            return None
        if self.start is not None and self.end is not None:
            now = local.time().replace(tzinfo=None)
            if self.start <= self.end:
                inside = self.start <= now < self.end
            else:
                inside = now >= self.start or now < self.end
            if not inside:
                return None
        return NO_CAPTURES


@dataclass(frozen=True, slots=True)
class ExprCondition:
    expression: Expression

    def test(self, event: Event, scope: Scope) -> Captures | None:
        return NO_CAPTURES if self.expression.evaluate(scope.context()) else None


@dataclass(frozen=True, slots=True)
class AllOf:
    """Every condition must match; captures are merged in order."""

    conditions: tuple[Condition, ...]

    def test(self, event: Event, scope: Scope) -> Captures | None:
        captures: Captures = {}
        for condition in self.conditions:
            got = condition.test(event, scope)
            if got is None:
                return None
            if got:
                captures.update(got)
        return captures


@dataclass(frozen=True, slots=True)
class NotCondition:
    inner: AllOf

    def test(self, event: Event, scope: Scope) -> Captures | None:
        return NO_CAPTURES if self.inner.test(event, scope) is None else None


@dataclass(frozen=True, slots=True)
class AnyCondition:
    alternatives: tuple[AllOf, ...]

    def test(self, event: Event, scope: Scope) -> Captures | None:
        for alternative in self.alternatives:
            got = alternative.test(event, scope)
            if got is not None:
                return got
        return None


@dataclass(frozen=True, slots=True)
class CalendarCondition:
    """``open: NAME`` (``want_open``) or ``closed: NAME`` at the event's time."""

    name: str
    want_open: bool

    def test(self, event: Event, scope: Scope) -> Captures | None:
        calendar = scope.calendars.get(self.name)
        if calendar is None:  # `check` refuses unknown names; a hand-built Scope may lack it
            raise TemplateError(f"unknown calendar {self.name!r}")
        return NO_CAPTURES if calendar.is_open(scope.now) == self.want_open else None
