"""The ``compliance:`` block: defaults, every key, and file:line problems at check time."""

from __future__ import annotations

import textwrap
from datetime import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from responder.errors import RulesError
from responder.matching.compliance import (
    DEFAULT_HELP,
    DEFAULT_START,
    DEFAULT_START_REPLY,
    DEFAULT_STOP,
    DEFAULT_STOP_REPLY,
    Compliance,
    QuietHours,
    Window,
)
from responder.rules.file import FILE
from responder.rules.loader import load_rules
from responder.rules.terms import TEXTIT_REPLY_MAX

RULE = """
rules:
  - name: hello
    on: sms.received
    reply: {text: hi}
"""


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def load(tmp_path: Path, text: str) -> Compliance:
    write(tmp_path, "rules.yaml", text)
    return load_rules([tmp_path]).compliance


def problems(tmp_path: Path, text: str) -> list[str]:
    write(tmp_path, "rules.yaml", text)
    with pytest.raises(RulesError) as exc:
        load_rules([tmp_path])
    return [f"{p.line}: {p.message}" for p in exc.value.problems]


def test_without_a_block_the_defaults_hold(tmp_path: Path) -> None:
    compliance = load(tmp_path, RULE)
    assert compliance == Compliance()
    assert compliance.stop_words == frozenset(DEFAULT_STOP)
    assert compliance.start_words == frozenset(DEFAULT_START)
    assert compliance.help_words == frozenset(DEFAULT_HELP)
    assert (compliance.stop_reply, compliance.start_reply) == (
        DEFAULT_STOP_REPLY,
        DEFAULT_START_REPLY,
    )
    assert compliance.help_reply is None
    assert compliance.quiet_hours is None
    assert compliance.cap is None
    assert compliance.loop_guard == Window(10, 60.0)


def test_every_key(tmp_path: Path) -> None:
    compliance = load(
        tmp_path,
        RULE
        + textwrap.dedent(
            """
        compliance:
          stop: {words: [STOP, Arrêt, "Baja!"], reply: "Bye."}
          start: {words: [start], reply: "Welcome back."}
          help: {words: [help, aide], reply: "Call +6561234567."}
          quiet_hours: {timezone: Asia/Singapore, hours: "21:00-08:00", action: drop}
          cap: {per_contact: 3, every: 1d}
          loop_guard: {replies: 5, within: 2m}
        """
        ),
    )
    assert compliance.stop_words == frozenset({"stop", "arrêt", "baja"})
    assert compliance.start_words == frozenset({"start"})
    assert compliance.help_words == frozenset({"help", "aide"})
    assert (compliance.stop_reply, compliance.start_reply, compliance.help_reply) == (
        "Bye.",
        "Welcome back.",
        "Call +6561234567.",
    )
    assert compliance.quiet_hours == QuietHours(
        ZoneInfo("Asia/Singapore"), time(21, 0), time(8, 0), "drop"
    )
    assert compliance.cap == Window(3, 86400.0)
    assert compliance.loop_guard == Window(5, 120.0)
    assert compliance.file.endswith("rules.yaml")
    assert compliance.line == 8


def test_partial_keys_keep_the_other_defaults(tmp_path: Path) -> None:
    compliance = load(
        tmp_path,
        RULE
        + textwrap.dedent(
            """
        compliance:
          stop: {reply: "Unsubscribed."}
          help: {reply: "Text HOURS for our hours."}
          quiet_hours: {timezone: Europe/London, hours: "22:00-07:30"}
        """
        ),
    )
    assert compliance.stop_words == frozenset(DEFAULT_STOP)
    assert compliance.stop_reply == "Unsubscribed."
    assert compliance.start_reply == DEFAULT_START_REPLY
    assert compliance.help_words == frozenset(DEFAULT_HELP)
    assert compliance.help_reply == "Text HOURS for our hours."
    assert compliance.quiet_hours is not None
    assert compliance.quiet_hours.action == "defer"
    assert compliance.loop_guard == Window(10, 60.0)


def test_a_file_with_only_a_compliance_block_is_a_rule_file(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", RULE)
    write(tmp_path, "b.yaml", "compliance: {cap: {per_contact: 2, every: 6h}}\n")
    assert load_rules([tmp_path]).compliance.cap == Window(2, 21600.0)


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ("stop: {words: [stop now]}", "8: compliance.stop.words: 'stop now' is not a single word"),
        ("stop: {words: []}", "8: compliance.stop.words: needs at least 1 item(s)"),
        (
            "start: {words: [stop]}",
            "8: compliance.start.words: 'stop' is also a stop word",
        ),
        ("help: {words: [START]}", "8: compliance.help.words: 'start' is also a start word"),
        (
            "quiet_hours: {timezone: Mars/Olympus, hours: '21:00-08:00'}",
            "8: compliance.quiet_hours.timezone: unknown timezone 'Mars/Olympus'",
        ),
        (
            "quiet_hours: {timezone: UTC, hours: '25:00-08:00'}",
            "8: compliance.quiet_hours.hours: '25:00-08:00' is not a window like 09:00-18:00",
        ),
        (
            "quiet_hours: {timezone: UTC}",
            "8: compliance.quiet_hours: missing required key 'hours'",
        ),
        (
            "quiet_hours: {timezone: UTC, hours: '21:00-08:00', action: delay}",
            "8: compliance.quiet_hours.action: 'delay' is not one of defer, drop",
        ),
        ("cap: {per_contact: 0, every: 6h}", "8: compliance.cap.per_contact: must be at least 1"),
        (
            "cap: {per_contact: 1, every: soon}",
            "8: compliance.cap.every: 'soon' is not a duration (e.g. 30s, 15m, 6h, 1d)",
        ),
        (
            "loop_guard: {replies: 3}",
            "8: compliance.loop_guard: missing required key 'within'",
        ),
        ("stopp: {words: [x]}", "8: compliance: unknown key 'stopp' (did you mean 'stop'?)"),
    ],
)
def test_problems_have_file_lines(tmp_path: Path, block: str, expected: str) -> None:
    found = problems(tmp_path, RULE + "\ncompliance:\n  " + block + "\n")
    assert expected in found, found


def test_a_confirmation_longer_than_a_textit_reply_is_refused(tmp_path: Path) -> None:
    long = "x" * (TEXTIT_REPLY_MAX + 1)
    found = problems(tmp_path, RULE + f"\ncompliance:\n  help: {{reply: {long}}}\n")
    assert found == [f"8: compliance.help.reply: longer than {TEXTIT_REPLY_MAX} characters"]


def test_a_second_block_names_the_first(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", RULE + "compliance: {cap: {per_contact: 1, every: 1h}}\n")
    write(tmp_path, "b.yaml", "\n\ncompliance: {cap: {per_contact: 2, every: 1h}}\n")
    with pytest.raises(RulesError) as exc:
        load_rules([tmp_path])
    [problem] = exc.value.problems
    assert problem.file.endswith("b.yaml")
    assert problem.line == 3
    assert "a second 'compliance:' block (first at " in problem.message
    assert "a.yaml:6" in problem.message, problem.message


def test_schema_documents_the_block() -> None:
    block = FILE.schema()["properties"]["compliance"]
    assert set(block["properties"]) == {"stop", "start", "help", "quiet_hours", "cap", "loop_guard"}
    assert block["additionalProperties"] is False
    quiet = block["properties"]["quiet_hours"]
    assert quiet["required"] == ["timezone", "hours"]
    assert quiet["properties"]["action"] == {
        "enum": ["defer", "drop"],
        "description": "Hold messages until the window ends, or do not send them.",
    }


def test_the_docs_example_loads(tmp_path: Path) -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "compliance.md").read_text()
    section = page.split("# Compliance\n", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    compliance = load(tmp_path, RULE + example)
    assert compliance.help_reply is not None
    assert compliance.quiet_hours is not None
    assert compliance.quiet_hours.action == "defer"
    assert compliance.cap == Window(5, 86400.0)
    assert compliance.loop_guard == Window(10, 60.0)
