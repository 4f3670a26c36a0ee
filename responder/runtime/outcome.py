"""What one event leads to, as plain data: the decision the engine makes and the guard and the
commit take over."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from responder.conversations import Conversation, TimerWrite
from responder.outbound import HitLimit, OutboundCall


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one event leads to: the reply, the calls to make and what to record."""

    reply_text: str | None = None
    variables: Mapping[str, Any] | None = None
    calls: tuple[OutboundCall, ...] = ()
    hits: tuple[str, ...] = ()
    matched: tuple[str, ...] = ()
    limited: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    conversation: Conversation | None = None
    expected_version: int = 0
    timer: TimerWrite | None = None
    opt_outs: tuple[tuple[str, bool], ...] = ()
    exempt: bool = False  # STOP/START/HELP confirmations: only the loop guard applies
    # (dialogue, state left, state entered) of a dialogue step; "(start)" for a new one
    transition: tuple[str, str, str] | None = None
    limits: tuple[HitLimit, ...] = ()  # the limits ``hits`` were counted against
    # (dialogue, source, trigger, destination) of every move a dialogue step made
    moves: tuple[tuple[str, str, str, str], ...] = ()
    # rules (or "dialogue:NAME") whose reply or SMS text rendered blank: not sent
    blanks: tuple[str, ...] = ()


NOTHING = Outcome()
