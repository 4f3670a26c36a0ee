"""Expectations: subset matching of parameters, call matching, and what always fails."""

from __future__ import annotations

import re

from responder.conversations import Conversation
from responder.outbound import OutboundCall
from responder.transcripts.expect import describe, differences, match_call, subset
from responder.transcripts.harness import Observation
from responder.transcripts.language import CallMatch, Expect, TextMatch

SMS = OutboundCall("k1", "hoiio", "sms/send", {"dest": "+6591234567", "msg": "Hi there"})
BROADCAST = OutboundCall("k2", "textit", "broadcasts.json", {"urns": ["tel:+1555"], "text": "Yo"})
GATHER = OutboundCall(
    "k3", "hoiio", "ivr/middle/gather", {"session": "S", "msg": "Press 1", "max_digits": 1}
)
HTTP = OutboundCall("k4", "http", "https://x.test/a", {"json": {"a": 1, "b": [1, 2]}})


def exact(text: str) -> TextMatch:
    return TextMatch(exact=text)


def test_subset_semantics() -> None:
    got = {"a": 1, "b": {"c": "x", "d": [1, 2]}, "e": "Hello"}
    assert subset("p", {"a": 1, "b": {"c": "x"}}, got) == []
    assert subset("p", {"a": "1"}, got) == []  # scalars compare as text
    assert subset("p", {"e": {"regex": "^Hel"}}, got) == []
    assert subset("p", {"b": {"d": [1, 2]}}, got) == []
    assert subset("p", {"b": {"d": [1]}}, got) == ["p.b.d: expected [1], got [1, 2]"]
    assert subset("p", {"z": 1}, got) == ["p.z: missing (expected 1)"]
    assert subset("p", {"e": {"regex": "^bye"}}, got) == ["p.e: expected /^bye/, got 'Hello'"]
    assert subset("p", {"e": {"regex": "("}}, got)[0].startswith("p.e: bad regex '('")
    assert subset("p", {"a": 2}, got) == ["p.a: expected 2, got 1"]
    assert subset("p", True, "true") == []


def test_sms_matches_either_provider() -> None:
    want = CallMatch(1, "sms", exact("Hi there"), to="+6591234567", via="hoiio")
    assert match_call(want, SMS) == []
    assert match_call(CallMatch(1, "sms", exact("Yo"), to="+1555"), BROADCAST) == []
    assert match_call(CallMatch(1, "sms", exact("Yo"), via="hoiio"), BROADCAST) == [
        "via: expected hoiio, got textit"
    ]
    assert match_call(CallMatch(1, "sms", exact("x")), GATHER) == ["expected an SMS"]


def test_api_and_http_calls() -> None:
    want = CallMatch(
        1, "hoiio", exact("ivr/middle/gather"), say=exact("Press 1"), params={"max_digits": 1}
    )
    assert match_call(want, GATHER) == []
    wrong = CallMatch(1, "hoiio", exact("ivr/end/hangup"), say=exact("Bye"))
    assert match_call(wrong, GATHER) == [
        "expected 'ivr/end/hangup'",
        "say: expected 'Bye', got 'Press 1'",
    ]
    assert match_call(CallMatch(1, "http", exact("https://x.test/a"), json={"a": 1}), HTTP) == []
    assert match_call(CallMatch(1, "http", exact("https://x.test/a"), method="GET"), HTTP) == [
        "method: expected GET, got POST"
    ]
    assert match_call(CallMatch(1, "textit", exact("x")), HTTP) == ["expected a textit call"]


def test_calls_are_all_and_in_order() -> None:
    seen = Observation(calls=[GATHER, SMS])
    one = Expect(1, calls=(CallMatch(1, "hoiio", exact("ivr/middle/gather")),))
    [problem] = differences(one, seen, None)
    assert problem.startswith("calls: expected 1 call(s), got 2; not expected: sms via hoiio")
    swapped = Expect(
        1,
        calls=(CallMatch(1, "sms", exact("Hi there")), CallMatch(1, "hoiio", exact("ivr/x"))),
    )
    assert len(differences(swapped, seen, None)) == 2


def test_reply_nothing_sent_and_conversation() -> None:
    seen = Observation(reply="Hello", body={"text": "Hello"}, matched=["r1"])
    assert differences(Expect(1, reply=exact("Hello"), matched=("r1",)), seen, None) == []
    assert differences(Expect(1, reply=None), seen, None) == [
        "reply: expected no reply, got 'Hello'"
    ]
    assert differences(Expect(1, reply=TextMatch(regex=re.compile("^Bye"))), seen, None) == [
        "reply: expected /^Bye/, got 'Hello'"
    ]
    assert differences(Expect(1, nothing_sent=True), seen, None) == [
        "expected nothing sent, got reply 'Hello'"
    ]
    conversation = Conversation("k", "survey", "ask", "textit", "textit", vars={"a": "1"})
    ok = Expect(1, dialogue="survey", state="ask", status="active", vars={"a": 1})
    assert differences(ok, Observation(), conversation) == []
    assert differences(Expect(1, state="ask"), Observation(), None) == [
        "state: expected a conversation, there is none"
    ]
    assert differences(Expect(1, status="none"), Observation(), conversation) == [
        "status: expected none, got active"
    ]


def test_rule_errors_fail_unless_expected() -> None:
    seen = Observation(errors=["rule 'x': template failed: boom"])
    assert differences(None, seen, None) == ["rule error: rule 'x': template failed: boom"]
    assert differences(Expect(1), seen, None) == ["rule error: rule 'x': template failed: boom"]
    expected = Expect(1, errors=(TextMatch(regex=re.compile("boom")),))
    assert differences(expected, seen, None) == []


def test_describe_hides_notify_urls() -> None:
    call = OutboundCall("k", "hoiio", "ivr/middle/play", {"msg": "Hi", "notify_url": "https://s"})
    assert describe(call) == "hoiio ivr/middle/play {'msg': 'Hi'}"
    assert describe(SMS) == "sms via hoiio to +6591234567: 'Hi there'"
    assert describe(HTTP) == "http POST https://x.test/a {'a': 1, 'b': [1, 2]}"
