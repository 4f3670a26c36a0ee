"""Regex search with bounded time: RE2 where it means what Python's ``re`` means, else ``re``
under a time budget.

The load-time check (``regex.check_regex``) refuses the patterns known to backtrack
catastrophically, but a checker can miss one, and a contact chooses the text. So a rule's
regex is also translated, when it can be, into RE2 syntax: RE2 runs in time linear in the
text whatever the pattern. The translation is exact: each single-character item (a letter
under case folding, ``\\w``, ``[^a-z]``) becomes the class of every code point ``re`` itself
matches with it, and Python's ``$`` becomes "an optional newline, then the end" where that
changes no group. Two things RE2 cannot follow send a text back to ``re``: ``\\b`` on a text
that is not ASCII (RE2's words are ASCII), and a ``$`` inside a group or before more pattern
on a text that ends with a newline. Lookarounds, back-references, atomic groups, possessive
repeats, ``re.MULTILINE`` and repeat counts above 1,000 have no translation at all. Those
are searched by ``re`` with an interval timer that interrupts the search after REGEX_BUDGET
seconds (``re`` checks for signals as it goes); a search cut short counts as no match and is
logged.
"""

from __future__ import annotations

import functools
import importlib
import logging
import re
import signal
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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

    __slots__ = ("_linear", "_translation", "compiled", "timeouts")

    def __init__(self, compiled: re.Pattern[str]) -> None:
        self.compiled = compiled
        self.timeouts = 0  # searches cut short by the budget
        self._linear: Any = None
        self._translation = Translation("")
        if _re2 is not None:
            try:
                self._translation = translate(compiled.pattern, compiled.flags)
            except _NoTranslation:
                return
            options = _re2.Options()
            options.log_errors = False
            options.max_mem = 64 << 20  # Unicode classes such as \\w take room
            try:
                self._linear = _re2.compile(self._translation.pattern, options)
            except _re2.error:  # too large for RE2: re, under the budget
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
        """Whether texts are searched by RE2 (``linear_for`` says which)."""
        return self._linear is not None

    def linear_for(self, text: str) -> bool:
        """Whether RE2 answers for ``text`` exactly as ``re`` would."""
        t = self._translation
        return (
            self._linear is not None
            and not (t.boundary and not text.isascii())
            and not (t.dollar and text.endswith("\n"))
        )

    def groups(self, text: str) -> Mapping[str, str | None] | None:
        """The named groups of the first match in ``text``, or None when there is none (or
        when the search ran out of its budget)."""
        if self.linear_for(text):
            try:
                found = self._linear.search(text)
            except UnicodeEncodeError:
                pass  # a lone surrogate (providers replace them): re answers
            else:
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


@dataclass(frozen=True, slots=True)
class Translation:
    """A pattern in RE2 syntax, and which texts it answers exactly as ``re`` does."""

    pattern: str
    dollar: bool = False  # a ``$`` RE2 cannot follow on a text ending in a newline
    boundary: bool = False  # ``\b`` or ``\B``: RE2's know ASCII words only


def translate(pattern: str, flags: int = 0) -> Translation:
    """RE2 syntax that matches as ``re.compile(pattern, flags)`` does (see ``Translation``
    for the texts where it cannot); raises _NoTranslation when RE2 has no equivalent."""
    tree = _parser.parse(pattern, flags)
    flags = tree.state.flags
    if flags & re.MULTILINE:
        raise _NoTranslation
    emitter = _Emitter({number: name for name, number in tree.state.groupdict.items()})
    translated = emitter.sequence(list(tree), flags, final=True)
    return Translation(translated, emitter.dollar, emitter.boundary)


class _Emitter:
    def __init__(self, names: dict[int, str]) -> None:
        self.names = names
        self.dollar = False
        self.boundary = False

    def sequence(self, items: list[tuple[Any, Any]], flags: int, final: bool) -> str:
        """``final``: nothing after this sequence consumes a character and no group
        encloses it, so a ``$`` at its end may take the text's last newline with it."""
        out: list[str] = []
        for index, (op, av) in enumerate(items):
            last = final and index == len(items) - 1
            if op in _SINGLE:
                out.append(_class(op, _frozen(av), flags))
            elif op in _REPEATS:
                low, high, body = av
                if low > _MAX_RE2_REPEAT or (high != _c.MAXREPEAT and high > _MAX_RE2_REPEAT):
                    raise _NoTranslation
                top = "" if high == _c.MAXREPEAT else str(high)
                lazy = "?" if op is _c.MIN_REPEAT else ""
                inner = self.sequence(list(body), flags, final=False)
                out.append(f"(?:{inner}){{{low},{top}}}{lazy}")
            elif op is _c.SUBPATTERN:
                group, add, remove, body = av
                inner_flags = (flags | add) & ~remove
                if inner_flags & re.MULTILINE:
                    raise _NoTranslation
                inner = self.sequence(list(body), inner_flags, final=last and group is None)
                if group is None:
                    out.append(f"(?:{inner})")
                elif group in self.names:
                    out.append(f"(?P<{self.names[group]}>{inner})")
                else:
                    out.append(f"({inner})")
            elif op is _c.BRANCH:
                alternatives = (self.sequence(list(a), flags, final=last) for a in av[1])
                out.append("(?:" + "|".join(alternatives) + ")")
            elif op is _c.AT:
                out.append(self.at(av, last))
            else:  # lookarounds, back-references, atomic groups, possessive repeats
                raise _NoTranslation
        return "".join(out)

    def at(self, where: Any, last: bool) -> str:
        if where in (_c.AT_BEGINNING, _c.AT_BEGINNING_STRING):
            return r"\A"
        if where is _c.AT_END:
            # Python's $ also matches before a final newline. Where nothing follows it and no
            # group holds it, taking that newline into the match changes no group.
            if last:
                return r"(?:\n?\z)"
            self.dollar = True
            return r"\z"
        if where is _c.AT_END_STRING:
            return r"\z"
        if where in (_c.AT_BOUNDARY, _c.AT_NON_BOUNDARY):
            self.boundary = True
            return r"\b" if where is _c.AT_BOUNDARY else r"\B"
        raise _NoTranslation


def _frozen(av: Any) -> Any:
    """A single-character item's argument, hashable (a set's items come as a list)."""
    return tuple(av) if isinstance(av, list) else av


@functools.cache
def _every_character() -> str:
    """Every code point but the surrogates, in order (4.4 MB, made once, when first needed)."""
    return "".join(map(chr, range(0xD800))) + "".join(map(chr, range(0xE000, 0x110000)))


@functools.lru_cache(maxsize=4096)
def _class(op: Any, av: Any, flags: int) -> str:
    """The characters one single-character item matches under ``flags``, as an RE2 class,
    found by ``re`` itself over every code point (so case folding and Unicode classes agree
    exactly)."""
    if op is _c.LITERAL and not flags & re.IGNORECASE:
        return _ranges([(av, av)])
    state = _parser.State()
    state.flags = flags
    sub = _parser.SubPattern(state, [(op, list(av) if op is _c.IN else av)])
    compiled = _compiler.compile(sub, flags)
    everything = _every_character()
    others = compiled.sub("", everything)  # the characters it does not match
    if len(others) * 2 > len(everything):
        return _ranges(_spans(compiled.findall(everything)))
    if not others:
        return r"[\x{0}-\x{10FFFF}]"
    return _ranges(_spans(others), negated=True)


def _spans(chars: Iterable[str]) -> list[tuple[int, int]]:
    spans: list[list[int]] = []
    for char in chars:
        code = ord(char)
        if spans and spans[-1][1] == code - 1:
            spans[-1][1] = code
        else:
            spans.append([code, code])
    return [(a, b) for a, b in spans]


def _ranges(spans: list[tuple[int, int]], negated: bool = False) -> str:
    if not spans:
        return r"[^\x{0}-\x{10FFFF}]"
    parts = "".join(f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in spans)
    return f"[{'^' if negated else ''}{parts}]"
