"""Bounded regex search: RE2 means what ``re`` means on the texts it is used for, and a
pattern that backtracks catastrophically costs at most the budget, on either path."""

from __future__ import annotations

import logging
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from responder.matching.bounded import REGEX_BUDGET, Regex, translate
from tests.matching.test_regex import SAFE

# The patterns that froze the server before the checker knew them: a checker can miss a
# pattern, so matching must stay bounded even for these.
PATHOLOGICAL = [r"(a|a)*$", r"(?:yes|yes)+$", r"(a|ab?)*$", r"(?:\d|\d)*x", "(a+)" * 9 + "b"]
HOSTILE = {
    r"(a|a)*$": "a",
    r"(?:yes|yes)+$": "yes",
    r"(a|ab?)*$": "a",
    r"(?:\d|\d)*x": "1",
    "(a+)" * 9 + "b": "a",
}
MORE = [
    r"^(?P<a>\w+)\s+(?P<b>\d+)?$",
    r"(?P<word>[^\W\d_]+)",
    r"\bno\b|\bstop\b",
    r"(?s)a.b",
    r"a.b",
    r"(?P<x>x*?)y",
    r"[^a-c]{2,3}",
    r"\Aab\Z",
    r"(?-i:Ab)c",
    r"\W+\B",
    r"K",
    "\u017f",  # the long s folds with s and S in both engines
]
ALPHABET = "abcxyAB 12_-\n\t.!sSkKéÉßİ\u0131٣\u212a\u017f\u00a0\u2028中"


def hostile(pattern: str, length: int) -> str:
    unit = HOSTILE[pattern]
    return (unit * length)[:length] + "!"


@pytest.mark.parametrize("pattern", SAFE + MORE)
@settings(max_examples=150, deadline=None)
@given(text=st.text(ALPHABET, max_size=24))
def test_re2_answers_what_re_answers(pattern: str, text: str) -> None:
    regex = Regex.compile(pattern, re.IGNORECASE)
    found = re.search(pattern, text, re.IGNORECASE)
    expected = None if found is None else found.groupdict()
    got = regex.groups(text)
    assert (None if got is None else dict(got)) == expected


@pytest.mark.parametrize("pattern", PATHOLOGICAL)
def test_a_pathological_pattern_has_a_linear_translation(pattern: str) -> None:
    regex = Regex.compile(pattern, re.IGNORECASE)
    assert regex.linear
    for text in ("aaa!", "ééé!", "aaa!\n", "yes\n"):
        assert regex.linear_for(text)


def test_constructs_without_an_re2_equivalent_fall_back_to_re() -> None:
    for pattern in [r"(?>a+)+", r"a++", r"(?=a)a", r"(a)\1", r"(?m)^a", "a{2000}"]:
        assert not Regex.compile(pattern).linear, pattern


def test_texts_re2_cannot_answer_for_go_to_re() -> None:
    boundary = Regex.compile(r"\bno\b")
    assert boundary.linear_for("no way")
    assert not boundary.linear_for("no é")  # RE2's \b knows ASCII words only
    inside = Regex.compile(r"(?P<all>.*$)")
    assert inside.linear_for("abc")
    assert not inside.linear_for("abc\n")  # the group would take the newline
    assert Regex.compile(r"^abc$").linear_for("abc\n")
    assert translate(r"^abc$").pattern.endswith(r"(?:\n?\z)")


@pytest.mark.parametrize("pattern", PATHOLOGICAL)
def test_pathological_patterns_match_fast_on_any_text(pattern: str, record_figure) -> None:
    regex = Regex.compile(pattern, re.IGNORECASE)
    for length in (28, 30, 2_000):
        for prefix, suffix in (("", ""), ("é", ""), ("", "\n")):
            text = prefix + hostile(pattern, length) + suffix
            started = time.perf_counter()
            regex.groups(text)
            took = time.perf_counter() - started
            if length in (28, 30) and not suffix:
                record_figure(
                    f"regex {pattern}: {len(text)}-char {'non-ASCII' if prefix else 'ASCII'} "
                    f"text in {took * 1e6:.0f} us (RE2)"
                )
            assert took < 0.01
    assert regex.timeouts == 0


# Patterns RE2 has no equivalent of, or texts it cannot answer for: re, under the budget.
UNTRANSLATABLE = [(r"(a|a)*(?!b)$", ""), (r"\b(a|a)*$", "é "), (r"(?P<x>(a|a)*$)", "")]


@pytest.mark.parametrize(("pattern", "prefix"), UNTRANSLATABLE)
def test_other_searches_are_cut_at_the_budget(
    pattern: str, prefix: str, caplog, record_figure
) -> None:
    caplog.set_level(logging.WARNING, "responder.matching")
    regex = Regex.compile(pattern, re.IGNORECASE)
    suffix = "\n" if "?P<x>" in pattern else ""
    for length in (28, 30, 90):
        text = prefix + "a" * length + "!" + suffix
        assert not regex.linear_for(text)
        started = time.perf_counter()
        found = regex.groups(text)
        took = time.perf_counter() - started
        record_figure(f"regex {pattern}: {len(text)}-char text in {took * 1000:.1f} ms (re)")
        assert took < REGEX_BUDGET + 0.5
    # The 90-character text takes minutes unbounded: cut at the budget, no match, one warning.
    assert found is None
    assert took >= REGEX_BUDGET
    assert regex.timeouts >= 1
    assert "ran out of its 100 ms budget" in caplog.text


def test_a_timer_set_by_someone_else_survives_a_search() -> None:
    import signal

    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        Regex.compile(r"(?>a+)b").groups("aaa")
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < remaining <= 0.5
        time.sleep(0.6)
        assert fired == [signal.SIGALRM]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
