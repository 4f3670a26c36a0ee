"""Applies the compliance rules to what the engine decided: nothing to opted-out contacts,
nothing proactive in quiet hours, no more than the caps allow, no auto-responder loops."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime

from responder.conversations import TimerWrite
from responder.events import Event
from responder.matching.compliance import Compliance, Window, defer, event_contact, recipient
from responder.outbound import HitLimit, OutboundCall
from responder.runtime.outcome import Outcome
from responder.stores.base import Reader, Store

log = logging.getLogger("responder.compliance")

TIMEOUT_KIND = "dialogue.timeout"
DIAL = "ivr/start/dial"


def own_counts(compliance: Compliance, event: Event, now: float) -> tuple[tuple[str, float], ...]:
    """The hit counts (key, since) the guard may read for the event's own contact."""
    own = event_contact(event)
    if own is None:
        return ()
    counts: list[tuple[str, float]] = []
    if compliance.cap is not None:
        counts.append(_cap(own, compliance.cap, now))
    if compliance.loop_guard is not None and event.kind != TIMEOUT_KIND:
        counts.append(_loop(own, compliance.loop_guard, now))
    return tuple(counts)


def _cap(contact: str, cap: Window, now: float) -> tuple[str, float]:
    return f"cap:{contact}", now - cap.every


def _loop(contact: str, guard: Window, now: float) -> tuple[str, float]:
    return f"loop:{contact}", now - guard.every


class Guard:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def apply(
        self,
        compliance: Compliance,
        event: Event,
        outcome: Outcome,
        now: float,
        reader: Reader | None = None,
    ) -> Outcome:
        """The outcome with what compliance forbids taken out (or held until later); the
        reads go to ``reader`` (the store when None).

        Confirmations of STOP/START/HELP (``exempt``) reach opted-out contacts and ignore
        caps and quiet hours, but still count towards the loop guard: two auto-responders
        could otherwise bounce STOP and START between them for ever.
        """
        reads: Reader = self.store if reader is None else reader
        own = event_contact(event)
        reply_to = own if outcome.reply_text is not None and event.kind != "flow.step" else None
        targets: list[tuple[OutboundCall, str]] = []  # message or dial, and its contact
        for call in outcome.calls:
            number = recipient(call)
            if number is not None:
                targets.append((call, number))
        if reply_to is None and not targets:
            return outcome
        exempt = outcome.exempt
        keys = sorted({number for _, number in targets} | ({reply_to} if reply_to else set()))
        opted = set() if exempt else await reads.opted_out(keys)
        cap = None if exempt else compliance.cap
        dropped: dict[str, str] = {}  # call key -> why it is not sent
        reply_text = outcome.reply_text
        if reply_to in opted:
            log.info("no reply to %s: opted out", reply_to)
            reply_text, reply_to = None, None
        for call, number in targets:
            if number in opted:
                log.info("no %s to %s: opted out", call.endpoint, number)
                dropped[call.key] = "opted out"
        # Counting per contact: the reply, plus each message call still going out.
        counts: dict[str, int] = {}
        if reply_to:
            counts[reply_to] = 1
        for call, number in targets:
            if call.key not in dropped:
                counts[number] = counts.get(number, 0) + 1
        over: set[str] = set()
        hits: list[str] = []
        limits: list[HitLimit] = []
        for key, count in counts.items():
            if cap is not None:
                sent = await reads.count_hits(*_cap(key, cap, now))
                if sent + count > cap.count:
                    log.warning(
                        "cap of %d message(s) per %.0fs reached for %s: not sent",
                        cap.count,
                        cap.every,
                        key,
                    )
                    over.add(key)
                    continue
            guard = compliance.loop_guard
            if guard is not None and key == own and event.kind != TIMEOUT_KIND:
                # Replies count once per incoming message, however many texts each holds.
                loop_key, since = _loop(key, guard, now)
                sent = await reads.count_hits(loop_key, since)
                if sent + 1 > guard.count:
                    log.warning(
                        "loop guard: more than %d replies to %s within %.0fs; not replying",
                        guard.count,
                        key,
                        guard.every,
                    )
                    over.add(key)
                    continue
                hits.append(loop_key)
                limits.append(HitLimit(loop_key, since, guard.count))
            if cap is not None:
                cap_key, cap_since = _cap(key, cap, now)
                hits.extend([cap_key] * count)
                limits.append(HitLimit(cap_key, cap_since, cap.count))
        if reply_to in over:
            reply_text = None
        for call, number in targets:
            if number in over and call.key not in dropped:
                dropped[call.key] = "over the cap or loop guard"
        calls: list[OutboundCall] = []
        quiet = None if exempt else compliance.quiet_hours
        quiet_end = None
        if quiet is not None:
            end = quiet.quiet_until(datetime.fromtimestamp(now, UTC))
            quiet_end = end.timestamp() if end else None
        for call in outcome.calls:
            if call.key in dropped:
                continue
            number = recipient(call)
            # Answers to the contact's own message or call are not proactive; reminders
            # (timers) and messages or calls to other numbers are.
            proactive = event.kind == TIMEOUT_KIND or number != own
            if number and proactive and quiet is not None and quiet_end is not None:
                if quiet.action == "drop":
                    log.info("quiet hours: %s to %s dropped", call.endpoint, number)
                    dropped[call.key] = "quiet hours"
                    continue
                log.info(
                    "quiet hours: %s to %s held until %s",
                    call.endpoint,
                    number,
                    datetime.fromtimestamp(quiet_end, UTC).isoformat(),
                )
                call = defer(call, quiet_end)
            calls.append(call)
        result = outcome.guarded(
            reply_text,
            tuple(calls),
            outcome.hits + tuple(hits),
            outcome.limits + tuple(limits),
        )
        return _end_undialled(result, outcome.calls, dropped, now)


def _end_undialled(
    outcome: Outcome, planned: tuple[OutboundCall, ...], dropped: dict[str, str], now: float
) -> Outcome:
    """A dialogue whose dial was not placed ends at once instead of waiting for a call
    that will never come."""
    conversation = outcome.conversation
    if conversation is None or conversation.status != "active":
        return outcome
    for call in planned:
        if call.endpoint == DIAL and call.key in dropped:
            ended = replace(
                conversation,
                status="ended",
                outcome=f"not dialled: {dropped[call.key]}",
                updated=now,
            )
            log.info("conversation %s ended: not dialled (%s)", ended.key, dropped[call.key])
            return replace(outcome, conversation=ended, timer=TimerWrite(ended.key, None))
    return outcome
