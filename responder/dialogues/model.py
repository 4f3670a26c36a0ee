"""The compiled dialogue model: states, their entry blocks and their transitions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from responder.actions.model import Http, Sms
from responder.dialogues.machine import DialogueMachine
from responder.matching.conditions import AllOf
from responder.templating.templates import Template


@dataclass(frozen=True, slots=True)
class Gather:
    say: Template | None
    max_digits: int = 1
    timeout: int = 10
    attempts: int = 1


@dataclass(frozen=True, slots=True)
class Record:
    say: Template | None
    max_duration: int = 60


@dataclass(frozen=True, slots=True)
class Transfer:
    to: Template
    say: Template | None = None
    caller_id: str | None = None
    on_failure: str | None = None  # state to go to when the transfer fails


@dataclass(frozen=True, slots=True)
class Dial:
    """Place an outbound call (ivr/start/dial); only a dialogue's initial state may dial."""

    to: Template
    say: Template | None = None
    caller_id: str | None = None
    max_duration: int | None = None


@dataclass(frozen=True, slots=True)
class HangupBlock:
    say: Template | None = None


Block = Dial | Gather | Record | Transfer | HangupBlock


@dataclass(frozen=True, slots=True)
class Transition:
    when: AllOf
    goto: str
    line: int
    otherwise: bool = False
    set: Mapping[str, Template] = field(default_factory=dict)
    max_visits: int | None = None
    then: str | None = None


@dataclass(frozen=True, slots=True)
class Wait:
    """Wait this long for the contact's next message, then go to ``goto``."""

    timeout: float
    goto: str


@dataclass(frozen=True, slots=True)
class State:
    name: str
    line: int
    block: Block | None = None  # IVR: the one block this state runs
    say: Template | None = None  # SMS: the text sent to the contact on entry
    sms: tuple[Sms, ...] = ()
    http: tuple[Http, ...] = ()
    set: Mapping[str, Template] = field(default_factory=dict)
    on: tuple[Transition, ...] = ()
    next: str | None = None
    wait: Wait | None = None
    end: bool = False
    outcome: str | None = None
    max_visits: int | None = None
    then: str | None = None

    @property
    def waits(self) -> bool:
        """The state waits for the contact's input (a message, or keys of a gather): the
        dialogue's ``any:`` transitions are tried here, before the state's own."""
        if self.block is None:
            return bool(self.on or self.wait)
        return isinstance(self.block, Gather)

    @property
    def terminal(self) -> bool:
        """The conversation ends in this state: on entry, or for a transfer without
        on_failure once the transfer is over (the runner waits for Hoiio's notification)."""
        if self.end or isinstance(self.block, HangupBlock):
            return True
        if isinstance(self.block, Transfer):
            return self.block.on_failure is None
        return not (self.on or self.next or self.wait)


@dataclass(frozen=True, slots=True)
class Start:
    kinds: frozenset[str]
    when: AllOf
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Dialogue:
    name: str
    file: str
    line: int
    mode: str  # "ivr" or "sms"
    initial: str
    states: Mapping[str, State]
    # Built from ``edges(states, anywhere)`` when the dialogue is compiled, never changed after.
    machine: DialogueMachine = field(compare=False, repr=False)
    # Transitions tried in every state that waits for input, before the state's own.
    anywhere: tuple[Transition, ...] = ()
    start: Start | None = None
    expire: float = 86400.0
    description: str | None = None

    def state(self, name: str) -> State | None:
        return self.states.get(name)


def edges(
    states: Mapping[str, State], anywhere: tuple[Transition, ...] = ()
) -> list[tuple[str, str, str]]:
    """Every (source, trigger, destination) of a dialogue's states and of its ``any:``
    transitions, for its machine and for checks."""
    out: list[tuple[str, str, str]] = []
    for state in states.values():
        if state.waits:
            for index, transition in enumerate(anywhere):
                out.append((state.name, f"any:{index}", transition.goto))
                target = states.get(transition.goto)
                then = transition.then or (target.then if target else None)
                if then:
                    out.append((state.name, f"any:{index}:then", then))
        for index, transition in enumerate(state.on):
            out.append((state.name, f"{state.name}:{index}", transition.goto))
            target = states.get(transition.goto)
            then = transition.then or (target.then if target else None)
            if then:
                out.append((state.name, f"{state.name}:{index}:then", then))
        if state.next:
            out.append((state.name, f"{state.name}:next", state.next))
            target = states.get(state.next)
            if target is not None and target.then:
                out.append((state.name, f"{state.name}:next:then", target.then))
        if state.wait:
            out.append((state.name, f"{state.name}:timeout", state.wait.goto))
            target = states.get(state.wait.goto)
            if target is not None and target.then:
                out.append((state.name, f"{state.name}:timeout:then", target.then))
        if isinstance(state.block, Gather):  # nothing matched: ask again
            out.append((state.name, f"{state.name}:repeat", state.name))
            if state.then:
                out.append((state.name, f"{state.name}:repeat:then", state.then))
        if isinstance(state.block, Transfer) and state.block.on_failure:
            out.append((state.name, f"{state.name}:failure", state.block.on_failure))
            target = states.get(state.block.on_failure)
            if target is not None and target.then:
                out.append((state.name, f"{state.name}:failure:then", target.then))
    return out
