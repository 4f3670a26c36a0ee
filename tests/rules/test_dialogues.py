"""The ``dialogues:`` language: every graph and mode problem reported as ``file:line: message``
by ``responder check``, and what valid dialogues compile to."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from responder.cli import main
from responder.dialogues import model as m
from responder.dialogues.machine import DialogueMachine
from responder.errors import RulesError
from responder.rules.dialogues import MAX_STATES
from responder.rules.loader import load_rules
from responder.rules.model import RuleSet

DATA = Path(__file__).resolve().parent.parent / "data" / "rules"
BROKEN = DATA / "dialogues_broken"
EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"

_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<message>.*)$")

# (file, line, message fragment): the complete list for tests/data/rules/dialogues_broken.
EXPECTED: list[tuple[str, int, str]] = [
    ("01_unknown_targets.yaml", 9, "states.ask.on[0].goto: goto names unknown state 'yess'"),
    ("01_unknown_targets.yaml", 10, "states.ask.on[1].then: then names unknown state 'gone'"),
    ("01_unknown_targets.yaml", 7, "states.ask: wait.goto names unknown state 'timed-out'"),
    ("01_unknown_targets.yaml", 13, "states.done: next names unknown state 'finished'"),
    ("01_unknown_targets.yaml", 13, "states.done: then names unknown state 'elsewhere'"),
    (
        "01_unknown_targets.yaml",
        21,
        "dialogues[1].states.connect: transfer.on_failure names unknown state 'voicemal'",
    ),
    ("02_unreachable.yaml", 13, "states.orphan: state 'orphan' is unreachable from 'hello'"),
    ("02_unreachable.yaml", 16, "states.loop-a: state 'loop-a' is unreachable from 'hello'"),
    ("02_unreachable.yaml", 19, "states.loop-b: state 'loop-b' is unreachable from 'hello'"),
    (
        "03_no_way_out.yaml",
        9,
        "states.limbo: state has no way out: add on, next or wait, or mark it end: true",
    ),
    ("04_two_blocks.yaml", 6, "states.menu: a state runs one IVR block, not gather, record"),
    ("05_sms_blocks.yaml", 6, "states.menu: IVR blocks (gather, record, transfer, hangup) need"),
    ("05_sms_blocks.yaml", 10, "states.bye: IVR blocks (gather, record, transfer, hangup) need"),
    ("06_ivr_wait.yaml", 6, "states.menu: wait is for SMS dialogues; use gather's timeout"),
    ("07_gather_without_on.yaml", 6, "states.menu: a gather needs 'on' transitions"),
    (
        "08_bare_transition.yaml",
        9,
        "states.ask.on[1]: a transition needs a condition or 'otherwise: true'",
    ),
    ("09_max_visits.yaml", 8, "states.ask.on[0]: max_visits and then go together"),
    ("09_max_visits.yaml", 9, "states.ask.on[1]: max_visits and then go together"),
    ("09_max_visits.yaml", 11, "states.done: max_visits and then go together"),
    (
        "11_dupes_b.yaml",
        7,
        "duplicate dialogue name 'survey' (first at {broken}/10_dupes_a.yaml:2)",
    ),
    ("12_rule_start.yaml", 2, "rule 'begin-survey' starts unknown dialogue 'servey'"),
    ("13_unknown_keys.yaml", 4, "dialogues[0]: unknown key 'sates' (did you mean 'states'?)"),
    ("13_unknown_keys.yaml", 8, "states.ask: unknown key 'nxt' (did you mean 'next'?)"),
    ("13_unknown_keys.yaml", 10, "states.ask.on[0]: unknown key 'got' (did you mean 'goto'?)"),
    (
        "13_unknown_keys.yaml",
        14,
        "states.done.gather: unknown key 'max_digit' (did you mean 'max_digits'?)",
    ),
]


def run_check(capsys: pytest.CaptureFixture[str], *paths: str | Path) -> tuple[int, str, str]:
    code = main(["check", *(str(p) for p in paths)])
    out, err = capsys.readouterr()
    return code, out, err


def parse(out: str) -> list[tuple[str, int, str]]:
    found = []
    for text in out.splitlines():
        match = _LINE.match(text)
        assert match, f"not a file:line: message line: {text!r}"
        found.append((match["file"], int(match["line"]), match["message"]))
    return found


def problems(tmp_path: Path, text: str) -> list[tuple[int, str]]:
    """(line, message) of every problem of one rule file."""
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(RulesError) as exc:
        load_rules([path])
    assert all(p.file == str(path) for p in exc.value.problems)
    return [(p.line, p.message) for p in exc.value.problems]


def load(tmp_path: Path, text: str) -> RuleSet:
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(text))
    return load_rules([path])


# -- the broken directory ------------------------------------------------------------------


def test_broken_dialogues_report_every_problem(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_check(capsys, BROKEN)
    assert code == 1
    found = parse(out)
    assert {Path(file).parent for file, _, _ in found} == {BROKEN}
    located = sorted((Path(file).name, line) for file, line, _ in found)
    assert located == sorted((name, line) for name, line, _ in EXPECTED)
    for name, line, fragment in EXPECTED:
        fragment = fragment.format(broken=BROKEN)
        messages = [msg for f, n, msg in found if Path(f).name == name and n == line]
        assert any(fragment in msg for msg in messages), (name, line, fragment, messages)
    assert err.strip() == f"{len(found)} problem(s) found"


def test_every_broken_file_but_the_first_duplicate_has_a_problem(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, out, _ = run_check(capsys, BROKEN)
    names = {Path(file).name for file, _, _ in parse(out)}
    assert names == {p.name for p in BROKEN.iterdir()} - {"10_dupes_a.yaml"}


@pytest.mark.parametrize("name", sorted({n for n, _, _ in EXPECTED} - {"11_dupes_b.yaml"}))
def test_each_broken_file_alone(capsys: pytest.CaptureFixture[str], name: str) -> None:
    """Each file's problems are its own: the same lines when checked alone."""
    code, out, _ = run_check(capsys, BROKEN / name)
    assert code == 1
    assert sorted(line for _, line, _ in parse(out)) == sorted(
        line for n, line, _ in EXPECTED if n == name
    )


def test_duplicate_dialogue_needs_both_files(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_check(capsys, BROKEN / "11_dupes_b.yaml")
    assert code == 0, out
    code, out, _ = run_check(capsys, BROKEN / "10_dupes_a.yaml", BROKEN / "11_dupes_b.yaml")
    assert code == 1
    [(file, line, message)] = parse(out)
    assert (Path(file).name, line) == ("11_dupes_b.yaml", 7)
    assert "duplicate dialogue name 'survey'" in message


def test_rule_start_names_a_dialogue_of_another_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "rules:\n  - name: go\n    on: sms.received\n    start: survey\n"
    )
    (tmp_path / "b.yaml").write_text((BROKEN / "10_dupes_a.yaml").read_text())
    ruleset = load_rules([tmp_path])
    assert ruleset.rules[0].start == "survey"
    assert "survey" in ruleset.dialogues


# -- more problems, one file each ------------------------------------------------------------


def test_initial_that_does_not_exist(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        dialogues:
          - name: d
            initial: nowhere
            states:
              a: {say: "a", end: true}
        """,
    )
    assert found == [(5, "dialogues[0]: initial state 'nowhere' does not exist")]


def test_ivr_state_with_nothing_to_do(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        dialogues:
          - name: d
            start: {on: ivr.answer}
            states:
              menu:
                gather: {say: "Press 1"}
                on: [{digits: "1", goto: silent}]
              silent:
                outcome: nothing
                on: [{otherwise: true, goto: menu}]
        """,
    )
    assert found == [
        (
            10,
            "dialogues[0].states.silent: an IVR state needs say, gather, record, transfer or "
            "hangup (or next)",
        )
    ]


def test_ivr_say_only_state_with_transitions(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        dialogues:
          - name: d
            start: {on: ivr.answer}
            states:
              hello:
                say: "Hello"
                on: [{digits: "1", goto: bye}]
              bye: {hangup: {}}
        """,
    )
    assert found == [
        (7, "dialogues[0].states.hello: a say-only state has no input; use next, or gather")
    ]


def test_end_with_a_way_out(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        dialogues:
          - name: d
            states:
              a:
                say: "a"
                end: true
                next: b
              b: {say: "b", end: true}
        """,
    )
    assert found == [(6, "dialogues[0].states.a: end: true leaves no room for on/next/wait")]


def test_gather_without_on_or_next_is_also_a_dead_end(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        dialogues:
          - name: d
            start: {on: ivr.answer}
            states:
              menu:
                gather: {say: "Press 1"}
        """,
    )
    messages = [msg for _, msg in found]
    assert "dialogues[0].states.menu: a gather needs 'on' transitions" in messages
    assert any("state has no way out" in msg for msg in messages)


def test_sms_start_with_explicit_ivr_wait(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        dialogues:
          - name: d
            mode: ivr
            states:
              a:
                say: "a"
                next: b
                wait: {timeout: 1m, goto: b}
              b: {hangup: {}}
        """,
    )
    assert (7, "dialogues[0].states.a: wait is for SMS dialogues; use gather's timeout") in found


def test_bad_mode_and_bad_state_name(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        dialogues:
          - name: d
            mode: voice
            states:
              "bad name": {say: "a", end: true}
        """,
    )
    lines = [line for line, _ in found]
    assert lines == [4, 6]
    assert "ivr or sms" in found[0][1]
    assert "letters, digits" in found[1][1]


def test_too_many_states(tmp_path: Path) -> None:
    states = "\n".join(f"      s{i}: {{say: x, next: s{i + 1}}}" for i in range(MAX_STATES))
    text = f"dialogues:\n  - name: d\n    states:\n{states}\n      s{MAX_STATES}: {{end: true}}\n"
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(RulesError) as exc:
        load_rules([path])
    assert [(p.line, p.message) for p in exc.value.problems] == [
        (3, f"dialogues[0].states: more than {MAX_STATES} states")
    ]


def test_missing_states_and_empty_states(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        dialogues:
          - name: a
          - name: b
            states: {}
        """,
    )
    assert [line for line, _ in found] == [3, 5]
    assert "missing required key 'states'" in found[0][1]
    assert "expected a mapping of state names to states" in found[1][1]


def test_one_broken_dialogue_does_not_hide_the_others_problems(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """
        dialogues:
          - name: a
            states:
              x: {say: "x", next: y}
          - name: b
            states:
              x: {say: "x"}
        """,
    )
    assert [line for line, _ in found] == [5, 8]


# -- valid dialogues ---------------------------------------------------------------------------


def test_the_ivr_example_loads(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_check(capsys, EXAMPLES / "ivr-menu")
    assert code == 0, out
    assert out == "ok: 0 rule(s) and 1 dialogue(s) in 1 file(s)\n"
    ruleset = load_rules([EXAMPLES / "ivr-menu"])
    dialogue = ruleset.dialogues["main-menu"]
    assert dialogue.mode == "ivr"
    assert dialogue.initial == "menu"
    assert list(dialogue.states) == ["menu", "sales", "voicemail", "thanks", "goodbye"]
    assert dialogue.line == 4
    assert dialogue.file == str(EXAMPLES / "ivr-menu" / "rules.yaml")
    assert ruleset.starts["ivr.answer"] == (dialogue,)
    menu = dialogue.states["menu"]
    assert isinstance(menu.block, m.Gather)
    assert (menu.block.max_digits, menu.block.timeout, menu.block.attempts) == (1, 10, 1)
    assert [t.goto for t in menu.on] == ["sales", "voicemail", "menu"]
    assert menu.on[2].otherwise
    assert (menu.on[2].max_visits, menu.on[2].then) == (3, "goodbye")
    sales = dialogue.states["sales"]
    assert isinstance(sales.block, m.Transfer)
    assert sales.block.on_failure == "voicemail"
    assert not sales.terminal
    assert dialogue.states["thanks"].terminal
    assert isinstance(dialogue.machine, DialogueMachine)


VALID = """
dialogues:
  - name: by-call
    start: {on: [ivr.answer, ivr.dial]}
    states:
      zz-welcome: {say: "listed first", next: aa-bye}
      aa-bye: {hangup: {say: "bye"}}
  - name: by-text
    start: {on: sms.received, when: {text: {keyword: hi}}, priority: 5}
    expire: 2h
    states:
      hello:
        say: "Hi {{ contact }}"
        set: {greeted: "yes"}
        on:
          - {text: {keyword: bye}, goto: bye, set: {why: "{{ text }}"}}
        wait: {timeout: 10m, goto: bye}
      bye: {say: "Bye {{ vars.greeted }}", end: true, outcome: said bye}
  - name: mixed-start
    start: {on: [call.missed, sms.received]}
    states:
      only: {say: "x", end: true}
  - name: no-start
    states:
      only: {say: "x", end: true}
  - name: explicit
    mode: ivr
    initial: later
    states:
      earlier: {hangup: {}}
      later: {say: "hello", next: earlier}
rules:
  - name: call-in
    on: ivr.answer
    start: explicit
"""


def test_valid_dialogues_mode_and_initial(tmp_path: Path) -> None:
    ruleset = load(tmp_path, VALID)
    d = ruleset.dialogues
    assert list(d) == ["by-call", "by-text", "mixed-start", "no-start", "explicit"]
    # mode: ivr only when every start kind is ivr.*; initial: the first state listed.
    assert (d["by-call"].mode, d["by-call"].initial) == ("ivr", "zz-welcome")
    assert (d["by-text"].mode, d["by-text"].initial) == ("sms", "hello")
    assert d["mixed-start"].mode == "sms"
    assert d["no-start"].mode == "sms"
    assert d["no-start"].start is None
    assert (d["explicit"].mode, d["explicit"].initial) == ("ivr", "later")


def test_valid_dialogues_details(tmp_path: Path) -> None:
    ruleset = load(tmp_path, VALID)
    text = ruleset.dialogues["by-text"]
    assert text.expire == 7200.0
    assert ruleset.dialogues["no-start"].expire == 86400.0
    assert text.start is not None
    assert text.start.kinds == frozenset({"sms.received"})
    assert text.start.priority == 5
    hello = text.states["hello"]
    assert hello.wait == m.Wait(600.0, "bye")
    assert set(hello.set) == {"greeted"}
    assert set(hello.on[0].set) == {"why"}
    assert not hello.terminal
    bye = text.states["bye"]
    assert bye.end
    assert bye.terminal
    assert bye.outcome == "said bye"
    call = ruleset.dialogues["by-call"]
    assert call.start is not None
    assert call.start.kinds == frozenset({"ivr.answer", "ivr.dial"})
    assert ruleset.starts["ivr.dial"] == (call,)
    assert [x.name for x in ruleset.starts["sms.received"]] == ["by-text", "mixed-start"]
    assert [x.name for x in ruleset.starts["call.missed"]] == ["mixed-start"]
    assert ruleset.rules[0].start == "explicit"


def test_every_valid_dialogue_gets_its_own_machine(tmp_path: Path) -> None:
    ruleset = load(tmp_path, VALID)
    machines = [d.machine for d in ruleset.dialogues.values()]
    assert all(isinstance(x, DialogueMachine) for x in machines)
    assert len({id(x) for x in machines}) == len(machines)
    for dialogue in ruleset.dialogues.values():
        assert dialogue.machine is not None
        assert dialogue.machine.name == dialogue.name
        assert set(dialogue.machine.machine.states) == set(dialogue.states)


def test_state_level_and_transition_level_limits_load(tmp_path: Path) -> None:
    ruleset = load(
        tmp_path,
        """
        dialogues:
          - name: d
            states:
              ask:
                say: "again?"
                on:
                  - {text: {keyword: yes}, goto: ask, max_visits: 3, then: done}
                  - {otherwise: true, goto: other}
              other:
                say: "other"
                max_visits: 2
                then: done
                next: ask
              done: {say: "done", end: true}
        """,
    )
    states = ruleset.dialogues["d"].states
    assert (states["ask"].on[0].max_visits, states["ask"].on[0].then) == (3, "done")
    assert states["ask"].on[1].otherwise
    assert (states["other"].max_visits, states["other"].then) == (2, "done")


def test_a_then_target_counts_as_reachable(tmp_path: Path) -> None:
    # 'done' is only reachable as the 'then' of a limit; 'sorry' only through on_failure.
    ruleset = load(
        tmp_path,
        """
        dialogues:
          - name: d
            start: {on: ivr.answer}
            states:
              menu:
                gather: {say: "Press 1"}
                on:
                  - {digits: "1", goto: connect}
                  - {otherwise: true, goto: menu, max_visits: 2, then: done}
              connect:
                transfer: {to: "+6561234567", on_failure: sorry}
              sorry:
                hangup: {say: "Nobody is there."}
              done:
                hangup: {say: "Goodbye."}
        """,
    )
    assert set(ruleset.dialogues["d"].states) == {"menu", "connect", "sorry", "done"}


def test_start_kinds_must_fit_the_mode(tmp_path: Path) -> None:
    text = """
dialogues:
  - name: sms-by-call
    start: {on: [ivr.answer, sms.received]}
    states:
      only: {say: "x", end: true}
  - name: ivr-by-text
    mode: ivr
    start: {on: sms.received}
    states:
      only: {hangup: {}}
  - name: late-dial
    mode: ivr
    states:
      first: {say: "x", next: second}
      second: {dial: {to: "+6500000000"}, next: third}
      third: {hangup: {}}
"""
    (tmp_path / "rules.yaml").write_text(text)
    with pytest.raises(RulesError) as caught:
        load_rules([tmp_path])
    messages = [p.message for p in caught.value.problems]
    assert any("an SMS dialogue cannot start on ivr.* events" in m for m in messages)
    assert any("must dial first" in m for m in messages)
    assert any("only the initial state can dial" in m for m in messages)
