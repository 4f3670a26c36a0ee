"""What one event leads to, as plain data: the decision the engine makes and the guard and the
commit take over."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from responder.conversations import Conversation, TimerWrite
from responder.frozen import quick_init
from responder.outbound import HitLimit, OutboundCall


@quick_init
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

    def guarded(
        self,
        reply_text: str | None,
        calls: tuple[OutboundCall, ...],
        hits: tuple[str, ...],
        limits: tuple[HitLimit, ...],
    ) -> Outcome:
        """This outcome as the guard lets it out: ``dataclasses.replace`` spelled out, as it
        runs for every webhook that sends anything (replace inspects every field each time)."""
        return Outcome(
            reply_text=reply_text,
            variables=self.variables,
            calls=calls,
            hits=hits,
            matched=self.matched,
            limited=self.limited,
            errors=self.errors,
            conversation=self.conversation,
            expected_version=self.expected_version,
            timer=self.timer,
            opt_outs=self.opt_outs,
            exempt=self.exempt,
            transition=self.transition,
            limits=limits,
            moves=self.moves,
            blanks=self.blanks,
        )


NOTHING = Outcome()
