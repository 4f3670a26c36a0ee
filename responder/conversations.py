"""Conversation state as stored: the position of one contact or call in one dialogue."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from typing import Any

from responder.speed import dumps


@dataclass(frozen=True, slots=True)
class Conversation:
    key: str
    dialogue: str
    state: str
    channel: str
    provider: str
    contact: str | None = None
    session: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    visits: dict[str, int] = field(default_factory=dict)
    seq: int = 0
    version: int = 0  # bumped by the store on every write
    status: str = "active"  # active or ended
    outcome: str | None = None
    started: float = 0.0
    updated: float = 0.0
    expires: float = 0.0
    ref: str | None = None  # calls we dialled: the key part that stands in for the session

    def active(self, now: float) -> bool:
        return self.status == "active" and (self.expires == 0.0 or now < self.expires)

    def to_json(self) -> str:
        # What dumps(asdict(self)) writes: the values are JSON values already, so the deep
        # copy asdict() makes of them would change nothing but the time taken.
        return dumps({name: getattr(self, name) for name in _FIELDS})

    @classmethod
    def from_json(cls, text: str) -> Conversation:
        return cls(**json.loads(text))

    def with_version(self, version: int) -> Conversation:
        return replace(self, version=version)


_FIELDS = tuple(f.name for f in fields(Conversation))


@dataclass(frozen=True, slots=True)
class TimerWrite:
    """Set (``due``) or clear (``due is None``) the one timer of a conversation."""

    key: str
    due: float | None
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Timer:
    key: str
    due: float
    seq: int


def dial_key(channel: str, ref: str) -> str:
    """Conversations of calls we dialled are keyed by a reference made when dialling."""
    return f"{channel}:ivr:dial-{ref}"


def conversation_key(channel: str, contact: str | None, session: str | None) -> str:
    """IVR conversations follow the call's session; SMS ones the contact on a channel."""
    if session:
        return f"{channel}:ivr:{session}"
    return f"{channel}:sms:{contact or '-'}"
