"""The coverage of the last ``responder test --coverage-json FILE`` run, matched to the
loaded dialogues by the rule files they come from."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from responder.dialogues.model import Dialogue


@dataclass(frozen=True, slots=True)
class DialogueCoverage:
    summary: str  # of the whole rule set the dialogue was tested in
    states: frozenset[str]
    hit_states: frozenset[str]
    missing: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Report:
    """What the file says, or why it cannot be read (``problem``)."""

    path: str
    time: float | None = None
    rule_sets: tuple[dict[str, Any], ...] = ()
    problem: str | None = None
    summaries: tuple[str, ...] = field(default=())

    def of(self, dialogue: Dialogue) -> DialogueCoverage | None:
        """The coverage of ``dialogue`` in the rule set that holds its file, if tested."""
        source = os.path.abspath(dialogue.file)
        for rule_set in self.rule_sets:
            entry = rule_set.get("dialogues", {}).get(dialogue.name)
            if entry is None or source not in rule_set.get("files", ()):
                continue
            return DialogueCoverage(
                str(rule_set.get("summary", "")),
                frozenset(entry.get("states", ())),
                frozenset(entry.get("hit_states", ())),
                tuple(entry.get("missing", ())),
            )
        return None

    def rule_hit(self, name: str, file: str) -> bool | None:
        """Whether the tests matched rule ``name`` of ``file``; None when they did not load it."""
        source = os.path.abspath(file)
        for rule_set in self.rule_sets:
            if source in rule_set.get("files", ()) and name in rule_set.get("rules", ()):
                return name in rule_set.get("hit_rules", ())
        return None


def read(path: str) -> Report | None:
    """The report at ``path``; None when there is none (no test run written yet)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        return Report(path, problem=f"cannot read: {exc.strerror}")
    try:
        data = json.loads(text)
        rule_sets = tuple(r for r in data["rule_sets"] if isinstance(r, dict))
        when = float(data["time"])
    except (ValueError, KeyError, TypeError):
        return Report(path, problem="not a coverage file of responder test --coverage-json")
    summaries = tuple(
        f"{', '.join(_shown(f) for f in r.get('files', ()))}: {r.get('summary', '')}"
        for r in rule_sets
    )
    return Report(path, when, rule_sets, summaries=summaries)


def _shown(path: str) -> str:
    """A rule file's path, relative to the working directory when it is under it."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative
