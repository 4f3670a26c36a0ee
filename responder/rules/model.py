"""The compiled, frozen rule model: what the loader builds and the engine runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from responder.actions.model import Hangup, Http, Reply, Sms
from responder.dialogues.model import Dialogue
from responder.errors import Problem
from responder.events import Event
from responder.matching.calendars import Calendar
from responder.matching.compliance import Compliance
from responder.matching.conditions import AllOf
from responder.matching.index import KindIndex, index_kind


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``count`` firings per contact within ``every`` seconds."""

    count: int
    every: float


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    file: str
    line: int
    order: int
    kinds: frozenset[str]
    when: AllOf
    priority: int = 0
    cont: bool = False
    limit: Limit | None = None
    reply: Reply | None = None
    hangup: Hangup | None = None
    sms: tuple[Sms, ...] = ()
    http: tuple[Http, ...] = ()
    start: str | None = None  # a dialogue to start
    description: str | None = None


@dataclass(frozen=True, slots=True)
class RuleSet:
    """All rules of a rule directory, in evaluation order, indexed by event kind."""

    rules: tuple[Rule, ...]
    files: tuple[str, ...]
    by_kind: Mapping[str, tuple[Rule, ...]]
    dialogues: Mapping[str, Dialogue] = field(default_factory=dict)
    starts: Mapping[str, tuple[Dialogue, ...]] = field(default_factory=dict)
    compliance: Compliance = field(default_factory=Compliance)
    calendars: Mapping[str, Calendar] = field(default_factory=dict)
    index: Mapping[str, KindIndex[Rule]] = field(default_factory=dict)
    # What `check` warns about: rules that load but cannot do what they seem to say.
    warnings: tuple[Problem, ...] = ()

    @classmethod
    def build(
        cls,
        rules: list[Rule],
        files: list[str],
        dialogues: list[Dialogue] | None = None,
        compliance: Compliance | None = None,
        calendars: list[Calendar] | None = None,
    ) -> RuleSet:
        ordered = tuple(sorted(rules, key=lambda r: (-r.priority, r.order)))
        index: dict[str, list[Rule]] = {}
        for rule in ordered:
            for kind in rule.kinds:
                index.setdefault(kind, []).append(rule)
        by_kind = {k: tuple(v) for k, v in index.items()}
        by_name = {d.name: d for d in dialogues or ()}
        starts: dict[str, list[Dialogue]] = {}
        startable = [d for d in dialogues or () if d.start is not None]
        ranked = sorted(
            enumerate(startable), key=lambda p: (-(p[1].start.priority if p[1].start else 0), p[0])
        )
        for _, dialogue in ranked:
            assert dialogue.start is not None
            for kind in dialogue.start.kinds:
                starts.setdefault(kind, []).append(dialogue)
        return cls(
            ordered,
            tuple(files),
            by_kind,
            by_name,
            {k: tuple(v) for k, v in starts.items()},
            compliance or Compliance(),
            {c.name: c for c in calendars or ()},
            {k: index_kind(v) for k, v in by_kind.items()},
        )

    def candidates(self, kind: str) -> tuple[Rule, ...]:
        """Every rule of ``kind``, in evaluation order."""
        return self.by_kind.get(kind, ())

    def candidates_for(self, event: Event) -> tuple[Rule, ...]:
        """The rules of the event's kind that could match it, in evaluation order: those
        whose indexed condition (channel, keyword, whole text, digits, regex literal) holds,
        and those without one."""
        found = self.index.get(event.kind)
        if found is None:
            return self.by_kind.get(event.kind, ())
        return found.candidates(event)
