"""Regex search with bounded time: RE2 where it means what Python's ``re`` means, else ``re``
under a time budget.

The load-time check (``regex.check_regex``) refuses the patterns known to backtrack
catastrophically, but a checker can miss one, and a contact chooses the text. So a rule's
regex is also translated, when it can be, into RE2 syntax: RE2 runs in time linear in the
text whatever the pattern. The translation is exact on the texts it is used for: ASCII
texts (Python's Unicode classes, ``\\b`` and case folding agree with an ASCII class there,
and each single-character item's class is worked out by ``re`` itself) that do not end with
a newline (where Python's ``$`` also matches before it). Lookarounds, back-references,
atomic groups, possessive repeats, ``re.MULTILINE`` and repeat counts above 1,000 have no
RE2 translation; those patterns, and other texts, are searched by ``re`` with an interval
timer that interrupts the search after REGEX_BUDGET seconds (``re`` checks for signals as it
goes). A search cut short counts as no match and is logged.
"""

from __future__ import annotations

import importlib
import logging
import re
import signal
import threading
from collections.abc import Mapping
from functools import lru_cache
from types import FrameType
from typing import Any, Final

from responder.printable import one_line

log = logging.getLogger("responder.matching")

# Seconds one ``re`` search may take before it is cut short. A pattern the checker accepts
# takes up to ~60 ms on 2,000 hostile characters on a slow machine (quadratic, not
# exponential), so the budget leaves room for those and stops anything worse.
REGEX_BUDGET: Final = 0.1
# RE2 refuses larger counted repeats.
_MAX_RE2_REPEAT: Final = 1000

try:
    _re2: Any = importlib.import_module("re2")
except ImportError:  # pragma: no cover - a declared dependency; re alone still works
    _re2 = None

_parser: Any = importlib.import_module("re._parser")
_compiler: Any = importlib.import_module("re._compiler")
_c: Any = importlib.import_module("re._constants")
_SINGLE = (_c.LITERAL, _c.NOT_LITERAL, _c.ANY, _c.IN)
_REPEATS = (_c.MAX_REPEAT, _c.MIN_REPEAT)


class _NoTranslation(Exception):
    """The pattern uses something RE2 has not got."""


class _OutOfTime(Exception):
    """Raised by the interval timer's handler inside a ``re`` search."""


class Regex:
    """A compiled rule regex: ``groups(text)`` searches it with bounded time."""

    __slots__ = ("_dollar", "_linear", "compiled", "timeouts")

    def __init__(self, compiled: re.Pattern[str]) -> None:
        self.compiled = compiled
        self.timeouts = 0  # searches cut short by the budget
        self._linear: Any = None
        self._dollar = False
        if _re2 is not None:
            try:
                translated, self._dollar = translate(compiled.pattern, compiled.flags)
            except _NoTranslation:
                return
            options = _re2.Options()
            options.log_errors = False
            try:
                self._linear = _re2.compile(translated, options)
            except _re2.error:  # pragma: no cover - a translation is always RE2 syntax
                self._linear = None

    @classmethod
    def compile(cls, pattern: str, flags: int = 0) -> Regex:
        return cls(re.compile(pattern, flags))

    @property
    def pattern(self) -> str:
        return self.compiled.pattern

    @property
    def flags(self) -> int:
        return self.compiled.flags

    @property
    def linear(self) -> bool:
        """Whether ASCII texts are searched by RE2."""
        return self._linear is not None

    def groups(self, text: str) -> Mapping[str, str | None] | None:
        """The named groups of the first match in ``text``, or None when there is none (or
        when the search ran out of its budget)."""
        plain = text.isascii() and not (self._dollar and text.endswith("\n"))
        if self._linear is not None and plain:
            found = self._linear.search(text)
            return None if found is None else found.groupdict()
        try:
            match = _budgeted(self.compiled, text)
        except _OutOfTime:
            self.timeouts += 1
            log.warning(
                "regex /%s/ ran out of its %d ms budget on a %d-character text: no match",
                one_line(self.compiled.pattern, 80),
                REGEX_BUDGET * 1000,
                len(text),
            )
            return None
        return None if match is None else match.groupdict()

    def __repr__(self) -> str:
        return f"Regex({self.compiled.pattern!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Regex):
            return NotImplemented
        return self.compiled == other.compiled

    def __hash__(self) -> int:
        return hash(self.compiled)


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _OutOfTime


def _budgeted(compiled: re.Pattern[str], text: str) -> re.Match[str] | None:
    """``compiled.search(text)``, interrupted after REGEX_BUDGET seconds.

    Only the main thread receives signals; elsewhere (never the server's case) the search
    runs unbounded. A timer set by someone else is put back afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        return compiled.search(text)
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        other, _ = signal.setitimer(signal.ITIMER_REAL, REGEX_BUDGET)
        try:
            return compiled.search(text)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            if other:
                signal.setitimer(signal.ITIMER_REAL, max(other - REGEX_BUDGET, 1e-3))
    finally:
        signal.signal(signal.SIGALRM, previous)


def translate(pattern: str, flags: int = 0) -> tuple[str, bool]:
    """RE2 syntax that matches as ``re.compile(pattern, flags)`` does on ASCII texts not
    ending in a newline, and whether it uses Python's ``$`` (which also matches before a
    final newline). Raises _NoTranslation when RE2 has no equivalent."""
    tree = _parser.parse(pattern, flags)
    flags = tree.state.flags
    if flags & re.MULTILINE:
        raise _NoTranslation
    names = {number: name for name, number in tree.state.groupdict.items()}
    dollar: list[bool] = []
    return _emit(list(tree), flags, names, dollar), bool(dollar)


def _emit(
    items: list[tuple[Any, Any]], flags: int, names: dict[int, str], dollar: list[bool]
) -> str:
    out: list[str] = []
    for op, av in items:
        if op in _SINGLE:
            out.append(_ascii_class(op, _frozen(av), flags))
        elif op in _REPEATS:
            low, high, body = av
            if low > _MAX_RE2_REPEAT or (high != _c.MAXREPEAT and high > _MAX_RE2_REPEAT):
                raise _NoTranslation
            top = "" if high == _c.MAXREPEAT else str(high)
            lazy = "?" if op is _c.MIN_REPEAT else ""
            out.append(f"(?:{_emit(list(body), flags, names, dollar)}){{{low},{top}}}{lazy}")
        elif op is _c.SUBPATTERN:
            group, add, remove, body = av
            inner_flags = (flags | add) & ~remove
            if inner_flags & re.MULTILINE:
                raise _NoTranslation
            inner = _emit(list(body), inner_flags, names, dollar)
            if group is None:
                out.append(f"(?:{inner})")
            elif group in names:
                out.append(f"(?P<{names[group]}>{inner})")
            else:
                out.append(f"({inner})")
        elif op is _c.BRANCH:
            out.append("(?:" + "|".join(_emit(list(a), flags, names, dollar) for a in av[1]) + ")")
        elif op is _c.AT:
            out.append(_at(av, dollar))
        else:  # lookarounds, back-references, atomic groups, possessive repeats
            raise _NoTranslation
    return "".join(out)


def _at(where: Any, dollar: list[bool]) -> str:
    if where in (_c.AT_BEGINNING, _c.AT_BEGINNING_STRING):
        return r"\A"
    if where is _c.AT_END:
        dollar.append(True)
        return r"\z"
    if where is _c.AT_END_STRING:
        return r"\z"
    if where is _c.AT_BOUNDARY:
        return r"\b"
    if where is _c.AT_NON_BOUNDARY:
        return r"\B"
    raise _NoTranslation


def _frozen(av: Any) -> Any:
    """A single-character item's argument, hashable (a set's items come as a list)."""
    return tuple(av) if isinstance(av, list) else av


@lru_cache(maxsize=4096)
def _ascii_class(op: Any, av: Any, flags: int) -> str:
    """The ASCII characters one single-character item matches under ``flags``, as an RE2
    class, asked of ``re`` itself (so case folding and Unicode classes agree exactly)."""
    state = _parser.State()
    state.flags = flags
    value = list(av) if op is _c.IN else av
    sub = _parser.SubPattern(state, [(op, value)])
    compiled = _compiler.compile(sub, flags)
    chars = [code for code in range(128) if compiled.fullmatch(chr(code))]
    if not chars:
        return r"[^\x00-\x{10FFFF}]"
    ranges: list[list[int]] = []
    for code in chars:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    parts = (f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in ranges)
    return "[" + "".join(parts) + "]"
