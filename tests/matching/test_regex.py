"""Regex safety: patterns prone to catastrophic backtracking are refused, ordinary ones pass,
and what is refused really is slow while what passes stays fast on hostile text."""

from __future__ import annotations

import re
import time

import pytest

from responder.matching.regex import MAX_REGEX_TEXT, UnsafeRegex, check_regex

# (pattern, the kind of problem reported)
UNSAFE = [
    (r"(a+)+", "nested quantifier"),
    (r"(a*)*", "nested quantifier"),
    (r"(.*)*", "nested quantifier"),
    (r"((a+))+", "nested quantifier"),
    (r"^(\d+)*$", "nested quantifier"),
    (r"(\w+\s?)+$", "nested quantifier"),
    (r"(?:[a-z]+\s*)+$", "nested quantifier"),
    (r"(a{1,5})+", "nested quantifier"),
    (r"(a\w+)+", "nested quantifier"),
    (r"(.*,)*x", "nested quantifier"),
    (r"(x+|y)*", "nested quantifier"),
    # Alternatives of different lengths are a part of variable length, too: the parser
    # reads (a|aa)* as (a(?:|a))*.
    (r"(a|aa)*", "nested quantifier"),
    (r"(a|a?)+", "nested quantifier"),
    (r"(?:a|b|ab)+", "nested quantifier"),
    (r"(\d|\w\w)+", "nested quantifier"),
    (r"(\d\d|\w\w)+$", "overlapping alternatives in a repeated group"),
    (r"(?:ab|\wc)+$", "overlapping alternatives in a repeated group"),
    (r".*.*x", "adjacent quantifiers"),
    (r"\d+\d+", "adjacent quantifiers"),
    (r"\d+\d*x", "adjacent quantifiers"),
    (r"\w+\s*\w+$", "adjacent quantifiers"),
    (r".*\s+.*x", "adjacent quantifiers"),
    (r"a.*?.*b", "adjacent quantifiers"),
    # The parser takes the common start out of alternatives: (a|a)* is read as (a(?:|))*,
    # two empty alternatives (each of these took 39.5 s on a 28-character text).
    (r"(a|a)*$", "overlapping alternatives in a repeated group"),
    (r"(?:yes|yes)+$", "overlapping alternatives in a repeated group"),
    (r"(a|ab?)*$", "overlapping alternatives in a repeated group"),
    (r"(?:\d|\d)*x", "overlapping alternatives in a repeated group"),
    (r"(x(?:a|a)y)*", "overlapping alternatives in a repeated group"),
    # Capture groups around adjacent repeats: O(n**9) for nine of them.
    ("(a+)" * 9 + "b", "adjacent quantifiers"),
    (r"(a+)(a+)b", "adjacent quantifiers"),
    (r"(?:\d+)(\d*)x", "adjacent quantifiers"),
]
SAFE = [
    r"^(?P<order>[A-Z]{2}\d{3})$",
    r"\border\s*#?(?P<number>\d{4,8})\b",
    r"^(?P<order>CU\d{3,})$",
    r"(\d+,)*\d+",
    r"(\w+\s)+",
    r"(-?\d)+",
    r"([a-z]+-)*[a-z]+",
    r"(cat|car)+",
    r"(a|b)+",
    r"(\w|\d)+",  # the parser makes it one character set: [\w\d]+
    r"(\d{3})+",
    r".*x",
    r"^\s*(yes|y|yeah)\s*$",
    r"(?>a+)+",
    r"(ab|a)*c",  # read as (a(?:b|))*: every repetition starts with its own a
    r"(?:yes|y)+",
    r"(a++)+",
    r"\w+\s+\w+",
    r"^.*$",
    r"^echo (?P<said>.*)$",
    r"\b(?:stop|end)\b",
    r"(?:\+?65)?\d{8}",
    r"(\d+)\s*(?:x|\*)\s*(\d+)",
    r"(?i)(?P<w>\w+)@(?P<d>[\w.-]+)",
]


@pytest.mark.parametrize(("pattern", "kind"), UNSAFE)
def test_unsafe_patterns_are_refused(pattern: str, kind: str) -> None:
    with pytest.raises(UnsafeRegex) as exc:
        check_regex(pattern, re.IGNORECASE)
    assert str(exc.value).startswith(f"{kind}: ")


@pytest.mark.parametrize("pattern", SAFE)
def test_ordinary_patterns_pass(pattern: str) -> None:
    check_regex(pattern, re.IGNORECASE)


def test_case_folding_is_taken_into_account() -> None:
    check_regex(r"(a|A)+")  # one character set either way
    check_regex(r"[a-z]+[A-Z]+")
    with pytest.raises(UnsafeRegex):
        check_regex(r"[a-z]+[A-Z]+", re.IGNORECASE)


def test_dotall_decides_whether_dot_meets_newline() -> None:
    check_regex(r".+\n+")
    with pytest.raises(UnsafeRegex):
        check_regex(r"(?s).+\n+")


def test_a_refused_pattern_really_backtracks() -> None:
    # The reason for the rule: one 30-character text takes visible time with (a+)+$.
    started = time.perf_counter()
    re.search(r"(a+)+$", "a" * 22 + "!")
    slow = time.perf_counter() - started
    started = time.perf_counter()
    re.search(r"(?>a+)+$", "a" * 22 + "!")
    fast = time.perf_counter() - started
    assert slow > 20 * fast


@pytest.mark.parametrize("pattern", SAFE)
def test_accepted_patterns_stay_fast_on_hostile_text(pattern: str) -> None:
    compiled = re.compile(pattern, re.IGNORECASE)
    for text in ("a" * MAX_REGEX_TEXT, "1" * MAX_REGEX_TEXT, ("ab1 ," * 1000)[:MAX_REGEX_TEXT]):
        started = time.perf_counter()
        compiled.search(text + "!")
        # Generous for a loaded machine; a catastrophic pattern takes minutes here.
        assert time.perf_counter() - started < 5, pattern
