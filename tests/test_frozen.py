"""quick_init: the same construction as the dataclass's own ``__init__``, fields set faster."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field

import pytest

from responder.events import Event
from responder.frozen import quick_init
from responder.matching.conditions import Scope
from responder.matching.index import Probe
from responder.outbound import Commit, HitLimit, StoredResponse
from responder.providers.base import HttpReply, Params, WebhookRequest
from responder.runtime.engine import Prepared
from responder.runtime.outcome import Outcome


@dataclass(frozen=True, slots=True)
class Plain:
    name: str
    size: int = 3
    tags: list[str] = field(default_factory=list)
    note: str | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class Quick:
    name: str
    size: int = 3
    tags: list[str] = field(default_factory=list)
    note: str | None = None


def _as_plain(quick: Quick) -> Plain:
    return Plain(**{f.name: getattr(quick, f.name) for f in dataclasses.fields(Quick)})


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("a",), {}),
        (("a", 5), {}),
        (("a", 5, ["x"], "n"), {}),
        (("a",), {"note": "n"}),
        ((), {"name": "a", "tags": ["y"], "size": 0}),
    ],
)
def test_the_same_values_as_the_dataclass_init(args: tuple[object, ...], kwargs: dict) -> None:
    assert _as_plain(Quick(*args, **kwargs)) == Plain(*args, **kwargs)  # type: ignore[arg-type]


def test_still_a_frozen_slotted_dataclass() -> None:
    one, two = Quick("a"), Quick("a")
    assert one == two
    assert hash(Quick("a", tags=None)) == hash(Quick("a", tags=None))  # type: ignore[arg-type]
    assert one.tags is not two.tags  # a factory's default is made for each instance
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.size = 4  # type: ignore[misc]
    assert dataclasses.replace(one, size=9) == Quick("a", 9)
    assert repr(one) == "Quick(name='a', size=3, tags=[], note=None)"
    assert not hasattr(one, "__dict__")
    with pytest.raises(TypeError):
        Quick()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Quick("a", 1, [], None, "too many")  # type: ignore[call-arg]
    assert str(inspect.signature(Quick)) == str(inspect.signature(Plain))


def test_only_frozen_slotted_dataclasses_without_post_init() -> None:
    for kind in (
        dataclass(slots=True),
        dataclass(frozen=True),
    ):

        @kind
        class Other:
            name: str

        with pytest.raises(TypeError, match="frozen, slotted"):
            quick_init(Other)

    @dataclass(frozen=True, slots=True)
    class Checked:
        name: str

        def __post_init__(self) -> None:
            pass

    with pytest.raises(TypeError, match="__post_init__"):
        quick_init(Checked)

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Keywords:
        name: str

    with pytest.raises(TypeError, match="positional"):
        quick_init(Keywords)


@pytest.mark.parametrize(
    "cls",
    [
        Event,
        Outcome,
        WebhookRequest,
        Params,
        HttpReply,
        Scope,
        Probe,
        Prepared,
        StoredResponse,
        HitLimit,
        Commit,
    ],
)
def test_the_webhook_s_own_records_keep_their_signature(cls: type) -> None:
    assert cls.__init__.__qualname__ == f"{cls.__qualname__}.__init__"
    twin = dataclass(frozen=True, slots=True)(
        type(cls.__name__, (), {"__annotations__": dict(cls.__annotations__)} | _defaults(cls))
    )
    assert str(inspect.signature(cls)) == str(inspect.signature(twin))


def _defaults(cls: type) -> dict[str, object]:
    out: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = field(default_factory=f.default_factory)
    return out


def test_events_and_outcomes_are_made_as_before() -> None:
    event = Event("textit", "main", "sms.received", contact="+65", text="hi")
    assert event.values == {}
    assert event.raw == {}
    assert event.attachments == ()
    assert dataclasses.replace(event, text="yo").text == "yo"
    outcome = Outcome(reply_text="ok", matched=("r",))
    assert outcome == Outcome("ok", None, (), (), ("r",))
    assert outcome.guarded("ok", (), ("h",), ()) == dataclasses.replace(outcome, hits=("h",))
