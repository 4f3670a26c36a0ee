"""The provider-neutral Event every adapter produces, and the vocabulary of event kinds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Final

from responder.frozen import quick_init

# The rule author's vocabulary. Documented in docs/rules.md ("Event kinds").
KINDS: Final[frozenset[str]] = frozenset(
    {
        "sms.received",
        "sms.sent",
        "sms.delivered",
        "sms.failed",
        "call.missed",
        "call.received",
        "call.made",
        "call.unanswered",
        "channel.alarm",
        "flow.step",
        "ivr.answer",
        "ivr.dial",
        "ivr.play",
        "ivr.gather",
        "ivr.record",
        "ivr.monitor",
        "ivr.unhold",
        "ivr.transfer",
        "ivr.hangup",
        "ivr.ended",
        "fax.received",
        "unknown",
    }
)

EMPTY: Final[Mapping[str, str]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class FlowValue:
    """One collected flow result, normalised from legacy ``values`` or modern ``results``."""

    label: str
    category: str
    value: str
    text: str


@dataclass(frozen=True, slots=True)
class Flow:
    """Which flow, run and node a ``flow.step`` event comes from."""

    id: str | None = None
    uuid: str | None = None
    name: str | None = None
    step: str | None = None
    run: str | None = None
    # When the run reached this step: the last path step's ``arrived_on`` (JSON webhooks),
    # the call's ``time`` (form and GET webhooks). With ``run`` it tells a retry of one call
    # from the next visit to the same node.
    arrived_on: datetime | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class Event:
    """One webhook, parsed; nothing downstream mutates it."""

    provider: str
    channel: str
    kind: str
    contact: str | None = None
    channel_number: str | None = None
    text: str | None = None
    digits: str | None = None
    session: str | None = None
    status: str | None = None
    flow: Flow | None = None
    values: Mapping[str, FlowValue] = field(default_factory=lambda: MappingProxyType({}))
    app_state: str | None = None
    external_id: str | None = None
    time: datetime | None = None
    urn: str | None = None
    contact_uuid: str | None = None
    contact_name: str | None = None
    provider_event: str | None = None
    attachments: tuple[str, ...] = ()
    raw: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    notes: tuple[str, ...] = ()  # what the adapter tolerated (bad JSON, odd dates), for the log

    def value(self, label: str) -> FlowValue | None:
        """The flow value for ``label``, matched by name or by snake-cased key."""
        return self.values.get(value_key(label))


def value_key(label: str) -> str:
    """Normalise a result label the way RapidPro keys results: lower snake case."""
    out = []
    for ch in label.strip().lower():
        out.append(ch if ch.isalnum() else "_")
    return "".join(out).strip("_")


def freeze(mapping: Mapping[str, str]) -> Mapping[str, str]:
    """A read-only copy of ``mapping``."""
    return MappingProxyType(dict(mapping))
