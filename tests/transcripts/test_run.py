"""`responder test`: discovery, exit codes, failures at file:line, rule errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from responder.cli import main
from responder.transcripts.run import discover, run_all

RULES = """
rules:
  - name: hours
    on: sms.received
    when: {text: {keyword: [hours]}}
    reply: {text: "Open 9-18."}
  - name: never
    on: sms.received
    when: {text: {keyword: [never]}}
    reply: {text: "x"}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def suite(tmp_path: Path, reply: str = "Open 9-18.") -> Path:
    write(tmp_path / "rules.yaml", RULES)
    return write(
        tmp_path / "hours.test.yaml",
        f"""
        tests:
          - name: hours
            steps:
              - sms: hours
                expect: {{reply: "{reply}"}}
              - sms: other
                expect: {{nothing_sent: true}}
        """,
    )


def test_passing_suite_exits_0_with_coverage(tmp_path: Path, capsys) -> None:
    suite(tmp_path)
    assert main(["test", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "  1 passed, 0 failed\n" in out
    assert "  coverage: rules 1/2 (50%), states 0/0, transitions 0/0\n" in out
    assert "  not covered:\n    rule never\n" in out
    assert out.endswith(
        "total: 1 passed, 0 failed\ntotal coverage: rules 1/2 (50%), states 0/0, transitions 0/0\n"
    )


def test_a_failure_exits_1_and_points_at_the_step(tmp_path: Path, capsys) -> None:
    path = suite(tmp_path, reply="Closed.")
    assert main(["test", str(path)]) == 1
    out = capsys.readouterr().out
    assert (
        f"    {path}:5: step 1 (sms 'hours'): reply: expected 'Closed.', got 'Open 9-18.'\n" in out
    )
    assert "total: 0 passed, 1 failed\n" in out


def test_broken_rules_and_transcripts_exit_2(tmp_path: Path, capsys) -> None:
    write(tmp_path / "a" / "rules.yaml", "rules:\n  - name: x\n    on: sms.recieved\n")
    write(tmp_path / "a" / "a.test.yaml", "tests: [{name: t, steps: [{sms: hi}]}]\n")
    write(tmp_path / "b" / "b.test.yaml", "tests: [{name: t, steps: [{smss: hi}]}]\n")
    assert main(["test", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert f"  error: {tmp_path}/a/rules.yaml:3: rules[0].on[0]: unknown event kind" in out
    assert f"  error: {tmp_path}/b/b.test.yaml:1: tests[0].steps[0]: unknown key 'smss'" in out
    assert "total: 0 passed, 0 failed, 2 error(s)\n" in out


def test_nothing_to_run_is_a_usage_error(tmp_path: Path, capsys) -> None:
    assert main(["test", str(tmp_path), str(tmp_path / "missing.test.yaml")]) == 2
    out = capsys.readouterr().out
    assert f"{tmp_path}:0: no *.test.yaml transcripts here" in out
    assert f"{tmp_path / 'missing.test.yaml'}:0: no such file or directory" in out
    with pytest.raises(SystemExit) as exc:
        main(["test"])
    assert exc.value.code == 2


def test_rules_path_is_relative_to_the_transcript(tmp_path: Path) -> None:
    write(tmp_path / "rules" / "main.yaml", RULES)
    write(
        tmp_path / "tests" / "t.test.yaml",
        """
        given: {rules: [../rules]}
        tests:
          - name: t
            given: {provider: hoiio}
            steps:
              - sms: hours
                expect:
                  calls: [{sms: "Open 9-18.", via: hoiio}]
        """,
    )
    write(tmp_path / "tests" / "notes.yaml", "not: a transcript\n")
    files, problems = discover([tmp_path / "tests"])
    assert [f.name for f in files] == ["t.test.yaml"]
    assert not problems
    assert main(["test", str(tmp_path / "tests")]) == 0


async def test_results_carry_cases_and_coverage(tmp_path: Path) -> None:
    write(tmp_path / "rules" / "main.yaml", RULES)
    write(
        tmp_path / "t.test.yaml",
        """
        given: {rules: [rules]}
        tests:
          - name: t
            steps: [{sms: never, expect: {reply: x}}]
        """,
    )
    write(
        tmp_path / "misplaced.test.yaml",
        "tests: [{name: t, given: {rules: [x]}, steps: [{sms: hi}]}]\n",
    )
    results, usage = await run_all([tmp_path])
    assert usage == []
    misplaced, good = results
    assert [str(p) for p in misplaced.problems] == [
        f"{tmp_path}/misplaced.test.yaml:1: rules: belongs in the file's given"
    ]
    assert [c.failure for c in good.cases] == [None]
    assert good.coverage is not None
    assert good.coverage.hit_rules == {"never"}


def test_hoiio_replies_are_sms_and_flows_are_textit(tmp_path: Path, capsys) -> None:
    write(tmp_path / "rules.yaml", RULES)
    path = write(
        tmp_path / "t.test.yaml",
        """
        given: {provider: hoiio}
        tests:
          - name: reply on hoiio
            steps: [{sms: hours, expect: {reply: "Open 9-18."}}]
          - name: flow on hoiio
            steps: [{flow: {name: Survey}}]
        """,
    )
    assert main(["test", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:5: step 1 (sms 'hours'): reply: expected 'Open 9-18.', got no reply" in out
    assert "(Hoiio ignores webhook answers: replies go out as SMS" in out
    assert f"{path}:7: step 1 (flow 'Survey'): flow steps come from TextIt" in out
