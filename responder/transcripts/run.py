"""Find transcript files, load them and their rules, and play every test."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from datetime import UTC
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from responder.errors import Problem, RulesError
from responder.rules.loader import load_rules
from responder.rules.model import RuleSet
from responder.rules.spec import INVALID, Ctx
from responder.rules.yamlnodes import load
from responder.templating.templates import Templates
from responder.transcripts import harness as h
from responder.transcripts.coverage import Coverage
from responder.transcripts.expect import differences
from responder.transcripts.language import ABSENT, TRANSCRIPT, Case, Given, Step, Transcript

SUFFIXES: Final = (".test.yaml", ".test.yml")
MAX_FILE_BYTES: Final = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Failure:
    line: int
    step: int  # 1-based
    what: str
    messages: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CaseResult:
    name: str
    line: int
    seconds: float
    failure: Failure | None = None


@dataclass(slots=True)
class FileResult:
    file: str
    problems: list[Problem] = field(default_factory=list)  # the file or its rules are broken
    cases: list[CaseResult] = field(default_factory=list)
    coverage: Coverage | None = None
    rules_key: tuple[str, ...] = ()

    @property
    def failed(self) -> int:
        return sum(1 for c in self.cases if c.failure is not None)


def is_transcript(path: Path) -> bool:
    return path.name.endswith(SUFFIXES)


def discover(paths: Iterable[str | Path]) -> tuple[list[Path], list[Problem]]:
    """Transcript files named on the command line, or found (recursively) in directories."""
    files: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if is_transcript(p) and p.is_file())
            if not found:
                problems.append(Problem(str(path), 0, "no *.test.yaml transcripts here"))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Problem(str(path), 0, "no such file or directory"))
    return files, problems


def parse_transcript(path: Path) -> tuple[Transcript | None, list[Problem]]:
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, [Problem(name, 0, f"cannot read: {exc.strerror}")]
    if len(raw) > MAX_FILE_BYTES:
        return None, [Problem(name, 0, f"file is larger than {MAX_FILE_BYTES} bytes")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [Problem(name, raw.count(b"\n", 0, exc.start) + 1, "not UTF-8 text")]
    tree, problems = load(text, name)
    if tree is None:
        return None, problems or [Problem(name, 1, "empty transcript (expected 'tests:')")]
    ctx = Ctx(name, Templates())
    parsed = TRANSCRIPT.parse(tree, 1, ctx, "")
    problems.extend(ctx.problems)
    if parsed is INVALID or problems:
        return None, problems
    assert isinstance(parsed, Transcript)
    return parsed, []


def _rule_paths(path: Path, transcript: Transcript) -> tuple[str, ...]:
    base = path.parent
    named = transcript.given.rules
    if not named:
        return (str(base),)
    return tuple(str(base / p) for p in named)


def _setup(file_given: Given, case_given: Given) -> h.Setup:
    given = replace(
        file_given,
        **{
            f.name: getattr(case_given, f.name)
            for f in fields(Given)
            if getattr(case_given, f.name) is not None
        },
    )
    provider = given.provider or "textit"
    zone = given.timezone or ZoneInfo("UTC")
    start = given.start or h.DEFAULT_START
    return h.Setup(
        provider=provider,
        channel=given.channel or provider,
        contact=given.contact or h.DEFAULT_CONTACT,
        contact_name=given.contact_name,
        number=given.number or h.DEFAULT_NUMBER,
        start=start.replace(tzinfo=zone).astimezone(UTC),
        zone=zone,
    )


def prepare(path: Path) -> tuple[FileResult, Transcript | None, RuleSet | None]:
    """Read a transcript and load its rules; the result lists the problems when it cannot."""
    result = FileResult(str(path))
    transcript, problems = parse_transcript(path)
    if transcript is None:
        result.problems = problems
        return result, None, None
    if any(case.given.rules for case in transcript.tests):
        line = next(case.line for case in transcript.tests if case.given.rules)
        result.problems = [Problem(str(path), line, "rules: belongs in the file's given")]
        return result, None, None
    try:
        ruleset = load_rules(_rule_paths(path, transcript))
    except RulesError as exc:
        result.problems = list(exc.problems)
        return result, None, None
    # Files that test the same rules add up to one total.
    result.rules_key = tuple(os.path.abspath(f) for f in ruleset.files)
    result.coverage = Coverage.of(ruleset)
    return result, transcript, ruleset


async def run_file(path: Path) -> FileResult:
    result, transcript, ruleset = prepare(path)
    if transcript is None or ruleset is None or result.coverage is None:
        return result
    for case in transcript.tests:
        setup = _setup(transcript.given, case.given)
        result.cases.append(await _run_case(ruleset, setup, case, result.coverage))
    return result


async def _run_case(ruleset: RuleSet, setup: h.Setup, case: Case, coverage: Coverage) -> CaseResult:
    began = time.perf_counter()
    harness = h.Harness(ruleset, setup)
    await harness.open()
    try:
        for index, step in enumerate(case.steps, 1):
            try:
                seen = await play(harness, step)
            except h.StepFailed as exc:
                messages: list[str] = [str(exc)]
            else:
                coverage.saw(seen.matched, seen.visited, seen.moves)
                conversation = await harness.conversation_now()
                messages = differences(step.expect, seen, conversation)
                if messages and setup.provider == "hoiio" and _expects_reply(step):
                    messages.append(
                        "(Hoiio ignores webhook answers: replies go out as SMS, "
                        "expect them with calls: [{sms: ...}])"
                    )
            if messages:
                failure = Failure(step.line, index, step.describe(), tuple(messages))
                return CaseResult(case.name, case.line, time.perf_counter() - began, failure)
    finally:
        await harness.close()
    return CaseResult(case.name, case.line, time.perf_counter() - began)


def _expects_reply(step: Step) -> bool:
    expect = step.expect
    return expect is not None and expect.reply is not ABSENT and expect.reply is not None


async def play(harness: h.Harness, step: Step) -> h.Observation:
    """Play one step on the harness: the webhook it stands for, or a move of the clock."""
    setup = harness.setup
    sender = step.sender or setup.contact
    name = step.contact_name or setup.contact_name
    action, value = step.action, step.value
    if action == "sms":
        return await harness.sms(str(value), sender, name)
    if action == "call":
        return await harness.incoming_call(value == "missed", sender, name)
    if action == "press":
        return await harness.ivr_result("gather", {"digits": str(value)})
    if action == "record":
        url = value if isinstance(value, str) else "https://recordings.test/1.mp3"
        return await harness.ivr_result("record", {"record_url": url})
    if action == "transfer":
        return await harness.ivr_result("transfer", {"transfer_status": str(value)})
    if action == "dial":
        return await harness.ivr_result("dial", {"dial_status": str(value)})
    if action == "played":
        return await harness.ivr_result("play", {})
    if action == "hangup":
        return await harness.hangup()
    if action == "flow":
        return await harness.flow(value, sender, name)
    if action == "webhook":
        return await harness.webhook(value)
    if action == "repeat":
        return await harness.repeat()
    if action == "wait":
        return await harness.advance(harness.clock.now + float(value))
    if action == "at":
        return await harness.advance(harness.local_timestamp(value))
    return h.Observation()  # "check": the expectation looks at the state as it is


async def run_all(paths: Iterable[str | Path]) -> tuple[list[FileResult], list[Problem]]:
    """Every transcript under ``paths``, played; plus the problems finding them."""
    files, usage = discover(paths)
    results = [await run_file(path) for path in files]
    return results, usage


def exit_code(results: Iterable[FileResult], usage: list[Problem]) -> int:
    """0 all passed, 1 a test failed, 2 a transcript or its rules could not be used."""
    results = list(results)
    if usage or any(r.problems for r in results) or not results:
        return 2
    return 1 if any(r.failed for r in results) else 0
