"""DialogueMachine: one ``transitions`` Machine per dialogue, and the moves read out of it."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from transitions import MachineError

import responder.dialogues.machine as machine_module
from responder.appstate import AppState
from responder.dialogues import model as m
from responder.dialogues.machine import DialogueMachine
from responder.errors import StepError
from responder.events import Event
from responder.rules.loader import load_rules
from responder.runtime.engine import Engine
from responder.stores.memory import MemoryStore
from tests.conftest import dialogue_runner

EXAMPLE = Path(__file__).resolve().parent.parent.parent / "examples" / "ivr-menu"


@pytest.fixture
def menu() -> m.Dialogue:
    return load_rules([EXAMPLE]).dialogues["main-menu"]


def machine_of(dialogue: m.Dialogue) -> DialogueMachine:
    assert isinstance(dialogue.machine, DialogueMachine)
    return dialogue.machine


def test_machine_has_the_dialogue_states_and_edges(menu: m.Dialogue) -> None:
    machine = machine_of(menu)
    assert machine.name == menu.name
    assert list(machine.machine.states) == list(menu.states)
    assert machine.machine.initial == "menu"
    triggers = set(machine.machine.events)
    assert triggers == {trigger for _, trigger, _ in m.edges(menu.states)}
    assert {
        "menu:0",
        "menu:1",
        "menu:2",
        "menu:2:then",
        "menu:repeat",
        "sales:failure",
        "voicemail:next",
    } <= triggers


def test_no_auto_transitions(menu: m.Dialogue) -> None:
    machine = machine_of(menu)
    assert machine.machine.auto_transitions is False
    assert not any(name.startswith("to_") for name in machine.machine.events)
    for state in menu.states:
        with pytest.raises(StepError):
            machine.fire("menu", f"to_{state}")


def test_fire_moves_along_the_edges(menu: m.Dialogue) -> None:
    machine = machine_of(menu)
    assert machine.fire("menu", "menu:0") == "sales"
    assert machine.fire("menu", "menu:1") == "voicemail"
    assert machine.fire("menu", "menu:2") == "menu"
    assert machine.fire("menu", "menu:2:then") == "goodbye"
    assert machine.fire("menu", "menu:repeat") == "menu"
    assert "menu:repeat:then" not in machine.machine.events  # menu has no state-level then
    assert machine.fire("voicemail", "voicemail:next") == "thanks"


def test_fire_from_a_restored_state_does_not_reset_to_initial(menu: m.Dialogue) -> None:
    machine = machine_of(menu)
    # 'sales:failure' exists only from 'sales': it works only if the model starts there.
    assert machine.fire("sales", "sales:failure") == "voicemail"
    with pytest.raises(StepError):
        machine.fire("menu", "sales:failure")
    # ...and a trigger of the initial state is refused from elsewhere.
    with pytest.raises(StepError, match="'menu:0' from 'voicemail'"):
        machine.fire("voicemail", "menu:0")


@pytest.mark.parametrize(
    ("current", "trigger"),
    [
        ("menu", "nope"),
        ("menu", ""),
        ("menu", "voicemail:next"),
        ("thanks", "menu:0"),
        ("goodbye", "menu:repeat"),
        ("menu", "trigger"),
        ("menu", "state"),
        ("menu", "is_menu"),
        ("menu", "may_menu:0"),
    ],
)
def test_invalid_triggers_raise_step_error(menu: m.Dialogue, current: str, trigger: str) -> None:
    machine = machine_of(menu)
    with pytest.raises(StepError, match="main-menu"):
        machine.fire(current, trigger)
    assert machine.machine.models == []


def test_unknown_current_state_raises_step_error(menu: m.Dialogue) -> None:
    machine = machine_of(menu)
    with pytest.raises(StepError):
        machine.fire("no-such-state", "menu:0")
    assert machine.machine.models == []
    # The machine still works afterwards.
    assert machine.fire("menu", "menu:0") == "sales"


def test_no_model_stays_attached(menu: m.Dialogue) -> None:
    machine = machine_of(menu)
    assert machine.machine.models == []
    machine.fire("menu", "menu:0")
    assert machine.machine.models == []
    with pytest.raises(StepError):
        machine.fire("menu", "nope")
    assert machine.machine.models == []
    assert len(machine.machine._transition_queue) == 0


def _snapshot(machine: DialogueMachine) -> dict[str, Any]:
    inner = machine.machine
    return {
        "models": len(inner.models),
        "events": sorted(inner.events),
        "states": sorted(inner.states),
        "transitions": sorted(
            (name, source, len(ts))
            for name, event in inner.events.items()
            for source, ts in event.transitions.items()
        ),
        "callbacks": sorted(
            (name, len(state.on_enter), len(state.on_exit)) for name, state in inner.states.items()
        ),
        "queue": len(inner._transition_queue),
        "attrs": sorted(vars(inner)),
    }


def test_ten_thousand_fires_grow_nothing(menu: m.Dialogue) -> None:
    machine = machine_of(menu)
    before = _snapshot(machine)
    path = [
        ("menu", "menu:2"),
        ("menu", "menu:0"),
        ("sales", "sales:failure"),
        ("voicemail", "voicemail:next"),
        ("menu", "menu:2:then"),
    ]
    for i in range(10_000):
        current, trigger = path[i % len(path)]
        machine.fire(current, trigger)
        if i % 1000 == 0:
            with pytest.raises(StepError):
                machine.fire("thanks", trigger)
    assert _snapshot(machine) == before
    assert machine.machine.models == []


async def test_steps_never_build_a_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, menu: m.Dialogue
) -> None:
    """Machines are built when rules load, one per dialogue, and never per event."""
    built: list[Any] = []
    real = machine_module.Machine

    class Counting(real):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            built.append(kwargs.get("states"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(machine_module, "Machine", Counting)
    path = tmp_path / "rules.yaml"
    path.write_text(
        textwrap.dedent(
            """
            dialogues:
              - name: a
                start: {on: sms.received}
                states:
                  ask:
                    say: "again?"
                    on: [{otherwise: true, goto: ask}]
              - name: b
                states:
                  only: {say: "x", end: true}
            """
        )
    )
    rules = load_rules([path])
    assert len(built) == 2
    assert isinstance(rules.dialogues["a"].machine.machine, Counting)  # type: ignore[union-attr]

    engine = Engine(rules, MemoryStore(), dialogue_runner(), lambda: 1_700_000_000.0)
    for i in range(50):
        event = Event("textit", "textit", "sms.received", contact="+6591234567", text=str(i))
        outcome = await engine.handle(event, f"k{i}")
        assert outcome.conversation is not None
        assert outcome.conversation.state == "ask"
    assert len(built) == 2
    assert rules.dialogues["a"].machine.machine.models == []  # type: ignore[union-attr]


def test_state_names_that_look_like_machine_attributes(tmp_path: Path) -> None:
    """State names are data: ones that shadow transitions' own names still work."""
    path = tmp_path / "rules.yaml"
    path.write_text(
        textwrap.dedent(
            """
            dialogues:
              - name: tricky
                states:
                  state:
                    say: "1"
                    next: trigger
                  trigger:
                    say: "2"
                    next: initial
                  initial:
                    say: "3"
                    next: to_state
                  to_state:
                    say: "4"
                    next: models
                  models: {say: "5", end: true}
            """
        )
    )
    dialogue = load_rules([path]).dialogues["tricky"]
    machine = machine_of(dialogue)
    assert machine.fire("state", "state:next") == "trigger"
    assert machine.fire("trigger", "trigger:next") == "initial"
    assert machine.fire("initial", "initial:next") == "to_state"
    assert machine.fire("to_state", "to_state:next") == "models"
    assert machine.machine.models == []


async def test_a_step_reports_every_move_its_machine_made(menu: m.Dialogue) -> None:
    """Coverage and traces read the moves from the outcome; the shared machine is never
    changed after load (nothing attaches to it)."""
    machine = machine_of(menu)
    before = _snapshot(machine)
    rules = load_rules([EXAMPLE])
    engine = Engine(rules, MemoryStore(), dialogue_runner(), lambda: 1_700_000_000.0)
    event = Event("hoiio", "hoiio", "ivr.answer", contact="+6591234567", session="S-1")
    outcome = await engine.handle(event, "k1")
    assert outcome.conversation is not None
    assert outcome.moves == ()  # started: entered its initial state, no move yet
    gather = Event("hoiio", "hoiio", "ivr.gather", contact="+6591234567", session="S-1", digits="2")
    state = AppState("main-menu", "menu", outcome.conversation.seq)
    second = await engine.handle(gather, "k2", state)
    assert second.moves[0] == ("main-menu", "menu", "menu:1", "voicemail")
    assert _snapshot(machine) == before


class _Model:
    """A model for the machine itself, to check the moves against it."""


@pytest.mark.parametrize("example", ["ivr-menu", "sms-survey", "callback"])
def test_fire_agrees_with_triggering_the_machine(example: str) -> None:
    """Every (state, trigger) pair: fire() reaches what a model triggered there reaches, and
    refuses what the machine refuses."""
    ruleset = load_rules([EXAMPLE.parent / example])
    assert ruleset.dialogues
    for dialogue in ruleset.dialogues.values():
        machine = machine_of(dialogue)
        for current in dialogue.states:
            for trigger in [*machine.machine.events, "nope"]:
                model: Any = _Model()
                machine.machine.add_model(model, initial=current)
                try:
                    model.trigger(trigger)
                    expected: str | None = model.state
                except (MachineError, AttributeError):  # no such trigger, or not from here
                    expected = None
                finally:
                    machine.machine.remove_model(model)
                if expected is None:
                    with pytest.raises(StepError, match=dialogue.name):
                        machine.fire(current, trigger)
                else:
                    assert machine.fire(current, trigger) == expected
