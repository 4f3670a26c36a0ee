"""The rule index: which rules of a kind could match an event, without testing every rule.

Each rule gets at most one *gate*, a condition of its top-level ``when`` that is cheap to look
up: the event's channel, the first word (``keyword``), the whole text (``only``), the digits
pressed, a literal the text must start with (``regex: "^order ..."``) or contain (any regex
with a required literal). A rule whose gate cannot hold is skipped; every other rule is
tested in full, in the usual order. The gate is only ever a necessary condition, so the index
changes how many rules are tested, never which rule matches.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Generic, Protocol, TypeVar

from responder.events import Event
from responder.frozen import quick_init
from responder.matching.bounded import Regex
from responder.matching.conditions import AllOf, OneOfCondition, TextCondition, words
from responder.matching.regex import MAX_REGEX_TEXT


class Indexed(Protocol):
    """What the index reads of a rule: its top-level conditions."""

    @property
    def when(self) -> AllOf: ...


Rule = TypeVar("Rule", bound=Indexed)

_parser: Any = importlib.import_module("re._parser")
sre: Any = importlib.import_module("re._constants")

# Characters whose case-insensitive matches (as ``re`` sees them) all lower-case to the
# character's own lower case: only these may take part in a literal looked up in the
# lower-cased text. ``i`` and ``s`` also match the dotless i and the long s (U+0131, U+017F);
# letters outside ASCII have more such surprises.
_SAFE: Final = frozenset(
    "abcdefghjklmnopqrtuvwxyzABCDEFGHJKLMNOPQRTUVWXYZ0123456789 -_.,:;/#@&+=!?'\""
)
_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", sre.MAX_REPEAT))
_SCAN = 3  # literals are found in the text through their first three characters


def _runs(sequence: Iterable[tuple[Any, Any]]) -> list[str]:
    """Literal runs (lower-cased) that every match of ``sequence`` contains."""
    runs: list[str] = []
    current: list[str] = []
    for op, av in sequence:
        if op is sre.LITERAL and chr(av) in _SAFE:
            current.append(chr(av).lower())
            continue
        if current:
            runs.append("".join(current))
            current = []
        if op is sre.SUBPATTERN:
            runs += _runs(av[-1])
        elif op in _REPEATS and av[0] >= 1:
            runs += _runs(av[2])
        elif op is getattr(sre, "ATOMIC_GROUP", None):
            runs += _runs(av)
    if current:
        runs.append("".join(current))
    return runs


def _prefix(pattern: Regex) -> str:
    """The literal every match starts the text with ("" when there is none)."""
    items = list(_parser.parse(pattern.pattern, pattern.flags))
    if not items or items[0][0] is not sre.AT:
        return ""
    where = items[0][1]
    if where is not sre.AT_BEGINNING_STRING and not (
        where is sre.AT_BEGINNING and not pattern.flags & re.MULTILINE
    ):
        return ""
    chars: list[str] = []
    for op, av in items[1:]:
        if op is not sre.LITERAL or chr(av) not in _SAFE:
            break
        chars.append(chr(av).lower())
    return "".join(chars)


def _literal(pattern: Regex) -> str:
    """The longest literal every match contains ("" when there is none)."""
    return max(_runs(_parser.parse(pattern.pattern, pattern.flags)), key=len, default="")


@quick_init
@dataclass(frozen=True, slots=True)
class Probe:
    """What the gates look at, worked out once per event."""

    channel: str
    words: tuple[str, ...]
    first: str
    whole: str
    digits: str
    text: str  # lower-cased, within the regex window

    @classmethod
    def of(cls, event: Event) -> Probe:
        found = words(event.text or "")
        return cls(
            event.channel.casefold(),
            found,
            found[0] if found else "",
            " ".join(found),
            (event.digits or "").strip(),
            (event.text or "")[:MAX_REGEX_TEXT].lower(),
        )


def _gate(rule: Indexed) -> tuple[str, Any] | None:
    """The cheapest necessary condition of ``rule`` the index can look up."""
    found: tuple[str, Any] | None = None
    for condition in rule.when.conditions:
        if isinstance(condition, TextCondition) and condition.field == "text":
            test = condition.check
            if test.keyword is not None:
                return ("first", test.keyword)
            if test.only is not None:
                return ("whole", test.only)
            if test.any_word is not None:
                return ("any_word", test.any_word)
            if test.regex is not None and found is None:
                if prefix := _prefix(test.regex):
                    found = ("prefix", prefix)
                elif len(literal := _literal(test.regex)) >= _SCAN:
                    found = ("contains", literal)
        elif isinstance(condition, TextCondition) and condition.check.exact is not None:
            return ("digits", condition.check.exact)
    return found


@dataclass
class _Bucket:
    """The gates of the rules of one kind and channel (or of any channel)."""

    always: list[int] = field(default_factory=list)
    first: dict[str, list[int]] = field(default_factory=dict)
    whole: dict[str, list[int]] = field(default_factory=dict)
    any_word: dict[str, list[int]] = field(default_factory=dict)
    digits: dict[str, list[int]] = field(default_factory=dict)
    prefix: dict[str, list[int]] = field(default_factory=dict)
    contains: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    def add(self, position: int, gate: tuple[str, Any] | None) -> None:
        if gate is None:
            self.always.append(position)
            return
        how, what = gate
        if how == "contains":
            self.contains.setdefault(what[:_SCAN], {}).setdefault(what, []).append(position)
        elif how == "prefix":
            self.prefix.setdefault(what, []).append(position)
        else:
            table: dict[str, list[int]] = getattr(self, how)
            for key in what:
                table.setdefault(key, []).append(position)

    def freeze(self) -> _Frozen:
        return _Frozen(
            tuple(self.always),
            {k: tuple(v) for k, v in self.first.items()},
            {k: tuple(v) for k, v in self.whole.items()},
            {k: tuple(v) for k, v in self.any_word.items()},
            {k: tuple(v) for k, v in self.digits.items()},
            {k: tuple(v) for k, v in self.prefix.items()},
            tuple(sorted({len(k) for k in self.prefix})),
            {s: {k: tuple(v) for k, v in d.items()} for s, d in self.contains.items()},
            _scanner(self.contains),
        )


# Up to this many distinct literal starts, one regex finds them all faster than a lookup at
# every place in the text; beyond, the regex engine tries each at every place and loses.
SCAN_KEYS: Final = 32


def _scanner(contains: dict[str, Any]) -> re.Pattern[str] | None:
    if not contains or len(contains) > SCAN_KEYS:
        return None
    keys = "|".join(re.escape(key) for key in sorted(contains))
    return re.compile(f"(?=({keys}))")


@dataclass(frozen=True, slots=True)
class _Frozen:
    always: tuple[int, ...]
    first: dict[str, tuple[int, ...]]
    whole: dict[str, tuple[int, ...]]
    any_word: dict[str, tuple[int, ...]]
    digits: dict[str, tuple[int, ...]]
    prefix: dict[str, tuple[int, ...]]
    prefix_lengths: tuple[int, ...]
    contains: dict[str, dict[str, tuple[int, ...]]]
    # Finds, in one pass of the regex engine, every place where some key of ``contains``
    # starts (the keys are all _SCAN long, so at most one starts at a place); None for more
    # than SCAN_KEYS keys, looked up place by place.
    scan: re.Pattern[str] | None

    def find(self, probe: Probe, into: set[int]) -> None:
        into.update(self.always)
        into.update(self.first.get(probe.first, ()))
        into.update(self.whole.get(probe.whole, ()))
        if self.any_word:
            for word in probe.words:
                into.update(self.any_word.get(word, ()))
        into.update(self.digits.get(probe.digits, ()))
        text = probe.text
        for length in self.prefix_lengths:
            into.update(self.prefix.get(text[:length], ()))
        if self.scan is not None:
            for found in self.scan.finditer(text):
                self._literals_at(text, found.start(), self.contains[found.group(1)], into)
        elif self.contains:
            for start in range(len(text) - _SCAN + 1):
                literals = self.contains.get(text[start : start + _SCAN])
                if literals:
                    self._literals_at(text, start, literals, into)

    @staticmethod
    def _literals_at(
        text: str, start: int, literals: dict[str, tuple[int, ...]], into: set[int]
    ) -> None:
        for literal, positions in literals.items():
            if text.startswith(literal, start):
                into.update(positions)


@dataclass(frozen=True, slots=True)
class KindIndex(Generic[Rule]):
    """The rules of one kind, in order, with their gates by channel."""

    rules: tuple[Rule, ...]
    anywhere: _Frozen
    by_channel: dict[str, _Frozen]

    def candidates(self, event: Event) -> tuple[Rule, ...]:
        probe = Probe.of(event)
        found: set[int] = set()
        self.anywhere.find(probe, found)
        channel = self.by_channel.get(probe.channel)
        if channel is not None:
            channel.find(probe, found)
        if len(found) == len(self.rules):
            return self.rules
        return tuple(self.rules[p] for p in sorted(found))


def _channels(rule: Indexed) -> frozenset[str] | None:
    for condition in rule.when.conditions:
        if isinstance(condition, OneOfCondition) and condition.name == "channel":
            return condition.values
    return None


def index_kind(rules: Sequence[Rule]) -> KindIndex[Rule]:
    """Index the rules of one kind (already in evaluation order)."""
    anywhere = _Bucket()
    by_channel: dict[str, _Bucket] = {}
    for position, rule in enumerate(rules):
        gate = _gate(rule)
        channels = _channels(rule)
        if channels is None:
            anywhere.add(position, gate)
        else:
            for channel in channels:
                by_channel.setdefault(channel, _Bucket()).add(position, gate)
    return KindIndex(
        tuple(rules), anywhere.freeze(), {k: v.freeze() for k, v in by_channel.items()}
    )
