"""`responder check`: every problem of every file, as ``file:line: message``, and exit codes."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from responder.cli import main

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "rules"
BROKEN = DATA / "broken"
VALID = DATA / "valid"

_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<message>.*)$")

# (file name, line, a substring of the message): the complete list for tests/data/rules/broken.
EXPECTED: list[tuple[str, int, str]] = [
    (
        "01_syntax.yaml",
        7,
        "YAML syntax error: while scanning a quoted scalar on line 5,"
        " found unexpected end of stream",
    ),
    ("02_unknown_keys.yaml", 5, "rules[0]: unknown key 'replly' (did you mean 'reply'?)"),
    ("02_unknown_keys.yaml", 10, "rules[1].when: unknown key 'txt' (did you mean 'text'?)"),
    ("02_unknown_keys.yaml", 16, "rules[2].reply: unknown key 'txet' (did you mean 'text'?)"),
    ("02_unknown_keys.yaml", 17, "unknown key 'ruels' (did you mean 'rules'?)"),
    ("03_types.yaml", 4, "rules[0].priority: expected an integer, got a string"),
    ("03_types.yaml", 8, "rules[1].continue: expected true or false, got a string"),
    ("03_types.yaml", 11, "rules[2].on[0]: 5 is not an event kind"),
    ("03_types.yaml", 14, "unknown event kind 'sms.recieved' (did you mean 'sms.received'?)"),
    ("03_types.yaml", 20, "rules[4].limit.every: '6 hours' is not a duration"),
    ("03_types.yaml", 24, "rules[5].limit.every: duration must be between 1s and"),
    ("03_types.yaml", 24, "rules[5].limit.per_contact: must be at least 1"),
    ("04_semantics.yaml", 6, "rules[0].when.text.regex: bad regex '(unclosed'"),
    ("04_semantics.yaml", 11, "rules[1].reply.text: template syntax error"),
    ("04_semantics.yaml", 15, "rules[2].reply.text: unknown variable 'customer_name'"),
    ("04_semantics.yaml", 16, "rule 'no-action' has no action (reply, hangup, sms, http, start)"),
    ("04_semantics.yaml", 21, "rules[4].reply.json: flow variables need a rule that is only"),
    ("04_semantics.yaml", 25, "rules[5].hangup: hangup needs a rule that is only on ivr.*"),
    ("05_time.yaml", 6, "rules[0].when.time.timezone: unknown timezone 'Mars/Olympus_Mons'"),
    ("05_time.yaml", 14, "rules[1].when.time.hours: '9am-6pm' is not a window"),
    ("05_time.yaml", 21, "rules[2].when.time.days: 'mon-fry' is not a day or range"),
    ("05_time.yaml", 27, "rules[3].when.time.timezone: unknown timezone 'Europe/Nowhere'"),
    ("05_time.yaml", 28, "rules[3].when.time.days: 'funday' is not a day"),
    ("05_time.yaml", 29, "rules[3].when.time.hours: '25:00-26:00' is not a window"),
    ("05_time.yaml", 30, "rules[3].when.time.dates[0]: '2024-02-30' is not a date"),
    (
        "07_dupes_b.yaml",
        2,
        "duplicate rule name 'shared-name' (first at {broken}/06_dupes_a.yaml:2)",
    ),
    ("07_dupes_b.yaml", 8, "duplicate key 'priority' (first on line 7)"),
    ("07_dupes_b.yaml", 12, "rules[2].reply.text: unknown variable 'nope'"),
    (
        "07_dupes_b.yaml",
        13,
        "duplicate rule name 'duplicate-keys' (first at {broken}/07_dupes_b.yaml:5)",
    ),
    ("07_dupes_b.yaml", 18, "'post' is not one of GET, POST, PUT, PATCH, DELETE (did you mean"),
    ("08_empty.yaml", 1, "empty rule file (expected a 'rules:' list)"),
    ("09_latin1.yaml", 4, "not UTF-8 text (byte 67)"),
    ("10_list.yaml", 1, "expected a mapping, got a list"),
    ("11_never_matches.yaml", 6, "'opening hours' is not a single word (use phrase:"),
    ("11_never_matches.yaml", 12, "rules[1].when.text.number: min 10 is greater than max 1"),
    ("11_never_matches.yaml", 17, "rules[2].when.time.hours: '09:00-09:00' is not a window"),
    ("11_never_matches.yaml", 21, "rules[3].limit.every: '1:30' is not a duration"),
    ("12_unsafe.yaml", 6, r"rules[0].when.text.regex: regex '^(\\w+\\s?)+$' refused: nested"),
    ("12_unsafe.yaml", 10, r"rules[1].when.values.answer.value.regex: regex '(\\d\\d|\\w\\w)"),
    ("12_unsafe.yaml", 14, "rules[2].when.text.regex: regex 'total: .*.*EUR' refused: adjacent q"),
    ("12_unsafe.yaml", 19, "rules[3].reply.text: access to private attribute '__globals__' is ref"),
    ("12_unsafe.yaml", 22, "rules[4].when.expr: access to private attribute '__class__' is refus"),
]


def run_check(capsys: pytest.CaptureFixture[str], *paths: str | Path) -> tuple[int, str, str]:
    code = main(["check", *(str(p) for p in paths)])
    out, err = capsys.readouterr()
    return code, out, err


def parse(out: str) -> list[tuple[str, int, str]]:
    """Every stdout line as (file, line, message); fails on a line of any other shape."""
    found = []
    for text in out.splitlines():
        match = _LINE.match(text)
        assert match, f"not a file:line: message line: {text!r}"
        found.append((match["file"], int(match["line"]), match["message"]))
    return found


def test_broken_directory_reports_every_problem(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_check(capsys, BROKEN)
    assert code == 1
    found = parse(out)
    # Paths are printed as given: under the directory that was checked.
    assert {Path(file).parent for file, _, _ in found} == {BROKEN}
    # Exactly the expected problems: same (file, line) pairs, as many of each.
    located = sorted((Path(file).name, line) for file, line, _ in found)
    assert located == sorted((name, line) for name, line, _ in EXPECTED)
    for name, line, fragment in EXPECTED:
        fragment = fragment.format(broken=BROKEN)
        messages = [m for f, n, m in found if Path(f).name == name and n == line]
        assert any(fragment in m for m in messages), (name, line, fragment, messages)
    assert err.strip() == f"{len(found)} problem(s) found"


def test_broken_files_only_files_without_problems_are_silent(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, out, _ = run_check(capsys, BROKEN)
    names = {Path(file).name for file, _, _ in parse(out)}
    assert "06_dupes_a.yaml" not in names  # the first of two same-named rules is fine
    assert names == {p.name for p in BROKEN.iterdir()} - {"06_dupes_a.yaml"}


def test_problems_are_printed_sorted_by_file_then_line(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_check(capsys, BROKEN)
    keys = [(file, line) for file, line, _ in parse(out)]
    assert keys == sorted(keys)


def test_one_broken_file_alone(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_check(capsys, BROKEN / "05_time.yaml")
    assert code == 1
    assert [line for _, line, _ in parse(out)] == [6, 14, 21, 27, 28, 29, 30]


def test_duplicate_names_need_both_files(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_check(capsys, BROKEN / "07_dupes_b.yaml")
    assert code == 1
    messages = [m for _, _, m in parse(out)]
    assert not any("'shared-name'" in m for m in messages)
    assert any("duplicate rule name 'duplicate-keys'" in m for m in messages)


def test_shipped_default_rules_are_valid(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_check(capsys, REPO / "rules")
    assert code == 0, out
    assert re.fullmatch(r"ok: \d+ rule\(s\) and \d+ dialogue\(s\) in \d+ file\(s\)\n", out)
    assert err == ""


def test_valid_directory(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_check(capsys, VALID)
    assert code == 0, out
    # README.md is not a rule file; flows/30_survey.yaml is found recursively; .yml counts.
    # The 'stop' rule is a trap (compliance answers STOP first): warned about, not refused.
    *warnings, last = out.splitlines()
    assert last == "ok: 6 rule(s) and 0 dialogue(s) in 3 file(s), 2 warning(s)"
    assert [w.split(": warning: ")[1][:29] for w in warnings] == [
        "rule 'stop' matches 'stop', a",
        "rule 'stop' matches 'unsubscr",
    ]
    assert err == ""


def test_several_valid_paths(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_check(capsys, VALID / "10_sms.yaml", VALID / "20_ivr.yml")
    assert code == 0
    assert out.endswith("ok: 5 rule(s) and 0 dialogue(s) in 2 file(s), 2 warning(s)\n")


def test_missing_path_is_reported(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    code, out, _ = run_check(capsys, VALID, missing)
    assert code == 1
    assert parse(out) == [(str(missing), 0, "no such file or directory")]


def test_directory_without_rule_files_is_reported(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("rules: []\n")
    code, out, _ = run_check(capsys, tmp_path)
    assert code == 1
    assert parse(out) == [(str(tmp_path), 0, "no .yaml or .yml rule files here")]


def test_same_name_in_valid_and_broken_sets(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "copy.yaml").write_text(
        "rules:\n  - name: stop\n    on: sms.received\n    reply: {text: again}\n"
    )
    code, out, _ = run_check(capsys, VALID, tmp_path)
    assert code == 1
    [(file, line, message)] = parse(out)
    assert (file, line) == (str(tmp_path / "copy.yaml"), 2)
    assert message == f"duplicate rule name 'stop' (first at {VALID / '10_sms.yaml'}:3)"


def test_check_needs_a_path(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["check"])
    assert exc.value.code == 2
    assert "PATH" in capsys.readouterr().err


def test_a_broken_link_in_a_rule_directory_is_reported(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "ok.yaml").write_text("rules: [{name: a, on: sms.received, reply: {text: hi}}]\n")
    (tmp_path / "gone.yaml").symlink_to(tmp_path / "moved-away.yaml")
    code, out, _ = run_check(capsys, tmp_path)
    assert code == 1
    assert parse(out) == [
        (str(tmp_path / "gone.yaml"), 0, "broken link: the file it points to does not exist")
    ]


def test_a_path_that_is_not_a_file_is_reported(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fifo = tmp_path / "rules.yaml"
    os.mkfifo(fifo)
    code, out, _ = run_check(capsys, fifo)
    assert code == 1
    assert parse(out) == [(str(fifo), 0, "not a regular file or directory")]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every directory")
def test_an_unreadable_directory_is_reported_not_skipped(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "ok.yaml").write_text("rules: [{name: a, on: sms.received, reply: {text: hi}}]\n")
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "more.yaml").write_text("rules: []\n")
    locked.chmod(0)
    try:
        code, out, _ = run_check(capsys, tmp_path)
    finally:
        locked.chmod(0o755)
    assert code == 1
    assert parse(out) == [(str(locked), 0, "cannot read this directory: Permission denied")]
