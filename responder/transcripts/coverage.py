"""Which rules matched, and which dialogue states and transitions were taken, out of all."""

from __future__ import annotations

from dataclasses import dataclass, field

from responder.dialogues.model import Dialogue, edges
from responder.rules.model import RuleSet

Transition = tuple[str, str, str, str]  # dialogue, source, trigger, destination
ANYWHERE = "*"  # the source of a dialogue's any: transitions


@dataclass(slots=True)
class Coverage:
    rules: set[str] = field(default_factory=set)
    states: set[tuple[str, str]] = field(default_factory=set)
    transitions: set[Transition] = field(default_factory=set)
    hit_rules: set[str] = field(default_factory=set)
    hit_states: set[tuple[str, str]] = field(default_factory=set)
    hit_transitions: set[Transition] = field(default_factory=set)

    @classmethod
    def of(cls, ruleset: RuleSet) -> Coverage:
        """Everything there is to cover in ``ruleset``."""
        coverage = cls(rules={rule.name for rule in ruleset.rules})
        for dialogue in ruleset.dialogues.values():
            name = dialogue.name
            coverage.states.update((name, state) for state in dialogue.states)
            all_edges = edges(dialogue.states, dialogue.anywhere)
            coverage.transitions.update(
                (name, _source(s, t), t, d)
                for s, t, d in all_edges
                if _reachable(dialogue, all_edges, s, t)
            )
        return coverage

    def saw(
        self,
        matched: list[str],
        visited: set[tuple[str, str]],
        moves: set[Transition] | None = None,
    ) -> None:
        """Count what one step covered: the rules it matched, the states its conversation
        has visited and the moves its dialogue's machine made."""
        self.hit_rules.update(name for name in matched if name in self.rules)
        self.hit_states.update(visited & self.states)
        for dialogue, source, trigger, destination in moves or ():
            self.hit_transitions.add((dialogue, _source(source, trigger), trigger, destination))
            self.hit_states.add((dialogue, destination))

    def merge(self, other: Coverage) -> None:
        """Add what ``other`` (a run over the same rules) covered."""
        self.hit_rules |= other.hit_rules
        self.hit_states |= other.hit_states
        self.hit_transitions |= other.hit_transitions

    def counts(self) -> dict[str, tuple[int, int]]:
        return {
            "rules": (len(self.hit_rules), len(self.rules)),
            "states": (len(self.hit_states), len(self.states)),
            "transitions": (len(self.hit_transitions), len(self.transitions)),
        }

    def summary(self) -> str:
        return summary(self.counts())

    def missing(self) -> list[str]:
        out = [f"rule {name}" for name in sorted(self.rules - self.hit_rules)]
        out += [f"state {d}.{s}" for d, s in sorted(self.states - self.hit_states)]
        out += [
            f"transition {d}: {'any state' if s == ANYWHERE else s} -> {dest} ({_how(t)})"
            for d, s, t, dest in sorted(self.transitions - self.hit_transitions)
        ]
        return out


def _source(source: str, trigger: str) -> str:
    """An ``any:`` transition is one transition, whichever state it is taken from: ``*``."""
    return ANYWHERE if trigger.startswith("any:") else source


def _reachable(
    dialogue: Dialogue, all_edges: list[tuple[str, str, str]], source: str, trigger: str
) -> bool:
    """Whether an edge can be taken at all (coverage leaves out the ones that cannot).

    A gather's "no key matched" edge cannot when an ``otherwise`` catches all. An "after
    max_visits" edge from S to X's ``then`` needs X entered before, so S must be reachable
    from X (X itself included); the machine still has the edge, a conversation never takes it.
    """
    parts = trigger.split(":")
    if parts[1:2] == ["repeat"] and any(t.otherwise for t in dialogue.states[source].on):
        return False
    if parts[-1] != "then":
        return True
    base = ":".join(parts[:-1])
    target = next((d for s, t, d in all_edges if s == source and t == base), None)
    return target is None or source in _from(target, all_edges)


def _from(start: str, all_edges: list[tuple[str, str, str]]) -> set[str]:
    """Every state reachable from ``start``, ``start`` included."""
    seen, todo = {start}, [start]
    while todo:
        here = todo.pop()
        for s, _, d in all_edges:
            if s == here and d not in seen:
                seen.add(d)
                todo.append(d)
    return seen


def summary(counts: dict[str, tuple[int, int]]) -> str:
    parts = []
    for what, (hit, total) in counts.items():
        share = f" ({100 * hit // total}%)" if total else ""
        parts.append(f"{what} {hit}/{total}{share}")
    return "coverage: " + ", ".join(parts)


def _how(trigger: str) -> str:
    """A trigger (``menu:2:then``) in words."""
    if trigger.startswith("any:"):
        index, *rest = trigger.split(":")[1:]
        return ", ".join([f"any[{index}]", *("after max_visits" for _ in rest)])
    parts = trigger.split(":")[1:]
    words = {
        "next": "next",
        "timeout": "wait timeout",
        "repeat": "no key matched",
        "failure": "transfer failed",
        "then": "after max_visits",
    }
    out = [f"on[{p}]" if p.isdigit() else words.get(p, p) for p in parts]
    return ", ".join(out)
