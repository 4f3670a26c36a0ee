"""``responder graph``: Mermaid state diagrams of the dialogues, drawn from the dialogue model.

Edges carry what takes them (keys, keywords, conditions, timeouts, failures), the start
arrow says what starts the dialogue and end arrows carry the outcome, so a diagram answers
"what happens when the caller presses 3" without reading the YAML.

The ``transitions`` package can draw Mermaid too, but from its machine, where our edges are
opaque triggers (``menu:0``, ``menu:2:then``) and the conditions live outside it; drawing
from the dialogue model gives the labels a reader needs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from responder.dialogues import model as m
from responder.matching import conditions as c
from responder.matching.conditions import CalendarCondition
from responder.rules.model import RuleSet

MAX_LABEL: Final = 60  # characters of an edge or state label; longer ones are cut with "..."
# Marks a diagram may put on states (``diagram(..., marks=)``), as Mermaid class styles.
MARKS: Final = {
    "current": "fill:#ffe08a,stroke:#a06800,stroke-width:3px",
    "covered": "fill:#dff3df,stroke:#2e7d32",
    "uncovered": "fill:#fbe0e0,stroke:#b3261e,stroke-dasharray:4 3",
}


def render(ruleset: RuleSet, names: Iterable[str] | None = None, *, fenced: bool = True) -> str:
    """One ``stateDiagram-v2`` per dialogue (all, or those named), each in a mermaid block."""
    wanted = list(names) if names is not None else list(ruleset.dialogues)
    blocks = []
    for name in wanted:
        diagram = dialogue_diagram(ruleset.dialogues[name], _starters(ruleset, name))
        blocks.append(f"```mermaid\n{diagram}```\n" if fenced else diagram)
    return "\n".join(blocks)


def diagram(ruleset: RuleSet, name: str, marks: Mapping[str, str] | None = None) -> str:
    """The diagram of one dialogue (bare), its states marked with ``MARKS`` by name."""
    return dialogue_diagram(ruleset.dialogues[name], _starters(ruleset, name), marks)


def _starters(ruleset: RuleSet, name: str) -> list[str]:
    return [rule.name for rule in ruleset.rules if rule.start == name]


def dialogue_diagram(
    dialogue: m.Dialogue, started_by: list[str], marks: Mapping[str, str] | None = None
) -> str:
    ids = {state: _id(state, index) for index, state in enumerate(dialogue.states)}
    lines = ["---", f"title: {_text(dialogue.name)}", "---", "stateDiagram-v2"]
    for state in dialogue.states.values():
        lines.append(f'    state "{_text(state.name)}" as {ids[state.name]}')
        about = _about(dialogue, state)
        if about:
            lines.append(f"    {ids[state.name]} : {_text(about)}")
    start = []
    if dialogue.start is not None:
        when = describe(dialogue.start.when)
        start.append(
            "on " + ", ".join(sorted(dialogue.start.kinds)) + (f" if {when}" if when else "")
        )
    start += [f"rule {name}" for name in started_by]
    lines.append(f"    [*] --> {ids[dialogue.initial]}" + _label(" or ".join(start)))
    for source, label, target in edges(dialogue):
        lines.append(f"    {ids[source]} --> {ids[target] if target else '[*]'}{_label(label)}")
    marked = {name: mark for name, mark in (marks or {}).items() if name in ids}
    for mark in sorted(set(marked.values())):
        lines.append(f"    classDef {mark} {MARKS[mark]}")
    for name, mark in marked.items():
        lines.append(f"    class {ids[name]} {mark}")
    return "\n".join(lines) + "\n"


def edges(dialogue: m.Dialogue) -> list[tuple[str, str, str | None]]:
    """(source, label, target) for every way out of every state; target None is the end."""
    out: list[tuple[str, str, str | None]] = []

    def add(source: str, label: str, goto: str, max_visits: int | None, then: str | None) -> None:
        target = dialogue.states.get(goto)
        limit = max_visits or (target.max_visits if target else None)
        fallback = then or (target.then if target else None)
        if limit is not None and fallback:
            out.append((source, f"{label} (at most {limit}x)", goto))
            out.append((source, f"{label} after {limit}x", fallback))
        else:
            out.append((source, label, goto))

    for state in dialogue.states.values():
        name = state.name
        block = state.block
        catches_all = any(t.otherwise for t in state.on)
        if state.waits:
            for transition in dialogue.anywhere:
                label = "(any state) " + describe(transition.when)
                add(name, label, transition.goto, transition.max_visits, transition.then)
        for transition in state.on:
            label = "otherwise" if transition.otherwise else describe(transition.when)
            add(name, label, transition.goto, transition.max_visits, transition.then)
        if isinstance(block, m.Gather) and not catches_all:
            add(name, "no key matched", name, None, None)
        if isinstance(block, m.Transfer):
            if block.on_failure:
                add(name, "transfer failed", block.on_failure, None, None)
            out.append((name, "transferred", None))
        if isinstance(block, m.Dial):
            out.append((name, "not answered", None))
        if state.next:
            add(name, "answered" if isinstance(block, m.Dial) else "next", state.next, None, None)
        if state.wait:
            add(name, f"no answer in {_duration(state.wait.timeout)}", state.wait.goto, None, None)
        if state.terminal and not isinstance(block, m.Transfer):
            out.append((name, state.outcome or "end", None))
    return out


def _about(dialogue: m.Dialogue, state: m.State) -> str:
    block = state.block
    parts = []
    if isinstance(block, m.Gather):
        parts.append(f"gather {block.max_digits} key(s)")
    elif isinstance(block, m.Record):
        parts.append("record")
    elif isinstance(block, m.Transfer):
        parts.append(f"transfer to {block.to.source}")
    elif isinstance(block, m.Dial):
        to = block.to.source
        parts.append("dial the contact" if to.replace(" ", "") == "{{contact}}" else f"dial {to}")
    elif isinstance(block, m.HangupBlock):
        parts.append("hang up")
    say = getattr(block, "say", None) or state.say
    if say is not None:
        parts.append(f"says {say.source!r}" if dialogue.mode == "ivr" or block else say.source)
    if state.sms:
        parts.append("sms")
    if state.http:
        parts.append("http " + ", ".join(h.url.source for h in state.http))
    if state.set:
        parts.append("sets " + ", ".join(state.set))
    return ", ".join(parts)


def describe(when: c.AllOf) -> str:
    """Conditions in words, e.g. ``digits 1``, ``keyword yes|y``, ``number 1-5``."""
    return " and ".join(_describe(condition) for condition in when.conditions)


def _describe(condition: Any) -> str:
    if isinstance(condition, c.AllOf):
        return describe(condition)
    if isinstance(condition, c.TextCondition):
        return _text_test(condition.field, condition.check)
    if isinstance(condition, c.PatternCondition):
        parts = [" | ".join(condition.include)] if condition.include else []
        if condition.exclude:
            parts.append("not " + " | ".join(condition.exclude))
        return f"{condition.field} " + " ".join(parts)
    if isinstance(condition, c.OneOfCondition):
        return f"{condition.name or 'one of'} {'|'.join(sorted(condition.values))}"
    if isinstance(condition, c.ValueCondition):
        parts = []
        if condition.category is not None:
            parts.append(f"category {'|'.join(sorted(condition.category))}")
        if condition.value is not None:
            parts.append(_text_test("value", condition.value))
        if condition.text is not None:
            parts.append(_text_test("text", condition.text))
        return f"{condition.label} " + " ".join(parts)
    if isinstance(condition, c.TimeCondition):
        parts = [f"time {condition.zone.key}"]
        if condition.days is not None:
            days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            parts.append(",".join(days[d] for d in sorted(condition.days)))
        if condition.start is not None and condition.end is not None:
            parts.append(f"{condition.start:%H:%M}-{condition.end:%H:%M}")
        if condition.dates is not None:
            parts.append(",".join(sorted(condition.dates)))
        return " ".join(parts)
    if isinstance(condition, CalendarCondition):
        return f"{'open' if condition.want_open else 'closed'} {condition.name}"
    if isinstance(condition, c.ExprCondition):
        return f"if {condition.expression.source}"
    if isinstance(condition, c.NotCondition):
        return f"not ({describe(condition.inner)})"
    if isinstance(condition, c.AnyCondition):
        return " or ".join(f"({describe(a)})" for a in condition.alternatives)
    return type(condition).__name__


def _text_test(field: str, test: c.TextTest) -> str:
    parts = []
    if test.exact is not None:
        parts.append("|".join(sorted(test.exact)))
    if test.keyword is not None:
        parts.append("keyword " + "|".join(sorted(test.keyword)))
    if test.only is not None:
        parts.append("only " + "|".join(sorted(test.only)))
    if test.any_word is not None:
        parts.append("any word " + "|".join(sorted(test.any_word)))
    if test.phrase is not None:
        parts.append("phrase " + "|".join(_phrase(p.pattern) for p in test.phrase))
    if test.regex is not None:
        parts.append(f"regex {test.regex.pattern}")
    if test.number is not None:
        low, high = test.number
        parts.append(f"number {_num(low)}-{_num(high)}")
    if test.empty is not None:
        parts.append("empty" if test.empty else "not empty")
    text = " ".join(parts)
    return f"{field} {text}" if field != "text" or not parts else text


def _phrase(pattern: str) -> str:
    """The phrase a ``phrase_pattern`` was made from."""
    core = pattern.removeprefix(r"(?<!\w)").removesuffix(r"(?!\w)").replace(r"\s+", " ")
    return re.sub(r"\\(.)", r"\1", core)


def _num(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if value.is_integer() else str(value)


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


_ID: Final = re.compile(r"[^A-Za-z0-9_]")


def _id(state: str, index: int) -> str:
    """A Mermaid-safe state id; the real name goes in the state's label."""
    return f"s{index}_{_ID.sub('_', state)}"


def _label(text: str) -> str:
    return f" : {_text(text)}" if text else ""


def _text(text: str) -> str:
    """Label text Mermaid reads literally: one line, no syntax characters, not too long."""
    text = " ".join(text.split())
    if len(text) > MAX_LABEL:
        text = text[: MAX_LABEL - 3] + "..."
    return text.translate(_ESCAPES)


# Mermaid entity codes for the characters its state diagram syntax would read.
_ESCAPES: Final = str.maketrans(
    {
        "#": "#35;",
        ":": "#58;",
        ";": "#59;",
        '"': "#quot;",
        "{": "#123;",
        "}": "#125;",
        "<": "#lt;",
        ">": "#gt;",
    }
)
