"""The transcript language: what parses, and file:line problems for what does not."""

from __future__ import annotations

import textwrap
from datetime import datetime
from pathlib import Path

from responder.transcripts.language import ABSENT, CallMatch, Expect, Step, TextMatch
from responder.transcripts.run import parse_transcript


def parse(tmp_path: Path, text: str) -> tuple[object, list[str]]:
    path = tmp_path / "t.test.yaml"
    path.write_text(textwrap.dedent(text))
    transcript, problems = parse_transcript(path)
    return transcript, [f"{p.line}: {p.message}" for p in problems]


def test_a_full_transcript_parses(tmp_path: Path) -> None:
    transcript, problems = parse(
        tmp_path,
        """
        given:
          provider: hoiio
          start: 2026-11-25 09:30
          timezone: Asia/Singapore
          rules: [rules.yaml]
        tests:
          - name: one
            given: {contact: "+6590000001"}
            steps:
              - call: incoming
                expect:
                  calls:
                    - {hoiio: ivr/middle/gather, say: {regex: "^Welcome"}, params: {max_digits: 1}}
              - press: 1
              - wait: 1h30m
              - at: 2026-11-26T08:00
              - sms: hi
                from: "+6590000002"
                expect: {reply: null, state: menu, status: active, vars: {a: 1}}
              - expect: {nothing_sent: true}
        """,
    )
    assert problems == []
    assert transcript is not None
    given = transcript.given  # type: ignore[attr-defined]
    assert given.provider == "hoiio"
    assert given.start == datetime(2026, 11, 25, 9, 30)
    assert str(given.timezone) == "Asia/Singapore"
    assert given.rules == ("rules.yaml",)
    case = transcript.tests[0]  # type: ignore[attr-defined]
    assert case.given.contact == "+6590000001"
    steps: tuple[Step, ...] = case.steps
    assert [s.action for s in steps] == ["call", "press", "wait", "at", "sms", "check"]
    assert [s.line for s in steps] == [11, 15, 16, 17, 18, 21]
    assert steps[1].value == "1"
    assert steps[2].value == 5400.0
    assert steps[3].value == datetime(2026, 11, 26, 8, 0)
    assert steps[4].sender == "+6590000002"
    call = steps[0].expect.calls[0]  # type: ignore[union-attr]
    assert isinstance(call, CallMatch)
    assert (call.kind, call.target, call.params) == (
        "hoiio",
        TextMatch(exact="ivr/middle/gather"),
        {"max_digits": 1},
    )
    assert call.say is not None
    assert call.say.matches("Welcome, caller")
    expect = steps[4].expect
    assert isinstance(expect, Expect)
    assert expect.reply is None  # given as null: "no reply"
    assert expect.calls is ABSENT  # not given: not checked
    assert steps[5].expect is not None
    assert steps[5].expect.nothing_sent


def test_every_problem_with_its_line(tmp_path: Path) -> None:
    _, problems = parse(
        tmp_path,
        """
        given:
          provider: twilio
          timezone: Mars/Olympus
          start: yesterday
        tests:
          - name: broken
            steps:
              - call: incomin
              - sms: hi
                press: 1
              - hangup: false
              - {}
              - expect:
                  calls: [{hoio: x}, {sms: a, hoiio: b}, {hoiio: x, to: "+1"}]
                  reply: {regex: "("}
                  status: gone
              - wait: 2y
          - steps: []
        """,
    )
    assert problems == [
        "3: given.provider: 'twilio' is not one of textit, hoiio",
        "4: given.timezone: unknown timezone 'Mars/Olympus' (e.g. Asia/Singapore)",
        "5: given.start: 'yesterday' is not a local time like '2026-11-25 09:30'",
        "9: tests[0].steps[0].call: 'incomin' is not one of incoming, missed "
        "(did you mean 'incoming'?)",
        "10: tests[0].steps[1]: one action per step, got sms, press",
        "12: tests[0].steps[2]: hangup: expected true",
        "13: tests[0].steps[3]: a step needs an action (sms, call, press, record, transfer, "
        "dial, played, hangup, flow, webhook, repeat, wait, at) or expect",
        "15: tests[0].steps[4].expect.calls[0]: unknown key 'hoio' (did you mean 'hoiio'?)",
        "15: tests[0].steps[4].expect.calls[1]: a call names exactly one of sms, hoiio, "
        "textit, http",
        "15: tests[0].steps[4].expect.calls[2]: 'to' and 'via' go with 'sms'",
        "16: tests[0].steps[4].expect.reply.regex: bad regex '(': missing ), unterminated "
        "subpattern at position 0",
        "17: tests[0].steps[4].expect.status: 'gone' is not one of active, ended, none "
        "(did you mean 'none'?)",
        "18: tests[0].steps[5].wait: '2y' is not a duration (e.g. 30s, 15m, 6h, 1d)",
        "19: tests[1].steps: needs at least 1 item(s)",
        "19: tests[1]: missing required key 'name'",
    ]


def test_empty_and_unreadable_files(tmp_path: Path) -> None:
    assert parse(tmp_path, "")[1] == ["1: empty transcript (expected 'tests:')"]
    assert parse(tmp_path, "tests: [\n")[1][0].startswith("2: YAML syntax error")
    (tmp_path / "bin.test.yaml").write_bytes(b"tests:\n  - \xff\n")
    _, problems = parse_transcript(tmp_path / "bin.test.yaml")
    assert [(p.line, p.message) for p in problems] == [(2, "not UTF-8 text")]
