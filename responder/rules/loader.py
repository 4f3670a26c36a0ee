"""Load a rule directory: every file validated, every problem reported, then one frozen RuleSet."""

from __future__ import annotations

import dataclasses
import difflib
import gc
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from responder.dialogues.model import Dialogue
from responder.errors import Problem, RulesError
from responder.matching.calendars import Calendar
from responder.matching.compliance import Compliance
from responder.rules.file import FILE
from responder.rules.lint import lint
from responder.rules.model import Rule, RuleSet
from responder.rules.spec import INVALID, Ctx
from responder.rules.yamlnodes import load
from responder.templating.templates import Templates

SUFFIXES = (".yaml", ".yml")
# Transcript tests (``responder test``) live beside the rules they test, and are not rules.
TRANSCRIPT_SUFFIXES = (".test.yaml", ".test.yml")
# Every limit has a number: a rule file larger than this is refused unread.
MAX_FILE_BYTES = 2 * 1024 * 1024


def rule_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[Problem]]:
    """Expand files and directories (recursively, sorted) into YAML rule files."""
    files: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            candidates = [
                p
                for p in path.rglob("*")
                if p.suffix in SUFFIXES and not p.name.endswith(TRANSCRIPT_SUFFIXES)
            ]
            found = sorted(p for p in candidates if p.is_file())
            # A link to a file that is gone would otherwise drop its rules without a word.
            problems.extend(
                Problem(str(p), 0, "broken link: the file it points to does not exist")
                for p in candidates
                if p.is_symlink() and not p.exists()
            )
            unreadable = _unreadable_directories(path)
            problems.extend(unreadable)
            if not found and not unreadable:
                problems.append(Problem(str(path), 0, "no .yaml or .yml rule files here"))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        elif path.exists():
            problems.append(Problem(str(path), 0, "not a regular file or directory"))
        else:
            problems.append(Problem(str(path), 0, "no such file or directory"))
    return files, problems


def _unreadable_directories(root: Path) -> list[Problem]:
    """Directories under ``root`` that cannot be listed (``rglob`` skips them in silence)."""
    problems: list[Problem] = []

    def note(exc: OSError) -> None:
        where = exc.filename or str(root)
        problems.append(Problem(str(where), 0, f"cannot read this directory: {exc.strerror}"))

    for _ in os.walk(root, onerror=note):
        pass
    return problems


def load_rules(paths: Iterable[str | Path], templates: Templates | None = None) -> RuleSet:
    """Validate and compile every rule file under ``paths``; raise RulesError listing all
    problems of all files when anything is wrong."""
    # Loading makes millions of objects and almost no garbage: the collector's passes over
    # them, triggered by allocation counts alone, took 40 % of a 10,000-rule load.
    with collector_paused():
        return _load_rules(paths, templates or Templates())


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the block (when it was on); reference counting
    still frees everything else at once."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def _load_rules(paths: Iterable[str | Path], templates: Templates) -> RuleSet:
    files, problems = rule_files(paths)
    rules: list[Rule] = []
    first_seen: dict[str, Rule] = {}
    dialogues: dict[str, Dialogue] = {}
    compliance: Compliance | None = None
    calendars: dict[str, Calendar] = {}
    calendar_refs: list[tuple[str, str, int, str]] = []  # file, name, line, path
    for path in files:
        name = str(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            problems.append(Problem(name, 0, f"cannot read: {exc.strerror}"))
            continue
        if len(raw) > MAX_FILE_BYTES:
            problems.append(Problem(name, 0, f"file is larger than {MAX_FILE_BYTES} bytes"))
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            problems.append(Problem(name, line, f"not UTF-8 text (byte {exc.start})"))
            continue
        tree, syntax = load(text, name)
        problems.extend(syntax)
        if tree is None:
            if not syntax:
                problems.append(Problem(name, 1, "empty rule file (expected a 'rules:' list)"))
            continue
        ctx = Ctx(name, templates)
        parsed = FILE.parse(tree, 1, ctx, "")
        problems.extend(ctx.problems)
        calendar_refs.extend((name, ref, line, where) for ref, line, where in ctx.calendar_refs)
        if parsed is INVALID:
            continue
        if all(parsed.get(k) is None for k in ("rules", "dialogues", "compliance", "calendars")):
            problems.append(Problem(name, 1, "expected a 'rules:' or 'dialogues:' list"))
            continue
        for calendar in parsed.get("calendars") or ():
            first = calendars.get(calendar.name)
            if first is not None:
                problems.append(
                    Problem(
                        name,
                        calendar.line,
                        f"duplicate calendar name {calendar.name!r} "
                        f"(first at {first.file}:{first.line})",
                    )
                )
                continue
            calendars[calendar.name] = calendar
        found = parsed.get("compliance")
        if found is not None:
            if compliance is not None:
                problems.append(
                    Problem(
                        name,
                        found.line,
                        "a second 'compliance:' block (first "
                        f"at {compliance.file}:{compliance.line})",
                    )
                )
            else:
                compliance = found
        for dialogue in parsed.get("dialogues") or ():
            seen = dialogues.get(dialogue.name)
            if seen is not None:
                problems.append(
                    Problem(
                        name,
                        dialogue.line,
                        f"duplicate dialogue name "
                        f"{dialogue.name!r} (first at {seen.file}:{seen.line})",
                    )
                )
                continue
            dialogues[dialogue.name] = dialogue
        for rule in parsed.get("rules") or ():
            earlier = first_seen.get(rule.name)
            if earlier is not None:
                problems.append(
                    Problem(
                        name,
                        rule.line,
                        f"duplicate rule name {rule.name!r} "
                        f"(first at {earlier.file}:{earlier.line})",
                    )
                )
                continue
            first_seen[rule.name] = rule
            rules.append(dataclasses.replace(rule, order=len(rules)))
    for rule in rules:
        if rule.start is not None and rule.start not in dialogues:
            problems.append(
                Problem(
                    rule.file,
                    rule.line,
                    f"rule {rule.name!r} starts unknown dialogue {rule.start!r}",
                )
            )
    problems.extend(_unknown_calendars(calendar_refs, calendars))
    if problems:
        raise RulesError(problems)
    ruleset = RuleSet.build(
        rules,
        [str(f) for f in files],
        list(dialogues.values()),
        compliance,
        list(calendars.values()),
    )
    return dataclasses.replace(ruleset, warnings=tuple(lint(ruleset)))


def _unknown_calendars(
    refs: list[tuple[str, str, int, str]], calendars: dict[str, Calendar]
) -> list[Problem]:
    problems = []
    for file, name, line, path in refs:
        if name in calendars:
            continue
        close = difflib.get_close_matches(name, sorted(calendars), n=1)
        if close:
            hint = f" (did you mean {close[0]!r}?)"
        elif calendars:
            hint = f" (known: {', '.join(sorted(calendars))})"
        else:
            hint = " (no 'calendars:' block defines it)"
        problems.append(Problem(file, line, f"{path}: unknown calendar {name!r}{hint}"))
    return problems
