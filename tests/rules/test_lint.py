"""What `responder check` warns about: rules that load but cannot do what they seem to say."""

from __future__ import annotations

from pathlib import Path

import pytest

from responder.cli import main
from responder.errors import RulesError
from responder.rules.loader import load_rules
from tests.conftest import REPO, write_rules

RULES = """
rules:
  - name: callback
    on: call.missed
    when: {provider: hoiio}
    reply: {text: hi}
  - name: cancel
    on: sms.received
    when: {text: {only: [cancel]}}
    reply: {text: cancelled}
  - name: fine
    on: sms.received
    when: {text: {keyword: [order]}}
    reply: {text: ok}
  - name: transfer
    on: ivr.transfer
    when: {status: [no_answer, busy]}
    hangup: {}
dialogues:
  - name: d
    mode: sms
    any:
      - {text: {only: [stop]}, goto: b}
      - {text: {only: [quit]}, goto: b}
    states:
      a:
        say: hi
        on:
          - {text: {keyword: [end]}, goto: b}
          - {otherwise: true, goto: a}
      b: {say: bye, end: true}
"""


def test_each_trap_is_a_warning_with_its_line(tmp_path: Path) -> None:
    ruleset = load_rules([write_rules(tmp_path, RULES)])
    file = str(tmp_path / "rules.yaml")
    found = [(w.file, w.line, w.message.split(":")[1].strip()) for w in ruleset.warnings]
    assert found == [
        (file, 3, "rule 'callback' can never fire on call.missed"),
        (file, 7, "rule 'cancel' matches 'cancel', an opt-out (STOP) word"),
        (file, 15, "rule 'transfer'"),
        (file, 23, "dialogue 'd' any[0] names 'stop'"),
        (file, 29, "dialogue 'd' states.a.on[0] matches 'end', an opt-out (STOP) word"),
    ]
    assert "is read as 'unanswered'" in ruleset.warnings[2].message


def test_check_prints_warnings_and_still_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = write_rules(tmp_path, RULES)
    assert main(["check", str(rules)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(
        ":3: warning: rule 'callback' can never fire on call.missed: hoiio sends no such event"
    )
    assert out[-1] == "ok: 4 rule(s) and 1 dialogue(s) in 1 file(s), 5 warning(s)"


def test_a_help_word_is_only_a_trap_when_compliance_answers_help(tmp_path: Path) -> None:
    rule = (
        "rules:\n  - {name: h, on: sms.received, when: {text: {only: [help]}}, reply: {text: x}}\n"
    )
    assert load_rules([write_rules(tmp_path / "a", rule)]).warnings == ()
    answered = rule + "compliance:\n  help: {reply: Call us.}\n"
    (warning,) = load_rules([write_rules(tmp_path / "b", answered)]).warnings
    assert "'help', a HELP word" in warning.message


@pytest.mark.parametrize("path", ["rules", *sorted(p.name for p in (REPO / "examples").iterdir())])
def test_the_shipped_rules_have_no_warnings(path: str) -> None:
    where = REPO / path if path == "rules" else REPO / "examples" / path
    if not any(where.glob("*.yaml")):
        pytest.skip("no rules here")
    assert load_rules([where]).warnings == ()


@pytest.mark.parametrize(
    ("text", "size", "limit"),
    [("x" * 460, 460, 459), ("€" * 230, 460, 459), ("é" * 202 + "中", 203, 201)],
)
def test_check_refuses_a_fixed_hoiio_sms_text_over_three_parts(
    tmp_path: Path, text: str, size: int, limit: int
) -> None:
    rules = f"rules:\n  - name: s\n    on: sms.received\n    sms: {{via: hoiio, text: '{text}'}}\n"
    with pytest.raises(RulesError) as caught:
        load_rules([write_rules(tmp_path, rules)])
    (problem,) = caught.value.problems
    assert f"text is {size} characters; Hoiio sends at most 3 parts, {limit}" in problem.message
    fits = rules.replace(text, text[: limit // 2])
    load_rules([write_rules(tmp_path / "ok", fits)])
