"""Simulator sessions: each plays one contact against the loaded rules on the transcript
harness (the engine and pipeline of ``responder test`` and the server, an in-memory store of
its own, a fake clock; outbound calls are captured, never sent)."""

from __future__ import annotations

import itertools
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from responder.clients.sender import loggable_endpoint
from responder.console.transcript import RUN_PARAMS, Played, expectation, write
from responder.conversations import Conversation
from responder.outbound import OutboundCall
from responder.rules.model import RuleSet
from responder.transcripts.expect import sms_of
from responder.transcripts.harness import Harness, Observation, Setup, StepFailed
from responder.transcripts.language import MAX_STEPS, MAX_WAIT, Step
from responder.transcripts.run import play

MAX_SESSIONS: Final = 50
IDLE_SECONDS: Final = 3600.0  # a session nobody played for this long is dropped
MAX_TEXT: Final = 1000
_KEYS: Final = re.compile(r"[0-9*#]{0,32}")
_NUMBER: Final = re.compile(r"\+?[0-9]{3,16}")
RESULTS: Final = ("answered", "busy", "no_answer", "failed")


class Refused(ValueError):
    """A step the simulator does not play (bad input, or nothing waits for it)."""


@dataclass
class Session:
    """One simulated contact: a harness, what was played, whether a call is on."""

    id: str
    kind: str  # "sms" or "call"
    harness: Harness
    rule_files: tuple[str, ...]
    played: list[Played] = field(default_factory=list)
    in_call: bool = False
    used: float = field(default_factory=time.monotonic)

    @property
    def setup(self) -> Setup:
        return self.harness.setup

    def pending(self) -> str | None:
        """The IVR block waiting for the caller (``ivr/middle/gather``...), if any."""
        call = self.harness.call
        if not self.in_call or call is None or call.notify is None:
            return None
        return call.block

    async def play(self, action: str, value: Any) -> tuple[Observation, Conversation | None]:
        """Play one step; Refused when it cannot be played now."""
        if len(self.played) >= MAX_STEPS:
            raise Refused(f"a transcript holds at most {MAX_STEPS} steps: save and start again")
        value = _checked(action, value)
        if action == "call" and self.in_call:
            raise Refused("a call is on already: hang up first")
        if action in ("press", "record", "transfer", "dial", "played", "hangup") and not (
            self.in_call
        ):
            raise Refused("no call is on: call first")
        try:
            seen = await play(self.harness, Step(0, action, value))
        except StepFailed as exc:
            raise Refused(str(exc)) from None
        conversation = await self.harness.conversation_now()
        self.played.append(
            Played(
                action,
                _written(action, value),
                expectation(seen, conversation, self.setup.provider),
            )
        )
        if action == "call":
            self.in_call = True
        self._follow(action, value, seen)
        return seen, conversation

    def _follow(self, action: str, value: Any, seen: Observation) -> None:
        """Whether the call is still on after this step."""
        ends = [c for c in seen.calls if c.provider == "hoiio" and c.endpoint == "ivr/end/hangup"]
        if (
            action == "hangup"
            or ends
            or (action == "transfer" and value == "answered")
            or (self.in_call and self.pending() is None and not seen.calls)
        ):
            self.in_call = False

    def transcript(self) -> str:
        name = f"recorded in the console ({'a call' if self.kind == 'call' else 'SMS'})"
        return write(self.setup, self.played, self.rule_files, name)


def _checked(action: str, value: Any) -> Any:
    """The step's value, checked; Refused when the browser sent something else."""
    if action == "sms":
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
            raise Refused(f"an SMS is 1 to {MAX_TEXT} characters")
        return value
    if action == "call":
        return "incoming"
    if action == "press":
        if not isinstance(value, str) or not _KEYS.fullmatch(value):
            raise Refused("keys are 0-9, * and #, at most 32")
        return value
    if action in ("transfer", "dial"):
        if value not in RESULTS:
            raise Refused(f"{action} result is one of {', '.join(RESULTS)}")
        return value
    if action in ("record", "played", "hangup"):
        return True
    if action == "wait":
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            raise Refused("wait takes seconds") from None
        if not 0 < seconds <= MAX_WAIT:
            raise Refused(f"wait between 1 s and {MAX_WAIT} s")
        return seconds
    raise Refused(f"unknown step {action!r}")


def _written(action: str, value: Any) -> Any:
    if action == "wait":
        return _duration(float(value))
    return value


def _duration(seconds: float) -> str | float:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return seconds


class Simulations:
    """The sessions of this process, by id; bounded, idle ones dropped."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._sessions: dict[str, Session] = {}
        self._ids = itertools.count(1)
        self.monotonic = monotonic

    def start(
        self,
        rules: RuleSet,
        rule_files: tuple[str, ...],
        *,
        kind: str,
        provider: str,
        channel: str,
        contact: str,
        number: str,
    ) -> Session:
        if kind not in ("sms", "call"):
            raise Refused("a session is an SMS chat or a call")
        if provider not in ("textit", "hoiio") or (kind == "call" and provider != "hoiio"):
            raise Refused("calls go through Hoiio; SMS through TextIt or Hoiio")
        for what, number_text in (("contact", contact), ("number", number)):
            if not _NUMBER.fullmatch(number_text):
                raise Refused(f"the {what} is a phone number like +6591234567")
        self._drop_idle()
        start = datetime.now(UTC).replace(second=0, microsecond=0)
        setup = Setup(provider, channel, contact, None, number, start, ZoneInfo("UTC"))
        session = Session(
            f"{next(self._ids)}-{secrets.token_urlsafe(9)}",
            kind,
            Harness(rules, setup),
            rule_files,
            used=self.monotonic(),
        )
        self._sessions[session.id] = session
        return session

    def get(self, sid: str) -> Session | None:
        session = self._sessions.get(sid)
        if session is not None:
            session.used = self.monotonic()
        return session

    def __len__(self) -> int:
        return len(self._sessions)

    def _drop_idle(self) -> None:
        now = self.monotonic()
        for sid in [s.id for s in self._sessions.values() if now - s.used > IDLE_SECONDS]:
            del self._sessions[sid]
        while len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions.values(), key=lambda s: s.used)
            del self._sessions[oldest.id]


def shown(seen: Observation) -> list[dict[str, Any]]:
    """What a step led to, as the simulator page shows it, in order."""
    out: list[dict[str, Any]] = []
    if seen.reply is not None:
        out.append({"kind": "reply", "text": seen.reply})
    out.extend(shown_call(call) for call in seen.calls)
    out.extend({**shown_call(call), "held": True} for call in seen.held)
    out.extend({"kind": "error", "text": error} for error in seen.errors)
    if seen.matched:
        out.append({"kind": "matched", "rules": list(seen.matched)})
    return out


def shown_call(call: OutboundCall) -> dict[str, Any]:
    sms = sms_of(call)
    if sms is not None:
        via, to, text = sms
        return {"kind": "sms", "via": via, "to": to, "text": text}
    if call.provider == "http":
        return {
            "kind": "http",
            "method": call.method,
            "url": loggable_endpoint(call),
            "json": call.params.get("json"),
        }
    params = {k: v for k, v in call.params.items() if k not in RUN_PARAMS}
    if call.provider == "hoiio" and call.endpoint.startswith("ivr/"):
        return {
            "kind": "ivr",
            "endpoint": call.endpoint,
            "block": call.endpoint.rsplit("/", 1)[-1],
            "say": call.params.get("msg"),
            "params": params,
        }
    return {"kind": "call", "provider": call.provider, "endpoint": call.endpoint, "params": params}


def conversation_view(conversation: Conversation | None) -> dict[str, Any] | None:
    if conversation is None:
        return None
    return {
        "dialogue": conversation.dialogue,
        "state": conversation.state,
        "status": conversation.status,
        "outcome": conversation.outcome,
        "vars": conversation.vars,
        "step": conversation.seq,
    }
