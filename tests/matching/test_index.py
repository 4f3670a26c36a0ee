"""The rule index returns exactly what a scan of every rule of the kind returns."""

from __future__ import annotations

import json
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from responder.events import Event
from responder.matching import index
from responder.matching.conditions import Scope
from responder.matching.index import _literal, _prefix
from responder.rules.loader import load_rules
from responder.rules.model import RuleSet
from responder.runtime.engine import template_context

NOW = datetime(2024, 6, 5, 3, 0, tzinfo=UTC)
KINDS = ["sms.received", "call.missed", "ivr.gather"]
CHANNELS = ["textit", "other", "Other", "hoiio"]
# Words and regexes chosen to meet each other: case, the dotless i and long s that match
# i and s case-insensitively, the Kelvin sign, anchors with and without (?m), groups,
# repeats and alternatives.
WORDS = ["hi", "Hi", "HELLO", "order", "Order12", "stop"]
WORDS += ["\u017ftop", "kiss", "K\u0131SS", "\u212aelvin"]
WORDS += ["parcel", "box", "menu", "1", "12", "size3", "big", "Small", "a-b", "ab", "abbbc"]
WORDS += ["\u017fTOP", "Hello", "hellllo", "stOp", "xab", "BOX", "\u0130x", "Kelv\u0131n"]
REGEXES = [
    "^order ?(?P<n>[0-9]+)",
    "(?m)^menu",
    "\\Ahel+o",
    "parcel",
    "ab+c",
    "(?:big|small) box",
    "kelvin",
    "STOP",
    "(?-i:Stop)",
    "^(?:hi)",
    "hi$",
    "size(?P<s>[0-9])",
    "kiss",
    "order12 parcel",
    "(big)+ box",
    "a-b",
    "x?ab",
]


def condition() -> st.SearchStrategy[dict[str, Any]]:
    text = st.one_of(
        st.fixed_dictionaries({"keyword": st.lists(st.sampled_from(["hi", "order", "stop"]))}),
        st.fixed_dictionaries({"only": st.lists(st.sampled_from(["hi", "menu", "big box"]))}),
        st.fixed_dictionaries({"any_word": st.lists(st.sampled_from(["box", "kiss", "1"]))}),
        st.fixed_dictionaries({"regex": st.sampled_from(REGEXES)}),
        st.fixed_dictionaries({"regex": st.sampled_from(REGEXES)}),
        st.fixed_dictionaries({"keyword": st.just(["order"]), "regex": st.sampled_from(REGEXES)}),
        st.fixed_dictionaries({"empty": st.booleans()}),
    )
    return st.one_of(
        st.fixed_dictionaries({"text": text}),
        st.fixed_dictionaries({"digits": st.sampled_from(["1", "2", ["1", "12"]])}),
        st.fixed_dictionaries({"channel": st.sampled_from([["textit"], ["other", "hoiio"]])}),
        st.fixed_dictionaries({"expr": st.just("text|length > 8")}),
        st.fixed_dictionaries({"contact": st.just("+65*")}),
    )


def when() -> st.SearchStrategy[dict[str, Any]]:
    simple = st.lists(condition(), max_size=3).map(
        lambda parts: {k: v for part in parts for k, v in part.items()}
    )
    nested = st.one_of(
        st.builds(lambda w, inner: {**w, "not": inner}, simple, simple.filter(bool)),
        st.builds(lambda w, alts: {**w, "any": alts}, simple, st.lists(simple, min_size=1)),
    )
    return st.one_of(simple, simple, nested)


RULE = st.fixed_dictionaries(
    {
        "on": st.lists(st.sampled_from(KINDS[:2]), min_size=1, max_size=2, unique=True),
        "when": when(),
        "priority": st.sampled_from([-1, 0, 0, 1]),
        "continue": st.booleans(),
    }
)
TEXT = st.lists(
    st.one_of(
        st.sampled_from(WORDS),
        st.sampled_from(WORDS),
        st.text(alphabet="abkis \u0131\u017f\u0130-!", max_size=4),
    ),
    max_size=5,
).flatmap(lambda ws: st.sampled_from([" ", "  ", "\n", ", "]).map(lambda sep: sep.join(ws)))
EVENT = st.builds(
    lambda kind, channel, text, digits, contact: Event(
        "textit", channel, kind, contact=contact, text=text, digits=digits
    ),
    st.sampled_from(KINDS[:2]),
    st.sampled_from(CHANNELS),
    st.one_of(st.none(), TEXT),
    st.sampled_from([None, "", "1", " 12 ", "2"]),
    st.sampled_from([None, "+6591234567", "+14155550100"]),
)


def load(rules: list[dict[str, Any]]) -> RuleSet:
    lines = ["rules:"]
    for n, rule in enumerate(rules):
        body = {"name": f"r{n}", **rule, "sms": {"text": "x"}}
        if not body["when"]:
            del body["when"]
        lines.append(f"  - {json.dumps(body)}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.yaml"
        path.write_text("\n".join(lines) + "\n")
        return load_rules([path])


def matching(rules: tuple[Any, ...], event: Event) -> list[str]:
    scope = Scope(now=NOW, context=lambda: template_context(event, NOW))
    return [r.name for r in rules if r.when.test(event, scope) is not None]


def _regex_rule(pattern: str) -> dict[str, Any]:
    return {"on": ["sms.received"], "when": {"text": {"regex": pattern}}, "continue": True}


def _sms(text: str) -> Event:
    return Event("textit", "textit", "sms.received", text=text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(RULE, min_size=1, max_size=12), st.lists(EVENT, min_size=1, max_size=10))
@example([_regex_rule("STOP"), _regex_rule("kiss")], [_sms("\u017ftop"), _sms("KI\u017f\u017f")])
@example([_regex_rule("(?m)^menu"), _regex_rule("^hi")], [_sms("x\nmenu"), _sms("x\nhi")])
@example([_regex_rule("kelvin")], [_sms("\u212aelvin")])
@example([_regex_rule("\\Ahel+o"), _regex_rule("parcel")], [_sms("HELLO"), _sms("a PARCEL")])
@pytest.mark.parametrize("scan_keys", [index.SCAN_KEYS, 0])  # inner literals: regex, lookups
def test_index_matches_like_a_scan_of_every_rule(
    scan_keys: int, rules: list[dict[str, Any]], events: list[Event]
) -> None:
    with patch.object(index, "SCAN_KEYS", scan_keys):
        ruleset = load(rules)
    for event in events:
        every = ruleset.candidates(event.kind)
        indexed = ruleset.candidates_for(event)
        assert matching(indexed, event) == matching(every, event)
        positions = [every.index(r) for r in indexed]
        assert positions == sorted(positions)  # a subsequence, in evaluation order


def generated(count: int) -> RuleSet:
    rules: list[dict[str, Any]] = []
    for n in range(count):
        rules.append({"on": "sms.received", "when": {"text": {"keyword": [f"word{n}"]}}})
        rules.append({"on": "sms.received", "when": {"text": {"regex": f"^order{n} "}}})
        rules.append({"on": "sms.received", "when": {"text": {"regex": f"(a|b) parcel{n}x"}}})
        rules.append(
            {"on": "sms.received", "when": {"channel": f"ch{n}", "text": {"only": ["help"]}}}
        )
    rules.append({"on": "sms.received", "when": {"expr": "text|length > 1000"}})
    return load(rules)


def test_only_rules_that_could_match_are_tested() -> None:
    ruleset = generated(250)
    sms = Event("textit", "ch7", "sms.received", text="Word42 please")
    assert [r.name for r in ruleset.candidates_for(sms)] == ["r168", "r1000"]
    order = Event("textit", "textit", "sms.received", text="ORDER17 12345")
    assert [r.name for r in ruleset.candidates_for(order)] == ["r69", "r1000"]
    parcel = Event("textit", "textit", "sms.received", text="a PARCEL99x here")
    assert [r.name for r in ruleset.candidates_for(parcel)] == ["r398", "r1000"]
    help_ = Event("textit", "CH7", "sms.received", text="help!")
    assert [r.name for r in ruleset.candidates_for(help_)] == ["r31", "r1000"]
    assert len(ruleset.candidates(sms.kind)) == 1001


def test_literals_every_match_contains() -> None:
    def compiled(pattern: str) -> re.Pattern[str]:
        return re.compile(pattern, re.IGNORECASE)

    assert _prefix(compiled("^Order(?P<n>[0-9]+)")) == "order"
    assert _prefix(compiled("\\AHello")) == "hello"
    assert _prefix(compiled("(?m)^hello")) == ""  # ^ after any newline
    assert _prefix(compiled("^kiss")) == "k"  # s also matches the long s
    assert _literal(compiled("(?:big|small) parcel(s)?")) == " parcel"
    assert _literal(compiled("(ab)+cd?e")) == "ab"
    assert _literal(compiled("x*yz")) == "yz"


def test_many_distinct_inner_literals_are_looked_up_place_by_place() -> None:
    words = [f"{chr(97 + n % 26)}{chr(97 + n // 26 % 26)}q{n}" for n in range(index.SCAN_KEYS * 2)]
    ruleset = load([_regex_rule(f"(a|b) {word}") for word in words])
    kind = ruleset.index["sms.received"]
    assert kind.anywhere.scan is None  # more distinct starts than one regex handles well
    for n in (0, 33, len(words) - 1):
        event = _sms(f"hello b {words[n]} there")
        assert [r.name for r in ruleset.candidates_for(event)] == [f"r{n}"]
