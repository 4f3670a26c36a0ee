"""Every condition of the `when:` language, compiled by the loader and tested on Events."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from responder.errors import RulesError, TemplateError
from responder.events import Event, Flow, FlowValue
from responder.matching.conditions import (
    AllOf,
    Captures,
    Scope,
    TextTest,
    parse_number,
    phrase_pattern,
    words,
)
from responder.matching.regex import MAX_REGEX_TEXT
from responder.rules.loader import load_rules
from responder.runtime.engine import template_context

# A Wednesday: 11:00 in Singapore.
NOW = datetime(2024, 6, 5, 3, 0, tzinfo=UTC)


def compile_when(tmp_path: Path, when: str, on: str = "'*'") -> AllOf:
    """The compiled `when:` of a one-rule file; ``when`` is flow-style YAML."""
    path = tmp_path / "rules.yaml"
    path.write_text(f"rules:\n  - name: r\n    on: {on}\n    when: {when}\n    sms: {{text: x}}\n")
    [rule] = load_rules([path]).rules
    return rule.when


def when_problems(tmp_path: Path, when: str) -> list[str]:
    path = tmp_path / "rules.yaml"
    path.write_text(f"rules:\n  - name: r\n    on: '*'\n    when: {when}\n    sms: {{text: x}}\n")
    with pytest.raises(RulesError) as exc:
        load_rules([path])
    return [p.message for p in exc.value.problems]


def make_event(**fields: Any) -> Event:
    base: dict[str, Any] = {
        "provider": "textit",
        "channel": "main",
        "kind": "sms.received",
        "contact": "+6591234567",
        "channel_number": "+6560000000",
    }
    base.update(fields)
    return Event(**base)


def run(condition: AllOf, event: Event, now: datetime = NOW) -> Captures | None:
    cache: dict[str, Mapping[str, Any]] = {}

    def context() -> Mapping[str, Any]:
        if "ctx" not in cache:
            cache["ctx"] = template_context(event, now)
        return cache["ctx"]

    return condition.test(event, Scope(now=now, context=context))


def matches(condition: AllOf, event: Event, now: datetime = NOW) -> bool:
    return run(condition, event, now) is not None


def texts(condition: AllOf, *values: str | None) -> list[bool]:
    return [matches(condition, make_event(text=v)) for v in values]


# --------------------------------------------------------------------------- helpers


def test_words_strip_edge_punctuation_and_fold_case() -> None:
    assert words("  HOURS?  Open!! ¿Qué? don't ... ") == ("hours", "open", "qué", "don't")
    assert words("") == ()
    assert words("STRASSE Straße") == ("strasse", "strasse")


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("12", 12.0),
        (" -3.5 ", -3.5),
        ("4,5", 4.5),
        ("+7", 7.0),
        (".5", 0.5),
        ("-,25", -0.25),
        ("12.", 12.0),
        ("1e3", None),
        ("12 apples", None),
        ("", None),
        ("-", None),
        ("1.2.3", None),
    ],
)
def test_parse_number(text: str, number: float | None) -> None:
    assert parse_number(text) == number


def test_phrase_pattern_is_whole_words_any_whitespace() -> None:
    pattern = phrase_pattern("opening  hours")
    assert pattern.search("your OPENING\thours?")
    assert not pattern.search("reopening hours")
    assert not pattern.search("opening hoursx")


def test_text_test_defaults_to_match_everything() -> None:
    assert TextTest().test(None) == {}
    assert TextTest().test("anything") == {}


# --------------------------------------------------------------------------- text


def test_keyword_is_the_first_word_case_insensitive(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{text: {keyword: [hours, open]}}")
    assert texts(when, "HOURS?", "hours please", "  Open!", "open.") == [True] * 4
    assert texts(when, "what are your hours", "hoursx", "", None, "?hours?x") == [False] * 5


def test_keyword_single_string_and_punctuated_keyword(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{text: {keyword: 'Stop!'}}")
    assert texts(when, "stop", "STOP.", "stop now") == [True, True, True]
    assert texts(when, "stopp", "don't stop") == [False, False]


def test_keyword_of_several_words_is_a_problem(tmp_path: Path) -> None:
    assert when_problems(tmp_path, "{text: {keyword: [help, 'opening hours']}}") == [
        "rules[0].when.text.keyword: 'opening hours' is not a single word"
        " (use phrase: for several words)"
    ]
    assert when_problems(tmp_path, "{text: {any_word: ['?!']}}") == [
        "rules[0].when.text.any_word: '?!' is not a single word (use phrase: for several words)"
    ]


def test_only_is_the_whole_text(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{text: {only: [yes, 'Yes Please']}}")
    assert texts(when, "Yes!", " yes ", "yes, please.", "YES   PLEASE") == [True] * 4
    assert texts(when, "yes no", "yess", "please yes", "") == [False] * 4


def test_any_word(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{text: {any_word: [urgent, ASAP]}}")
    assert texts(when, "please call asap!", "URGENT", "this is (urgent)") == [True] * 3
    assert texts(when, "asapx", "not urgently", None) == [False] * 3


def test_phrase_whole_words(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{text: {phrase: ['opening hours', 'call me']}}")
    assert (
        texts(when, "What are your Opening  Hours?", "opening\nhours", "pls call me!") == [True] * 3
    )
    assert (
        texts(when, "reopening hours", "opening hoursx", "call    mee", "hours opening")
        == [False] * 4
    )


def test_regex_named_captures(tmp_path: Path) -> None:
    when = compile_when(
        tmp_path, r"""{text: {regex: '^order\s+(?P<order>\d+)(?:\s+(?P<note>\w+))?$'}}"""
    )
    assert run(when, make_event(text="ORDER 123")) == {"order": "123"}  # unmatched group left out
    assert run(when, make_event(text="order 12 rush")) == {"order": "12", "note": "rush"}
    assert run(when, make_event(text="my order 12")) is None
    assert run(when, make_event(text=None)) is None


def test_regex_searches_anywhere_and_ignores_case(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{text: {regex: 'ab+c'}}")
    assert run(when, make_event(text="xxABBCxx")) == {}
    assert run(when, make_event(text="ac")) is None


def test_regex_searches_only_the_start_of_a_long_text(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{text: {regex: 'x$'}}")
    assert texts(when, "a" * (MAX_REGEX_TEXT - 1) + "x", "a" * MAX_REGEX_TEXT + "x") == [
        True,
        False,
    ]
    captures = run(
        compile_when(tmp_path, "{text: {regex: '(?P<n>\\d+)$'}}"),
        make_event(text="1" * (MAX_REGEX_TEXT + 500)),
    )
    assert captures == {"n": "1" * MAX_REGEX_TEXT}


def test_unsafe_regex_is_a_check_error(tmp_path: Path) -> None:
    [problem] = when_problems(tmp_path, "{text: {regex: '(a+)+$'}}")
    assert problem.startswith("rules[0].when.text.regex: regex '(a+)+$' refused: nested quant")


def test_regex_can_be_made_case_sensitive(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{text: {regex: '(?-i:ABC)'}}")
    assert texts(when, "ABC", "abc") == [True, False]


@pytest.mark.parametrize(
    ("bounds", "yes", "no"),
    [
        ("{min: 1, max: 5}", ["1", "4,5", "5", " 3 ", "4.99"], ["0", "5.01", "three", "1e2", ""]),
        ("{min: -10, max: -1}", ["-3", "-10", "-1,0", "-7.5"], ["-0,5", "-11", "3", "- 3"]),
        ("{min: 18}", ["18", "99999", "18,0"], ["17.99", "-18"]),
        ("{max: 0}", ["0", "-5", "-0.0"], ["0.01", "1"]),
        ("{min: 2.5, max: 2.5}", ["2.5", "2,50"], ["2.4", "2.6"]),
    ],
)
def test_number_ranges(tmp_path: Path, bounds: str, yes: list[str], no: list[str]) -> None:
    when = compile_when(tmp_path, f"{{text: {{number: {bounds}}}}}")
    assert texts(when, *yes) == [True] * len(yes)
    assert texts(when, *no, None) == [False] * (len(no) + 1)


@pytest.mark.parametrize(
    ("number", "fragment"),
    [
        ("{}", "rules[0].when.text.number: needs at least one of: min, max"),
        ("{min: low}", "rules[0].when.text.number.min: expected a number, got a string"),
        ("{min: 5, max: 1}", "rules[0].when.text.number: min 5 is greater than max 1"),
        ("{min: 1, mx: 2}", "unknown key 'mx' (did you mean 'max'?)"),
    ],
)
def test_bad_number_tests(tmp_path: Path, number: str, fragment: str) -> None:
    [message] = when_problems(tmp_path, f"{{text: {{number: {number}}}}}")
    assert fragment in message


def test_empty(tmp_path: Path) -> None:
    empty = compile_when(tmp_path, "{text: {empty: true}}")
    assert texts(empty, "", "   ", None, "x") == [True, True, True, False]
    not_empty = compile_when(tmp_path, "{text: {empty: false}}")
    assert texts(not_empty, "", "   ", None, "x") == [False, False, False, True]


def test_text_tests_all_must_pass(tmp_path: Path) -> None:
    when = compile_when(
        tmp_path, r"{text: {keyword: order, any_word: [rush], regex: '(?P<n>\d+)'}}"
    )
    assert run(when, make_event(text="order 7 rush")) == {"n": "7"}
    assert run(when, make_event(text="order 7")) is None
    assert run(when, make_event(text="rush order 7")) is None


def test_every_never_matching_text_test_is_reported(tmp_path: Path) -> None:
    messages = when_problems(
        tmp_path, "{text: {number: {min: 3, max: 2}, keyword: ['a b'], any_word: ['']}}"
    )
    assert [m.split(":")[0] for m in messages] == [  # same line: sorted by message
        "rules[0].when.text.any_word",
        "rules[0].when.text.keyword",
        "rules[0].when.text.number",
    ]


def test_empty_text_test_is_a_problem(tmp_path: Path) -> None:
    [message] = when_problems(tmp_path, "{text: {}}")
    assert message.startswith("rules[0].when.text: needs at least one of: keyword, only")


# --------------------------------------------------------------------------- digits


def digits(condition: AllOf, *values: str | None) -> list[bool]:
    return [matches(condition, make_event(kind="ivr.gather", digits=v)) for v in values]


@pytest.mark.parametrize("shorthand", ["1", "'1'", "[1]", "['1']"])
def test_digits_shorthand_single(tmp_path: Path, shorthand: str) -> None:
    when = compile_when(tmp_path, f"{{digits: {shorthand}}}")
    assert digits(when, "1", " 1 ") == [True, True]
    assert digits(when, "11", "2", "", None) == [False] * 4


def test_digits_shorthand_list_and_symbols(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{digits: [1, 2, '#', '*9']}")
    assert digits(when, "1", "2", "#", "*9") == [True] * 4
    assert digits(when, "3", "12", "*") == [False] * 3


@pytest.mark.parametrize("shorthand", ["007", "[007]", "'007'"])
def test_digits_keep_leading_zeros(tmp_path: Path, shorthand: str) -> None:
    # YAML 1.1 would read 007 as the octal int 7 (and 010 as 8); the loader keeps the keys.
    when = compile_when(tmp_path, f"{{digits: {shorthand}}}")
    assert digits(when, "007") == [True]
    assert digits(when, "7", "07") == [False, False]


def test_digits_leading_zero_octal_lookalike(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{digits: [010, 0]}")
    assert digits(when, "010", "0") == [True, True]
    assert digits(when, "8", "10") == [False, False]


def test_digits_with_a_text_test(tmp_path: Path) -> None:
    when = compile_when(tmp_path, r"{digits: {number: {min: 1, max: 3}}}")
    assert digits(when, "1", "3", "2") == [True] * 3
    assert digits(when, "4", "0", "#") == [False] * 3
    captured = compile_when(tmp_path, r"{digits: {regex: '^(?P<ext>\d{3})#$'}}")
    assert run(captured, make_event(kind="ivr.gather", digits="123#")) == {"ext": "123"}


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("true", "rules[0].when.digits[0]: expected a string, got a boolean"),
        ("[1, [2]]", "rules[0].when.digits[1]: expected a string, got a list"),
        ("{keyword: [x], bad: 1}", "rules[0].when.digits: unknown key 'bad'"),
    ],
)
def test_bad_digits(tmp_path: Path, value: str, fragment: str) -> None:
    [message] = when_problems(tmp_path, f"{{digits: {value}}}")
    assert fragment in message


# --------------------------------------------------------------------------- numbers


def contacts(condition: AllOf, *values: str | None) -> list[bool]:
    return [matches(condition, make_event(contact=v)) for v in values]


def test_contact_single_glob(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{contact: '+65*'}")
    assert contacts(when, "+6591234567", "+65") == [True, True]
    assert contacts(when, "+6012", "6591234567", "", None) == [False] * 4


def test_contact_glob_list_and_question_marks(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{contact: ['+60*', 'tel:+1206???????']}")
    assert contacts(when, "+60123", "tel:+12065551234") == [True, True]
    assert contacts(when, "tel:+120655512345", "tel:+1206555123", "+65") == [False] * 3


def test_contact_in_and_not_in(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{contact: {in: ['+65*'], not_in: ['+6599*', '+6588888888']}}")
    assert contacts(when, "+6591234567", "+6588888889") == [True, True]
    assert contacts(when, "+6599000000", "+6588888888", "+60123", None) == [False] * 4


def test_contact_not_in_only(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{contact: {not_in: ['+1*']}}")
    assert contacts(when, "+65", None) == [True, True]
    assert contacts(when, "+1206") == [False]


def test_contact_globs_are_case_sensitive(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{contact: 'tel:*'}")
    assert contacts(when, "tel:+65", "TEL:+65") == [True, False]


def test_contact_mapping_needs_a_key(tmp_path: Path) -> None:
    [message] = when_problems(tmp_path, "{contact: {}}")
    assert message == "rules[0].when.contact: needs at least one of: in, not_in"
    [message] = when_problems(tmp_path, "{contact: {inn: ['+65*']}}")
    assert message == "rules[0].when.contact: unknown key 'inn' (did you mean 'in'?)"


def test_channel_number(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{channel_number: {in: ['+6560*'], not_in: ['+65609*']}}")
    assert matches(when, make_event(channel_number="+6560000000"))
    assert not matches(when, make_event(channel_number="+6560900000"))
    assert not matches(when, make_event(channel_number=None))
    # the contact is not the channel number
    assert not matches(when, make_event(contact="+6560000000", channel_number="+6561"))


# --------------------------------------------------------------------------- one-of fields


def test_channel_case_insensitive(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{channel: [Main, backup]}")
    assert matches(when, make_event(channel="main"))
    assert matches(when, make_event(channel="BACKUP"))
    assert not matches(when, make_event(channel="other"))


def test_provider(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{provider: hoiio}")
    assert matches(when, make_event(provider="hoiio"))
    assert not matches(when, make_event(provider="textit"))


def test_status(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{status: [answered, Ringing]}")
    assert matches(when, make_event(status="ANSWERED"))
    assert matches(when, make_event(status="ringing"))
    assert not matches(when, make_event(status="busy"))
    assert not matches(when, make_event(status=None))


# --------------------------------------------------------------------------- flow


FLOW = Flow(id="42", uuid="f0e1-abcd", name="Water Survey", step="ask-source", run="run-1")


@pytest.mark.parametrize(
    ("flow", "expected"),
    [
        ("{id: 42}", True),
        ("{id: [41, '42']}", True),
        ("{id: 43}", False),
        ("{uuid: F0E1-ABCD}", True),
        ("{uuid: [other]}", False),
        ("{name: water survey}", True),
        ("{name: 'Water Survey', step: ask-source}", True),
        ("{name: 'Water Survey', step: ask-size}", False),
        ("{step: [ask-size, ask-source]}", True),
        ("{run: run-1}", True),
    ],
)
def test_flow(tmp_path: Path, flow: str, expected: bool) -> None:
    when = compile_when(tmp_path, f"{{flow: {flow}}}", on="flow.step")
    assert matches(when, make_event(kind="flow.step", flow=FLOW)) is expected


def test_flow_condition_without_a_flow(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{flow: {name: x}}")
    assert not matches(when, make_event(flow=None))
    assert not matches(when, make_event(flow=Flow(id="1")))


def test_flow_problems(tmp_path: Path) -> None:
    [message] = when_problems(tmp_path, "{flow: {}}")
    assert message.startswith("rules[0].when.flow: needs at least one of: id, uuid, name")
    [message] = when_problems(tmp_path, "{flow: {nmae: x}}")
    assert message == "rules[0].when.flow: unknown key 'nmae' (did you mean 'name'?)"


# --------------------------------------------------------------------------- values


VALUES = MappingProxyType(
    {
        "water_source": FlowValue("Water Source", "Well", "well", "From the WELL"),
        "household_size": FlowValue("Household Size", "Numeric", "4", "four people"),
    }
)


def flow_event(**fields: Any) -> Event:
    return make_event(kind="flow.step", flow=FLOW, values=VALUES, **fields)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ("{Water Source: {category: [well, river]}}", True),
        ("{water_source: {category: [WELL]}}", True),
        ("{'  Water-Source ': {category: Well}}", True),
        ("{Water Source: {category: [River]}}", False),
        ("{Household Size: {value: {number: {min: 1, max: 5}}}}", True),
        ("{Household Size: {value: {number: {min: 5}}}}", False),
        ("{Household Size: {text: {keyword: four}}}", True),
        ("{Household Size: {category: numeric, value: {only: ['4']}}}", True),
        ("{Household Size: {category: numeric, value: {only: ['5']}}}", False),
        ("{Water Source: {category: well}, Household Size: {value: {number: {max: 3}}}}", False),
        ("{Water Source: {category: well}, Household Size: {value: {number: {max: 4}}}}", True),
        ("{Missing Label: {category: [anything]}}", False),
    ],
)
def test_values_by_label(tmp_path: Path, values: str, expected: bool) -> None:
    when = compile_when(tmp_path, f"{{values: {values}}}")
    assert matches(when, flow_event()) is expected


def test_values_captures(tmp_path: Path) -> None:
    when = compile_when(
        tmp_path,
        r"{values: {Water Source: {text: {regex: 'from the (?P<where>\w+)'}},"
        r" Household Size: {value: {regex: '(?P<size>\d+)'}}}}",
    )
    assert run(when, flow_event()) == {"where": "WELL", "size": "4"}


def test_values_without_values(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{values: {Water Source: {category: [well]}}}")
    assert not matches(when, make_event())


def test_values_problems(tmp_path: Path) -> None:
    [message] = when_problems(tmp_path, "{values: {Water Source: {}}}")
    assert message.startswith("rules[0].when.values.Water Source: needs at least one of")
    [message] = when_problems(tmp_path, "{values: [a]}")
    assert message == "rules[0].when.values: expected a mapping of label: tests"
    [message] = when_problems(tmp_path, "{values: {x: {categroy: [a]}}}")
    assert message == ("rules[0].when.values.x: unknown key 'categroy' (did you mean 'category'?)")


# --------------------------------------------------------------------------- time


def at(text: str) -> datetime:
    """An aware datetime from ISO text with offset."""
    return datetime.fromisoformat(text)


def times(condition: AllOf, *moments: str) -> list[bool]:
    return [matches(condition, make_event(), at(m)) for m in moments]


def test_hours_window_in_a_timezone(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{time: {timezone: Asia/Singapore, hours: '09:00-18:00'}}")
    # start inclusive, end exclusive, judged in Singapore time whatever the offset given
    assert times(when, "2024-06-05T09:00+08:00", "2024-06-05T01:00+00:00") == [True, True]
    assert times(when, "2024-06-05T17:59:59+08:00", "2024-06-04T23:00-04:00") == [True, True]
    assert times(when, "2024-06-05T18:00+08:00", "2024-06-05T08:59+08:00") == [False, False]
    assert times(when, "2024-06-05T09:59+00:00") == [True]  # 17:59 in Singapore
    assert times(when, "2024-06-05T10:00+00:00") == [False]  # 18:00 in Singapore


def test_hours_window_wrapping_past_midnight(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{time: {timezone: Asia/Singapore, hours: '22:00-06:00'}}")
    inside = ["22:00", "23:30", "00:00", "02:00", "05:59"]
    outside = ["06:00", "12:00", "21:59"]
    assert times(when, *(f"2024-06-05T{t}+08:00" for t in inside)) == [True] * 5
    assert times(when, *(f"2024-06-05T{t}+08:00" for t in outside)) == [False] * 3


def test_hours_until_midnight(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{time: {timezone: UTC, hours: '18:00-24:00'}}")
    assert times(when, "2024-06-05T23:59:59+00:00", "2024-06-05T18:00+00:00") == [True, True]
    assert times(when, "2024-06-05T00:00+00:00", "2024-06-05T17:59+00:00") == [False, False]


def test_hours_follow_daylight_saving(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{time: {timezone: America/New_York, hours: '09:00-17:00'}}")
    # 13:30 UTC is 08:30 EST in January and 09:30 EDT in July
    assert times(when, "2024-01-10T13:30+00:00", "2024-07-10T13:30+00:00") == [False, True]


@pytest.mark.parametrize(
    ("days", "yes", "no"),
    [
        ("[fri-mon]", ["fri", "sat", "sun", "mon"], ["tue", "wed", "thu"]),
        ("mon-fri", ["mon", "tue", "wed", "thu", "fri"], ["sat", "sun"]),
        ("[mon, wed-thu]", ["mon", "wed", "thu"], ["tue", "fri", "sat", "sun"]),
        ("'sat, sun'", ["sat", "sun"], ["mon", "fri"]),
        ("[SUN]", ["sun"], ["sat", "mon"]),
        ("[sun-sun]", ["sun"], ["mon"]),
    ],
)
def test_days(tmp_path: Path, days: str, yes: list[str], no: list[str]) -> None:
    when = compile_when(tmp_path, f"{{time: {{timezone: Asia/Singapore, days: {days}}}}}")
    # 2024-06-03 is a Monday; noon Singapore time
    day_of = {
        d: f"2024-06-{3 + i:02d}T12:00+08:00"
        for i, d in enumerate(["mon", "tue", "wed", "thu", "fri", "sat", "sun"])
    }
    assert times(when, *(day_of[d] for d in yes)) == [True] * len(yes)
    assert times(when, *(day_of[d] for d in no)) == [False] * len(no)


def test_days_are_local_days(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{time: {timezone: Asia/Singapore, days: [fri]}}")
    # Thursday 20:00 UTC is already Friday 04:00 in Singapore
    assert times(when, "2024-06-06T20:00+00:00", "2024-06-06T15:00+00:00") == [True, False]


def test_days_and_hours_together(tmp_path: Path) -> None:
    when = compile_when(
        tmp_path, "{time: {timezone: Asia/Singapore, days: mon-fri, hours: '09:00-18:00'}}"
    )
    assert times(when, "2024-06-07T10:00+08:00") == [True]  # Friday
    assert times(when, "2024-06-08T10:00+08:00") == [False]  # Saturday
    assert times(when, "2024-06-07T19:00+08:00") == [False]  # Friday evening


def test_dates(tmp_path: Path) -> None:
    when = compile_when(
        tmp_path, "{time: {timezone: Asia/Singapore, dates: [2024-12-25, '2025-01-01']}}"
    )
    assert times(when, "2024-12-24T17:00+00:00", "2025-01-01T23:00+08:00") == [True, True]
    assert times(when, "2024-12-25T17:00+00:00", "2024-12-24T12:00+08:00") == [False, False]


@pytest.mark.parametrize(
    ("time", "fragment"),
    [
        ("{timezone: Asia/Nowhere, hours: '09:00-10:00'}", "time.timezone: unknown timezone"),
        ("{timezone: '../etc/passwd', hours: '09:00-10:00'}", "time.timezone: unknown timezone"),
        ("{hours: '09:00-10:00'}", "time: missing required key 'timezone'"),
        ("{timezone: UTC}", "time: needs at least one of: timezone, days, hours, dates"),
        ("{timezone: UTC, hours: '24:30-01:00'}", "'24:30-01:00' is not a window"),
        ("{timezone: UTC, hours: '10:00-24:01'}", "'10:00-24:01' is not a window"),
        ("{timezone: UTC, hours: '9-17'}", "'9-17' is not a window"),
        ("{timezone: UTC, hours: '10:00-10:00'}", "'10:00-10:00' is not a window"),
        ("{timezone: UTC, hours: '10:60-11:00'}", "'10:60-11:00' is not a window"),
        ("{timezone: UTC, days: [mon-]}", "'mon-' is not a day or range"),
        ("{timezone: UTC, days: [-fri]}", "'-fri' is not a day or range"),
        ("{timezone: UTC, days: ['mon,,tue']}", "'mon,,tue' is not a day or range"),
        ("{timezone: UTC, days: [monday]}", "'monday' is not a day or range"),
        ("{timezone: UTC, dates: [2024-13-01]}", "'2024-13-01' is not a date"),
        ("{timezone: UTC, dates: [24-12-25]}", "'24-12-25' is not a date YYYY-MM-DD"),
        ("{timezone: UTC, hours: '09:00-10:00', tz: UTC}", "unknown key 'tz'"),
    ],
)
def test_bad_time(tmp_path: Path, time: str, fragment: str) -> None:
    [message] = when_problems(tmp_path, f"{{time: {time}}}")
    assert fragment in message


def test_single_digit_hours_are_fine(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{time: {timezone: UTC, hours: '9:00 - 17:30'}}")
    assert times(when, "2024-06-05T17:29+00:00", "2024-06-05T17:30+00:00") == [True, False]


# --------------------------------------------------------------------------- expr


def test_expr_sees_the_template_context(tmp_path: Path) -> None:
    when = compile_when(tmp_path, """{expr: "contact.startswith('+65') and text | length > 3"}""")
    assert matches(when, make_event(text="hello"))
    assert not matches(when, make_event(text="hi"))
    assert not matches(when, make_event(contact="+60123", text="hello"))


def test_expr_on_values_flow_and_now(tmp_path: Path) -> None:
    when = compile_when(
        tmp_path,
        """{expr: "values.water_source.category == 'Well' and flow.step == 'ask-source'"}""",
    )
    assert matches(when, flow_event())
    hour = compile_when(tmp_path, """{expr: "now.hour >= 9 and kind == 'sms.received'"}""")
    assert matches(hour, make_event(), at("2024-06-05T09:00+00:00"))
    assert not matches(hour, make_event(), at("2024-06-05T08:59+00:00"))


def test_expr_failing_at_runtime_raises_template_error(tmp_path: Path) -> None:
    when = compile_when(tmp_path, """{expr: "flow.name == 'x'"}""")
    with pytest.raises(TemplateError, match="UndefinedError"):
        run(when, make_event(flow=None))


def test_expr_is_sandboxed(tmp_path: Path) -> None:
    problems = when_problems(tmp_path, '{expr: "contact.__class__.__mro__"}')
    assert problems == ["rules[0].when.expr: access to private attribute '__mro__' is refused"]
    when = compile_when(tmp_path, """{expr: "contact | attr('_' ~ '_class__')"}""")
    with pytest.raises(TemplateError, match="SecurityError"):
        run(when, make_event())


def test_expr_does_not_evaluate_event_text(tmp_path: Path) -> None:
    when = compile_when(tmp_path, """{expr: "text == '{{ 7*7 }}'"}""")
    assert matches(when, make_event(text="{{ 7*7 }}"))
    assert not matches(when, make_event(text="49"))


@pytest.mark.parametrize(
    ("expr", "fragment"),
    [
        ("'customer == 1'", "rules[0].when.expr: unknown variable 'customer'"),
        ("'text =='", "rules[0].when.expr: expression syntax error"),
        ("5", "rules[0].when.expr: expected an expression string, got a number"),
    ],
)
def test_bad_expr(tmp_path: Path, expr: str, fragment: str) -> None:
    [message] = when_problems(tmp_path, f"{{expr: {expr}}}")
    assert fragment in message


# --------------------------------------------------------------------------- not / any / all


def test_not(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{not: {text: {keyword: stop}}}")
    assert texts(when, "go", None, "stop", "STOP!") == [True, True, False, False]


def test_not_of_several_conditions_is_not_all(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{not: {contact: '+65*', provider: textit}}")
    assert not matches(when, make_event())
    assert matches(when, make_event(provider="hoiio"))
    assert matches(when, make_event(contact="+60123"))


def test_not_combined_with_other_conditions(tmp_path: Path) -> None:
    when = compile_when(
        tmp_path, "{text: {keyword: hours}, not: {time: {timezone: UTC, days: [sat-sun]}}}"
    )
    assert matches(when, make_event(text="hours"), at("2024-06-07T12:00+00:00"))  # Friday
    assert not matches(when, make_event(text="hours"), at("2024-06-08T12:00+00:00"))
    assert not matches(when, make_event(text="help"), at("2024-06-07T12:00+00:00"))


def test_any(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{any: [{text: {keyword: help}}, {digits: 0}]}")
    assert matches(when, make_event(text="help me"))
    assert matches(when, make_event(digits="0"))
    assert not matches(when, make_event(text="hello", digits="1"))


def test_any_returns_the_first_matching_alternatives_captures(tmp_path: Path) -> None:
    when = compile_when(
        tmp_path,
        r"{any: [{text: {regex: '(?P<a>x+)'}}, {text: {regex: '(?P<b>y+)'}}]}",
    )
    assert run(when, make_event(text="yy")) == {"b": "yy"}
    assert run(when, make_event(text="xx yy")) == {"a": "xx"}
    assert run(when, make_event(text="zz")) is None


def test_nested_any_inside_not(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{not: {any: [{provider: hoiio}, {channel: [test]}]}}")
    assert matches(when, make_event())
    assert not matches(when, make_event(provider="hoiio"))
    assert not matches(when, make_event(channel="test"))


def test_all_conditions_must_hold_and_captures_merge(tmp_path: Path) -> None:
    when = compile_when(
        tmp_path,
        r"{text: {regex: '(?P<first>\w+)'}, contact: '+65*', provider: textit,"
        r" values: {Water Source: {text: {regex: 'the (?P<where>\w+)'}}}}",
    )
    assert run(when, flow_event(text="hello world")) == {"first": "hello", "where": "WELL"}
    assert run(when, flow_event(text="hello", provider="hoiio")) is None


def test_empty_when_matches_everything(tmp_path: Path) -> None:
    when = compile_when(tmp_path, "{}")
    assert run(when, make_event()) == {}


@pytest.mark.parametrize(
    ("when", "fragment"),
    [
        ("{any: []}", "rules[0].when.any: needs at least 1 item(s)"),
        ("{any: {text: {keyword: x}}}", "rules[0].when.any: expected a list, got a mapping"),
        ("{any: [{txt: {keyword: x}}]}", "rules[0].when.any[0]: unknown key 'txt'"),
        ("{not: {time: {timezone: Nope, days: [mon]}}}", "rules[0].when.not.time.timezone"),
        ("{channel: {a: b}}", "rules[0].when.channel[0]: expected a string, got a mapping"),
    ],
)
def test_bad_combinators(tmp_path: Path, when: str, fragment: str) -> None:
    [message] = when_problems(tmp_path, when)
    assert fragment in message


def _words_by_regex(text: str) -> list[str]:
    edges = re.compile(r"^\W+|\W+$")
    return [w for w in (edges.sub("", raw).casefold() for raw in text.split()) if w]


@given(st.text())
def test_words_strip_punctuation_like_the_regex_does(text: str) -> None:
    # words() skips the regex for words that start and end with a word character.
    assert words(text) == tuple(_words_by_regex(text))
