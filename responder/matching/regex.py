"""Regex safety: refuse at load time the patterns that backtrack catastrophically.

Python's ``re`` backtracks. A pattern where the same text can be matched in many ways
(``(a+)+``, ``(a|aa)*``, ``(.*)*``, ``\\d+\\d+``) takes exponential or high-polynomial time
on a text that almost matches, and a contact chooses the text. Each pattern is read with the
standard library's own parser and refused when

* a repeated group (``*``, ``+``, ``{2,}``) contains a part of variable length, unless a
  required character that the variable part cannot match separates the repetitions
  (``(\\d+,)*`` is fine, ``(\\w+\\s?)+`` is not);
* a repeated group has alternatives that can start with the same character
  (``(\\d\\d|\\w\\w)+``);
* two unbounded quantifiers follow each other with nothing required between them and can
  match the same characters (``.*.*``, ``\\d+\\d*``, ``\\w+\\s*\\w+``).

Atomic groups and possessive quantifiers (``(?>...)``, ``a++``) never backtrack and are the
way out. Character sets are compared on a probe alphabet (ASCII plus samples of Latin,
Greek, CJK, Arabic digits and Unicode spaces). Even an accepted pattern only ever sees the
first MAX_REGEX_TEXT characters of a text.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Iterable
from typing import Any, Final

# Every limit has a number: a regex condition searches at most this much of a text. Even a
# safe pattern may cost O(n^2) when searched (every start position); 2,000 characters is more
# than any SMS of 13 parts and keeps that under a few million steps.
MAX_REGEX_TEXT: Final = 2_000

_parser: Any = importlib.import_module("re._parser")
_c: Any = importlib.import_module("re._constants")

_PROBES: Final = "".join(chr(i) for i in range(0x250)) + "ΑαЖж中文٣۴\u00a0\u2003\u3000\u2028"
_REPEATS = (_c.MAX_REPEAT, _c.MIN_REPEAT)
_SINGLE = (_c.LITERAL, _c.NOT_LITERAL, _c.ANY, _c.IN)
_ALL: Final = frozenset(_PROBES)


class UnsafeRegex(ValueError):
    """A pattern prone to catastrophic backtracking; the message says which part and why."""


def check_regex(pattern: str, flags: int = 0) -> None:
    """Raise UnsafeRegex when ``pattern`` can backtrack catastrophically (see the module)."""
    tree = _parser.parse(pattern, flags)
    _Checker(tree.state.flags).sequence(list(tree))


def _category(name: Any, ch: str) -> bool:
    if name in (_c.CATEGORY_DIGIT, _c.CATEGORY_UNI_DIGIT):
        return ch.isdecimal()
    if name in (_c.CATEGORY_NOT_DIGIT, _c.CATEGORY_UNI_NOT_DIGIT):
        return not ch.isdecimal()
    if name in (_c.CATEGORY_SPACE, _c.CATEGORY_UNI_SPACE):
        return ch.isspace()
    if name in (_c.CATEGORY_NOT_SPACE, _c.CATEGORY_UNI_NOT_SPACE):
        return not ch.isspace()
    if name in (_c.CATEGORY_WORD, _c.CATEGORY_UNI_WORD):
        return ch.isalnum() or ch == "_"
    if name in (_c.CATEGORY_NOT_WORD, _c.CATEGORY_UNI_NOT_WORD):
        return not (ch.isalnum() or ch == "_")
    return True  # unknown category: assume it matches (the safe side)


def _folded(ch: str, ignore_case: bool) -> set[str]:
    if not ignore_case:
        return {ch}
    return {c for c in (ch, ch.lower(), ch.upper()) if len(c) == 1}


@functools.lru_cache(maxsize=4096)
def _single(op: Any, av: Any, ignore_case: bool, dotall: bool) -> frozenset[str]:
    checker = _Checker((re.IGNORECASE if ignore_case else 0) | (re.DOTALL if dotall else 0))
    return checker._single(op, list(av) if isinstance(av, tuple) and op is _c.IN else av)


class _Checker:
    def __init__(self, flags: int) -> None:
        self.ignore_case = bool(flags & re.IGNORECASE)
        self.dotall = bool(flags & re.DOTALL)

    # -- character sets on the probe alphabet --------------------------------------------

    def single(self, op: Any, av: Any) -> frozenset[str]:
        """The probe characters one single-character item matches."""
        # Rule sets repeat their character classes: each is worked out once.
        key = tuple(av) if isinstance(av, list) else av
        return _single(op, key, self.ignore_case, self.dotall)

    def _single(self, op: Any, av: Any) -> frozenset[str]:
        if op is _c.LITERAL:
            return frozenset(ch for ch in _PROBES if self._in_literal(ch, av)) | {chr(av)}
        if op is _c.NOT_LITERAL:
            return frozenset(ch for ch in _PROBES if not self._in_literal(ch, av))
        if op is _c.ANY:
            return _ALL if self.dotall else _ALL - {"\n"}
        if op is _c.IN:
            return frozenset(ch for ch in _PROBES if self._in_set(ch, av))
        return _ALL

    def _in_literal(self, ch: str, code: int) -> bool:
        return any(ord(c) == code for c in _folded(ch, self.ignore_case))

    def _in_set(self, ch: str, items: list[tuple[Any, Any]]) -> bool:
        negate = bool(items) and items[0][0] is _c.NEGATE
        found = False
        for op, av in items:
            for c in _folded(ch, self.ignore_case):
                if (
                    (op is _c.LITERAL and ord(c) == av)
                    or (op is _c.RANGE and av[0] <= ord(c) <= av[1])
                    or (op is _c.CATEGORY and _category(av, c))
                ):
                    found = True
        return found != negate

    def chars(self, items: Iterable[tuple[Any, Any]]) -> frozenset[str]:
        """Every probe character any part of ``items`` could consume."""
        out: set[str] = set()
        for op, av in items:
            if op in _SINGLE:
                out |= self.single(op, av)
            elif op in _REPEATS or op is _c.POSSESSIVE_REPEAT:
                out |= self.chars(av[2])
            elif op is _c.SUBPATTERN:
                out |= self.chars(av[3])
            elif op is _c.ATOMIC_GROUP:
                out |= self.chars(av)
            elif op is _c.BRANCH:
                for alternative in av[1]:
                    out |= self.chars(alternative)
            elif op in (_c.GROUPREF, _c.GROUPREF_EXISTS, _c.CATEGORY):
                return _ALL
        return frozenset(out)

    # -- the checks ----------------------------------------------------------------------

    def sequence(self, items: list[tuple[Any, Any]]) -> None:
        self._adjacent(items)
        for op, av in items:
            if op in _REPEATS:
                _, high, body = av
                if high > 1:
                    self._repeated(list(body))
                self.sequence(list(body))
            elif op is _c.POSSESSIVE_REPEAT:
                self.sequence(list(av[2]))
            elif op is _c.SUBPATTERN:
                self.sequence(list(av[3]))
            elif op is _c.BRANCH:
                for alternative in av[1]:
                    self.sequence(list(alternative))
            elif op in (_c.ASSERT, _c.ASSERT_NOT):
                self.sequence(list(av[1]))
            elif op is _c.GROUPREF_EXISTS:
                for part in av[1:]:
                    if part is not None:
                        self.sequence(list(part))
            # ATOMIC_GROUP: never backtracks into; what is inside cannot blow up from outside.

    def _repeated(self, body: list[tuple[Any, Any]]) -> None:
        """A group repeated more than once: its repetitions must split text one way only."""
        items = _flatten(body)
        variable: set[str] = set()
        separators: list[frozenset[str]] = []
        for op, av in items:
            if op in (_c.ATOMIC_GROUP, _c.POSSESSIVE_REPEAT):
                continue  # matches one way only: it never gives characters back
            low_w, high_w = _width([(op, av)])
            if low_w != high_w:
                variable |= self.chars([(op, av)])
            elif op in _SINGLE:
                separators.append(self.single(op, av))
        if variable and not any(sep.isdisjoint(variable) for sep in separators):
            raise UnsafeRegex(
                "nested quantifier: a repeated group contains a part of variable length that "
                "can match where the next repetition starts, e.g. (a+)+ or (\\w+\\s?)*; "
                "make the part fixed, separate repetitions by a character it cannot match, "
                "or use an atomic group (?>...) or a possessive quantifier (a++)"
            )
        for alternatives in _branches(items):
            self._alternatives(alternatives)

    def _alternatives(self, alternatives: list[Any]) -> None:
        # The parser takes a common start out of the alternatives: (a|a)* is read as
        # (a(?:|))*, (yes|yes)+ as (yes(?:|))+ and (a|ab?)* as (a(?:|b?))*. Two alternatives
        # that can both be empty match the same (empty) text, so each repetition can be
        # taken two ways, and a failing search tries every combination.
        if sum(1 for alternative in alternatives if _width(list(alternative))[0] == 0) > 1:
            raise UnsafeRegex(
                "overlapping alternatives in a repeated group: two alternatives can match "
                "the same text, e.g. (a|a)* or (a|ab?)*; remove the duplicate or use an "
                "atomic group (?>...)"
            )
        firsts = [self._first(list(alternative)) for alternative in alternatives]
        for i, first in enumerate(firsts):
            for other in firsts[i + 1 :]:
                if not first.isdisjoint(other):
                    raise UnsafeRegex(
                        "overlapping alternatives in a repeated group: two alternatives can "
                        "start with the same character, e.g. (\\d\\d|\\w\\w)+; make "
                        "them start differently or use an atomic group (?>...)"
                    )

    def _first(self, items: list[tuple[Any, Any]]) -> frozenset[str]:
        """Characters the sequence can start with (an empty one: none)."""
        out: set[str] = set()
        for op, av in items:
            if op is _c.AT or op in (_c.ASSERT, _c.ASSERT_NOT):
                continue
            out |= self.chars([(op, av)]) if op not in _SINGLE else self.single(op, av)
            if _width([(op, av)])[0] > 0:
                break
        return frozenset(out)

    def _adjacent(self, items: list[tuple[Any, Any]]) -> None:
        """``.*.*``: two unbounded quantifiers that can share characters, nothing required
        between them."""
        previous: frozenset[str] | None = None
        for op, av in map(_unwrapped, items):
            if op in _REPEATS and av[1] == _c.MAXREPEAT and _is_single(av[2]):
                current = self.single(*next(iter(av[2])))
                if previous is not None and not previous.isdisjoint(current):
                    raise UnsafeRegex(
                        "adjacent quantifiers: two unbounded repeats with nothing required "
                        "between them can match the same characters, e.g. .*.* or \\d+\\d* "
                        "or \\w+\\s*\\w+; merge them, require a separator (\\s+), or use a "
                        "possessive quantifier (\\w++)"
                    )
                # A required run of other characters separates what comes before it.
                previous = current if previous is None or av[0] > 0 else previous | current
            elif _width([(op, av)])[0] == 0 and op is not _c.POSSESSIVE_REPEAT:
                continue  # optional or zero-width: the two repeats still touch
            else:
                previous = None


def _unwrapped(item: tuple[Any, Any]) -> tuple[Any, Any]:
    """A group holding one item, as that item: ``(a+)(a+)b`` is ``a+a+b`` for the adjacency
    check (nine such groups take O(n**9) steps on a text of a's)."""
    op, av = item
    while op is _c.SUBPATTERN:
        inner = _flatten(list(av[3]))
        if len(inner) != 1:
            break
        op, av = inner[0]
    return op, av


def _branches(items: list[tuple[Any, Any]]) -> Iterable[list[Any]]:
    """The alternatives of every branch inside a repeated group, however deep, except in
    the parts that never backtrack (atomic groups, possessive repeats) and lookarounds."""
    for op, av in items:
        if op is _c.BRANCH:
            yield av[1]
            for alternative in av[1]:
                yield from _branches(list(alternative))
        elif op in _REPEATS:
            yield from _branches(list(av[2]))
        elif op is _c.SUBPATTERN:
            yield from _branches(list(av[3]))


def _is_single(body: Any) -> bool:
    items = list(body)
    return len(items) == 1 and items[0][0] in _SINGLE


def _flatten(items: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """A group's top-level items, with plain groups opened up: ``((a+))+`` is ``(a+)+``."""
    while len(items) == 1 and items[0][0] is _c.SUBPATTERN:
        items = list(items[0][1][3])
    return items


def _width(items: list[tuple[Any, Any]]) -> tuple[int, int]:
    sub = _parser.SubPattern(_parser.State())
    sub.data = list(items)
    low, high = sub.getwidth()
    return int(low), int(high)
