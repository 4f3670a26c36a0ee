"""JUnit XML for CI, and total coverage over files that share rules."""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

from responder.cli import main
from responder.transcripts.report import total_coverage
from responder.transcripts.run import run_all
from tests.conftest import REPO

RULES = """
rules:
  - {name: a, on: sms.received, when: {text: {keyword: [a]}}, reply: {text: A}}
  - {name: b, on: sms.received, when: {text: {keyword: [b]}}, reply: {text: B}}
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def transcripts(tmp_path: Path) -> None:
    write(tmp_path / "rules.yaml", RULES)
    write(
        tmp_path / "a.test.yaml",
        """
        tests:
          - name: a answers A
            steps: [{sms: a, expect: {reply: A}}]
          - name: b answers A (wrong)
            steps: [{sms: b, expect: {reply: A}}]
        """,
    )
    write(tmp_path / "b.test.yaml", "tests: [{name: b, steps: [{sms: b, expect: {reply: B}}]}]\n")
    write(tmp_path / "c.test.yaml", "tests: [{name: c, steps: [{smss: c}]}]\n")


def test_junit_xml(tmp_path: Path, capsys) -> None:
    transcripts(tmp_path)
    report = tmp_path / "out" / "junit.xml"
    assert main(["test", str(tmp_path), "--junit", str(report)]) == 2
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("4", "1", "1")
    a, b, c = root.findall("testsuite")
    assert a.get("name") == str(tmp_path / "a.test.yaml")
    assert (a.get("tests"), a.get("failures")) == ("2", "1")
    passed, failed = a.findall("testcase")
    assert passed.get("name") == "a answers A"
    assert passed.find("failure") is None
    failure = failed.find("failure")
    assert failure is not None
    assert failure.get("message") == "step 1 (sms 'b'): reply: expected 'A', got 'B'"
    assert (
        failure.text == f"{tmp_path}/a.test.yaml:6: step 1 (sms 'b'): reply: expected 'A', got 'B'"
    )
    assert a.findtext("system-out") == "coverage: rules 2/2 (100%), states 0/0, transitions 0/0"
    error = c.find("testcase/error")
    assert error is not None
    assert "unknown key 'smss'" in (error.text or "")
    assert b.get("failures") == "0"


def test_junit_path_that_cannot_be_written(tmp_path: Path, capsys) -> None:
    transcripts(tmp_path)
    (tmp_path / "c.test.yaml").unlink()
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["test", str(tmp_path), "--junit", str(blocker / "junit.xml")]) == 2
    assert "cannot write" in capsys.readouterr().err


async def test_total_coverage_adds_files_over_the_same_rules(tmp_path: Path) -> None:
    transcripts(tmp_path / "one")
    (tmp_path / "one" / "c.test.yaml").unlink()
    write(tmp_path / "two" / "rules.yaml", RULES)
    write(tmp_path / "two" / "o.test.yaml", "tests: [{name: o, steps: [{sms: a}]}]\n")
    results, usage = await run_all([tmp_path])
    assert not usage
    assert not any(r.problems for r in results)
    total = total_coverage(results)
    # Two rule sets of two rules each; a and b of the first, a of the second.
    assert total.counts()["rules"] == (3, 4)


def test_coverage_json_for_the_console(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out" / "coverage.json"
    examples = REPO / "examples"
    code = main(
        [
            "test",
            str(examples / "ivr-menu"),
            str(examples / "sms-survey"),
            "--coverage-json",
            str(out),
        ]
    )
    assert code == 0
    document = json.loads(out.read_text())
    assert document["version"] == 1
    by_file = {tuple(r["files"]): r for r in document["rule_sets"]}
    menu = by_file[(str(examples / "ivr-menu" / "rules.yaml"),)]
    assert menu["summary"] == "coverage: rules 0/0, states 5/5 (100%), transitions 6/6 (100%)"
    dialogue = menu["dialogues"]["main-menu"]
    assert sorted(dialogue["states"]) == sorted(dialogue["hit_states"])
    assert dialogue["missing"] == []
    survey = by_file[(str(examples / "sms-survey" / "rules.yaml"),)]
    assert survey["rules"] == ["survey-join"]
    assert survey["hit_rules"] == ["survey-join"]
    assert "comment-reminder" in survey["dialogues"]["survey"]["states"]
    assert not list(out.parent.glob("*.partial"))


async def test_coverage_json_lists_what_was_missed(tmp_path: Path) -> None:
    from responder.transcripts.report import coverage_document

    write(
        tmp_path / "rules.yaml",
        """
        dialogues:
          - name: d
            mode: sms
            start: {on: sms.received, when: {text: {keyword: [go]}}}
            states:
              one: {say: One, on: [{text: {keyword: [next]}, goto: two}]}
              two: {say: Two, end: true}
        """,
    )
    write(tmp_path / "d.test.yaml", "tests: [{name: go, steps: [{sms: go}]}]\n")
    results, _ = await run_all([tmp_path])
    (rule_set,) = coverage_document(results)["rule_sets"]
    dialogue = rule_set["dialogues"]["d"]
    assert dialogue["hit_states"] == ["one"]
    assert dialogue["missing"] == ["state d.two", "transition d: one -> two (on[0])"]
