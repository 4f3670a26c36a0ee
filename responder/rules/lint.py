"""Warnings about rules that load but cannot do what they seem to say: a word the compliance
layer takes first, an event kind the named provider never sends, a status spelled the old way."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from responder.dialogues.model import Dialogue, Transition
from responder.errors import Problem
from responder.matching.compliance import Compliance
from responder.matching.conditions import AllOf, OneOfCondition, TextCondition
from responder.providers import PROVIDERS
from responder.rules.model import RuleSet
from responder.rules.terms import OLD_STATUSES

# STOP is the word carriers and TextIt honour everywhere: nothing ever takes it first.
ALWAYS_STOP: Final = "stop"


def lint(ruleset: RuleSet) -> list[Problem]:
    """Every warning about ``ruleset``, in file and line order."""
    found: list[Problem] = []
    taken = _taken_words(ruleset.compliance)
    for rule in ruleset.rules:
        what = f"rule {rule.name!r}"
        found += _provider_kinds(rule.file, rule.line, what, rule.kinds, rule.when)
        found += _statuses(rule.file, rule.line, what, rule.when)
        if "sms.received" in rule.kinds:
            found += _words(rule.file, rule.line, what, rule.when, taken)
    for dialogue in ruleset.dialogues.values():
        if dialogue.start is not None:
            what = f"dialogue {dialogue.name!r} start"
            found += _provider_kinds(
                dialogue.file, dialogue.line, what, dialogue.start.kinds, dialogue.start.when
            )
        for where, transition in _transitions(dialogue):
            what = f"dialogue {dialogue.name!r} {where}"
            found += _statuses(dialogue.file, transition.line, what, transition.when)
            if dialogue.mode == "sms" and not where.startswith("any"):
                found += _words(dialogue.file, transition.line, what, transition.when, taken)
        for index, transition in enumerate(dialogue.anywhere):
            if ALWAYS_STOP in _words_named(transition.when):
                found.append(
                    Problem(
                        dialogue.file,
                        transition.line,
                        f"warning: dialogue {dialogue.name!r} any[{index}] names 'stop': STOP "
                        "always unsubscribes the contact, so this never takes it",
                    )
                )
    return sorted(found)


def _transitions(dialogue: Dialogue) -> Iterator[tuple[str, Transition]]:
    for index, transition in enumerate(dialogue.anywhere):
        yield f"any[{index}]", transition
    for state in dialogue.states.values():
        for index, transition in enumerate(state.on):
            yield f"states.{state.name}.on[{index}]", transition


def _taken_words(compliance: Compliance) -> dict[str, str]:
    """The one-word messages the compliance layer answers before any rule or dialogue."""
    taken = {word: "an opt-out (STOP) word" for word in compliance.stop_words}
    taken.update((word, "an opt-in (START) word") for word in compliance.start_words)
    if compliance.help_reply:
        taken.update((word, "a HELP word") for word in compliance.help_words)
    return taken


def _words_named(when: AllOf) -> set[str]:
    """The single words a text condition matches as the whole message or its first word."""
    named: set[str] = set()
    for condition in when.conditions:
        if isinstance(condition, TextCondition) and condition.field == "text":
            test = condition.check
            for group in (test.only, test.keyword, test.any_word):
                named.update(word for word in group or () if " " not in word)
    return named


def _words(file: str, line: int, what: str, when: AllOf, taken: dict[str, str]) -> list[Problem]:
    return [
        Problem(
            file,
            line,
            f"warning: {what} matches {word!r}, {taken[word]}: a message of that word alone "
            "is answered by the compliance layer first and never reaches it (a dialogue's "
            "any: transitions take such a word while the dialogue is active; STOP excepted)",
        )
        for word in sorted(_words_named(when) & taken.keys())
    ]


def _provider_kinds(
    file: str, line: int, what: str, kinds: frozenset[str], when: AllOf
) -> list[Problem]:
    providers: frozenset[str] | None = None
    for condition in when.conditions:
        if isinstance(condition, OneOfCondition) and condition.name == "provider":
            providers = condition.values if providers is None else providers & condition.values
    if providers is None:
        return []
    sent: frozenset[str] = frozenset().union(
        *(PROVIDERS[name].kinds for name in providers if name in PROVIDERS)
    )
    never = sorted(kinds - sent)
    if not never:
        return []
    who = " or ".join(sorted(providers)) or "no provider"
    return [
        Problem(
            file,
            line,
            f"warning: {what} can never fire on {', '.join(never)}: {who} sends no such event",
        )
    ]


def _statuses(file: str, line: int, what: str, when: AllOf) -> list[Problem]:
    found = []
    for condition in when.conditions:
        if isinstance(condition, OneOfCondition) and condition.name == "status":
            for old in sorted(condition.values & OLD_STATUSES.keys()):
                found.append(
                    Problem(
                        file,
                        line,
                        f"warning: {what}: status {old!r} is read as {OLD_STATUSES[old]!r}, "
                        "Hoiio's name for it (answered, unanswered, failed, busy)",
                    )
                )
    return found
