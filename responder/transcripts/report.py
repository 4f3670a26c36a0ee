"""``responder test`` output: a line per failure with file:line, coverage per file and in
total, and optionally JUnit XML for CI."""

from __future__ import annotations

import json
import os
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Final

from responder.errors import Problem
from responder.transcripts.coverage import Coverage, summary
from responder.transcripts.run import FileResult

COVERAGE_VERSION: Final = 1


def by_rule_set(results: Sequence[FileResult]) -> dict[tuple[str, ...], Coverage]:
    """The coverage of each distinct rule set: files that test the same rules add up."""
    by_rules: dict[tuple[str, ...], Coverage] = {}
    for result in results:
        if result.coverage is None:
            continue
        seen = by_rules.get(result.rules_key)
        if seen is None:
            seen = by_rules[result.rules_key] = Coverage(
                set(result.coverage.rules),
                set(result.coverage.states),
                set(result.coverage.transitions),
            )
        seen.merge(result.coverage)
    return by_rules


def coverage_document(results: Sequence[FileResult]) -> dict[str, Any]:
    """The coverage of a run as JSON data, one entry per rule set (what the console reads)."""
    rule_sets = []
    for files, coverage in by_rule_set(results).items():
        dialogues: dict[str, dict[str, list[str]]] = {}
        for dialogue, state in sorted(coverage.states):
            entry = dialogues.setdefault(dialogue, {"states": [], "hit_states": [], "missing": []})
            entry["states"].append(state)
            if (dialogue, state) in coverage.hit_states:
                entry["hit_states"].append(state)
        for line in coverage.missing():
            kind, _, rest = line.partition(" ")
            name = rest.split(":", 1)[0] if kind == "transition" else rest.split(".", 1)[0]
            if kind != "rule" and name in dialogues:
                dialogues[name]["missing"].append(line)
        rule_sets.append(
            {
                "files": list(files),
                "summary": coverage.summary(),
                "rules": sorted(coverage.rules),
                "hit_rules": sorted(coverage.hit_rules),
                "dialogues": dialogues,
            }
        )
    return {"version": COVERAGE_VERSION, "time": time.time(), "rule_sets": rule_sets}


def write_coverage(results: Sequence[FileResult], path: Path) -> None:
    """Write ``coverage_document`` to ``path`` whole (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(coverage_document(results), indent=1), encoding="utf-8")
    os.replace(partial, path)


def total_coverage(results: Sequence[FileResult]) -> Coverage:
    """Coverage over every distinct rule set: files that test the same rules add up."""
    total = Coverage()
    for key, coverage in by_rule_set(results).items():
        prefix = "\0".join(key) + "\0"
        total.rules |= {prefix + r for r in coverage.rules}
        total.hit_rules |= {prefix + r for r in coverage.hit_rules}
        total.states |= {(prefix + d, s) for d, s in coverage.states}
        total.hit_states |= {(prefix + d, s) for d, s in coverage.hit_states}
        total.transitions |= {(prefix + d, s, t, e) for d, s, t, e in coverage.transitions}
        total.hit_transitions |= {(prefix + d, s, t, e) for d, s, t, e in coverage.hit_transitions}
    return total


def write_text(
    results: Sequence[FileResult], usage: Sequence[Problem], out: IO[str], verbose: bool
) -> None:
    for problem in usage:
        out.write(f"{problem}\n")
    for result in results:
        out.write(f"{result.file}\n")
        for problem in result.problems:
            out.write(f"  error: {problem}\n")
        for case in result.cases:
            failure = case.failure
            if failure is None:
                if verbose:
                    out.write(f"  ok    {case.name}\n")
                continue
            out.write(f"  FAIL  {case.name}\n")
            for message in failure.messages:
                out.write(
                    f"    {result.file}:{failure.line}: step {failure.step} "
                    f"({failure.what}): {message}\n"
                )
        if result.cases:
            passed = len(result.cases) - result.failed
            out.write(f"  {passed} passed, {result.failed} failed\n")
        if result.coverage is not None:
            out.write(f"  {result.coverage.summary()}\n")
            missing = result.coverage.missing()
            if missing:
                out.write("  not covered:\n")
                out.writelines(f"    {item}\n" for item in missing)
    cases = sum(len(r.cases) for r in results)
    failed = sum(r.failed for r in results)
    broken = len(usage) + sum(len(r.problems) for r in results)
    tail = f", {broken} error(s)" if broken else ""
    out.write(f"total: {cases - failed} passed, {failed} failed{tail}\n")
    out.write(f"total {summary(total_coverage(results).counts())}\n")


def write_junit(results: Sequence[FileResult], usage: Sequence[Problem], path: Path) -> None:
    root = ET.Element("testsuites", name="responder test")
    total_tests = total_failures = total_errors = 0
    for result in results:
        suite = ET.SubElement(root, "testsuite", name=result.file)
        errors = 0
        for problem in result.problems:
            case = ET.SubElement(suite, "testcase", classname=result.file, name="load")
            error = ET.SubElement(case, "error", message=problem.message)
            error.text = str(problem)
            errors += 1
        seconds = 0.0
        for item in result.cases:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=result.file,
                name=item.name,
                file=result.file,
                line=str(item.line),
                time=f"{item.seconds:.3f}",
            )
            seconds += item.seconds
            if item.failure is not None:
                f = item.failure
                node = ET.SubElement(
                    case, "failure", message=f"step {f.step} ({f.what}): {f.messages[0]}"
                )
                node.text = "\n".join(
                    f"{result.file}:{f.line}: step {f.step} ({f.what}): {m}" for m in f.messages
                )
        if result.coverage is not None:
            out = ET.SubElement(suite, "system-out")
            out.text = result.coverage.summary()
        tests = len(result.cases) + errors
        suite.set("tests", str(tests))
        suite.set("failures", str(result.failed))
        suite.set("errors", str(errors))
        suite.set("time", f"{seconds:.3f}")
        total_tests += tests
        total_failures += result.failed
        total_errors += errors
    for problem in usage:
        suite = ET.SubElement(root, "testsuite", name=problem.file, tests="1", errors="1")
        case = ET.SubElement(suite, "testcase", classname=problem.file, name="load")
        ET.SubElement(case, "error", message=problem.message).text = str(problem)
        total_tests += 1
        total_errors += 1
    root.set("tests", str(total_tests))
    root.set("failures", str(total_failures))
    root.set("errors", str(total_errors))
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
