"""The compliance layer, ahead of every rule and dialogue: STOP/START/HELP, opted-out
contacts, quiet hours, per-contact caps and the auto-responder loop guard."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from responder.events import Event
from responder.matching.conditions import words
from responder.outbound import OutboundCall

log = logging.getLogger("responder.compliance")

# Whole-message keywords, case-insensitive, punctuation at the edges ignored. Several
# languages by default; a `compliance:` block replaces them.
DEFAULT_STOP: Final = (
    "stop",
    "stopall",
    "unsubscribe",
    "end",
    "quit",
    "cancel",
    "optout",
    "arret",
    "arrêt",
    "desabonner",
    "désabonner",  # fr
    "alto",
    "baja",
    "parar",  # es, pt
    "stopp",
    "abmelden",  # de
    "sair",
    "cancelar",  # pt
    "berhenti",  # ms, id
    "退订",
    "取消订阅",  # zh
)
DEFAULT_START: Final = ("start", "unstop", "resume", "subscribe")
DEFAULT_HELP: Final = ("help",)
DEFAULT_STOP_REPLY: Final = (
    "You have been unsubscribed and will receive no more messages. Reply START to resubscribe."
)
DEFAULT_START_REPLY: Final = "You are subscribed again. Reply STOP to unsubscribe."


@dataclass(frozen=True, slots=True)
class QuietHours:
    zone: ZoneInfo
    start: time
    end: time
    action: str = "defer"  # defer: send when quiet hours end; drop: do not send

    def quiet_until(self, now: datetime) -> datetime | None:
        """When the quiet window that ``now`` is in ends, or None outside it."""
        local = now.astimezone(self.zone)
        t = local.time().replace(tzinfo=None)
        if self.start <= self.end:
            inside = self.start <= t < self.end
        else:
            inside = t >= self.start or t < self.end
        if not inside:
            return None
        # Wall-clock arithmetic on an aware datetime: zoneinfo gives the offset of the new
        # wall time, so a window spanning a DST change still ends at its local hour.
        end = local.replace(
            hour=self.end.hour,
            minute=self.end.minute,
            second=self.end.second,
            microsecond=self.end.microsecond,
        )
        if end <= local:
            end += timedelta(days=1)
        return end


@dataclass(frozen=True, slots=True)
class Window:
    """At most ``count`` within ``every`` seconds."""

    count: int
    every: float


@dataclass(frozen=True, slots=True)
class Compliance:
    stop_words: frozenset[str] = frozenset(DEFAULT_STOP)
    start_words: frozenset[str] = frozenset(DEFAULT_START)
    help_words: frozenset[str] = frozenset(DEFAULT_HELP)
    stop_reply: str = DEFAULT_STOP_REPLY
    start_reply: str = DEFAULT_START_REPLY
    help_reply: str | None = None  # None: HELP goes to the rules (never into a dialogue)
    quiet_hours: QuietHours | None = None
    cap: Window | None = None
    loop_guard: Window | None = field(default_factory=lambda: Window(10, 60.0))
    file: str = ""
    line: int = 0

    def keyword(self, event: Event) -> str | None:
        """ "stop", "start" or "help" when the whole message is one of those words."""
        if event.kind != "sms.received" or not event.text or event_contact(event) is None:
            return None
        found = words(event.text)
        if len(found) != 1:
            return None
        word = found[0]
        if word in self.stop_words:
            return "stop"
        if word in self.start_words:
            return "start"
        if word in self.help_words:
            return "help"
        return None


def event_contact(event: Event) -> str | None:
    """Who an event is from: the number, else (TextIt contacts without one) the UUID."""
    return event.contact or event.contact_uuid


def recipient(call: OutboundCall) -> str | None:
    """The contact a call reaches (an SMS, or a call we dial), or None for other calls.

    Opt-outs, caps and the loop guard hold per contact, whichever provider, channel or
    number of ours reaches them: STOP sent to one number stops every message and dial.
    """
    if call.provider == "hoiio" and call.endpoint in ("sms/send", "ivr/start/dial"):
        return str(call.params.get("dest") or "") or None
    if call.provider == "textit" and call.endpoint in ("broadcasts.json", "messages.json"):
        urns = call.params.get("urns") or []
        if urns:
            urn = str(urns[0])
            return urn.split(":", 1)[1] if urn.startswith("tel:") else urn
        return call.contact
    return None


def defer(call: OutboundCall, until: float) -> OutboundCall:
    return replace(call, not_before=until)
