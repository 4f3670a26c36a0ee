"""One ``transitions`` machine per dialogue definition, stepped with short-lived models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transitions import Machine, MachineError

from responder.dialogues.model import Dialogue, edges


class _Conversation:
    """The per-event model: carries the state only while one step runs (transitions adds
    ``state`` and ``trigger`` to it)."""


class StepError(Exception):
    """A trigger that is not allowed from the conversation's state."""


class DialogueMachine:
    """Validates and performs moves between states of one dialogue.

    The machine is built once, at load time; each step adds one model restored at its
    stored state (``initial=`` so nothing resets) and removes it again, so no model per
    conversation stays resident.
    """

    def __init__(self, dialogue: Dialogue) -> None:
        self.dialogue = dialogue
        transitions = [
            {"trigger": trigger, "source": source, "dest": dest}
            for source, trigger, dest in edges(dialogue)
        ]
        self.machine: Any = Machine(
            model=None,
            states=list(dialogue.states),
            transitions=transitions,
            initial=dialogue.initial,
            auto_transitions=False,
            ignore_invalid_triggers=False,
        )
        # Called with (source, trigger, destination) after every move: transcript coverage
        # and traces watch the machine here instead of reimplementing its decisions.
        self.observers: list[Callable[[str, str, str], None]] = []

    def fire(self, current: str, trigger: str) -> str:
        """The state reached from ``current`` by ``trigger``; StepError if not allowed."""
        model: Any = _Conversation()
        try:
            # Inside the try: an unknown ``current`` fails here (ValueError), before the
            # model is attached.
            self.machine.add_model(model, initial=current)
            model.trigger(trigger)
        except (MachineError, AttributeError, ValueError) as exc:
            raise StepError(f"{self.dialogue.name}: {trigger!r} from {current!r}: {exc}") from None
        finally:
            if model in self.machine.models:
                self.machine.remove_model(model)
        reached = str(model.state)
        for observe in self.observers:
            observe(current, trigger, reached)
        return reached
