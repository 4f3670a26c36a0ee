"""Outcome: the decision as plain data."""

from __future__ import annotations

import dataclasses

from responder.conversations import Conversation, TimerWrite
from responder.outbound import HitLimit, OutboundCall
from responder.runtime.outcome import Outcome


def test_guarded_is_replace_of_the_four_fields_the_guard_changes() -> None:
    call = OutboundCall(key="k#0", provider="hoiio", endpoint="sms/send", params={})
    full = Outcome(
        reply_text="hi",
        variables={"a": 1},
        calls=(call,),
        hits=("h",),
        matched=("r",),
        limited=("l",),
        errors=("e",),
        conversation=Conversation(
            key="c", dialogue="d", state="s", channel="textit", provider="textit"
        ),
        expected_version=3,
        timer=TimerWrite("c", 5.0, 1),
        opt_outs=(("+65", True),),
        exempt=True,
        transition=("d", "a", "b"),
        limits=(HitLimit("h", 1.0, 2),),
        moves=(("d", "a", "a:0", "b"),),
        blanks=("x",),
    )
    assert all(getattr(full, f.name) != f.default for f in dataclasses.fields(Outcome)), (
        "every field set, so that a field guarded() forgets shows"
    )
    changed = full.guarded(None, (), ("h", "h2"), ())
    assert changed == dataclasses.replace(
        full, reply_text=None, calls=(), hits=("h", "h2"), limits=()
    )
