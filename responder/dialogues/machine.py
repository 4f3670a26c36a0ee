"""One ``transitions`` machine per dialogue definition, and the moves it allows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from transitions import Machine

from responder.errors import StepError


class DialogueMachine:
    """Validates and performs moves between states of one dialogue.

    The machine is built once, at load time, without models. Its moves are read out of it
    into a table then: a conversation's step is one lookup of (state, trigger) rather than
    a model added at the stored state, triggered and removed again (tens of microseconds
    per step). The machine has no conditions or callbacks, so the table is exactly what
    triggering a model would do.
    """

    def __init__(
        self,
        name: str,
        states: Sequence[str],
        initial: str,
        edges: Iterable[tuple[str, str, str]],
    ) -> None:
        """``edges`` are (source, trigger, destination), as ``model.edges`` lists them."""
        self.name = name
        transitions = [
            {"trigger": trigger, "source": source, "dest": dest} for source, trigger, dest in edges
        ]
        self.machine: Any = Machine(
            model=None,
            states=list(states),
            transitions=transitions,
            initial=initial,
            auto_transitions=False,
            ignore_invalid_triggers=False,
        )
        self._moves = _moves(self.machine)

    def fire(self, current: str, trigger: str) -> str:
        """The state reached from ``current`` by ``trigger``; StepError if not allowed."""
        reached = self._moves.get((current, trigger))
        if reached is None:
            raise StepError(
                f"{self.name}: {trigger!r} from {current!r}: {self._why(current, trigger)}",
                dialogue=self.name,
                state=current,
                trigger=trigger,
            )
        return reached

    def _why(self, current: str, trigger: str) -> str:
        if current not in self.machine.states:
            return f"state {current!r} is not in the machine"
        if trigger not in self.machine.events:
            return f"no trigger {trigger!r}"
        return f"{trigger!r} can not be triggered from {current!r}"


def _moves(machine: Any) -> dict[tuple[str, str], str]:
    """(source, trigger) -> destination for every transition of ``machine``; the first one
    of a source wins, as it does when a model is triggered."""
    moves: dict[tuple[str, str], str] = {}
    for trigger, event in machine.events.items():
        for source, found in event.transitions.items():
            if found:
                moves.setdefault((source, trigger), found[0].dest)
    return moves
