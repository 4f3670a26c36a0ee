"""Applies the compliance rules to what the engine decided: nothing to opted-out contacts,
nothing proactive in quiet hours, no more than the caps allow, no auto-responder loops."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from responder.compliance import Compliance, contact_key, defer, recipient
from responder.events import Event
from responder.outbound import OutboundCall
from responder.stores.base import Store

if TYPE_CHECKING:
    from responder.engine import Outcome

log = logging.getLogger("responder.compliance")

TIMEOUT_KIND = "dialogue.timeout"


class Guard:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def apply(
        self, compliance: Compliance, event: Event, outcome: Outcome, now: float
    ) -> Outcome:
        if outcome.exempt:
            return outcome
        reply_to = None
        if outcome.reply_text is not None and event.kind != "flow.step" and event.contact:
            reply_to = contact_key(event.provider, event.contact)
        targets: list[tuple[OutboundCall, str, str]] = []  # call, number, contact key
        for call in outcome.calls:
            number = recipient(call)
            if number is not None:
                targets.append((call, number, contact_key(call.provider, number)))
        if reply_to is None and not targets:
            return outcome
        keys = sorted({k for _, _, k in targets} | ({reply_to} if reply_to else set()))
        opted = await self.store.opted_out(keys)
        dropped: set[str] = set()  # call keys not to send
        reply_text = outcome.reply_text
        if reply_to in opted:
            log.info("no reply to %s: opted out", event.contact)
            reply_text, reply_to = None, None
        for call, number, key in targets:
            if key in opted:
                log.info("no %s to %s: opted out", call.endpoint, number)
                dropped.add(call.key)
        # Counting per contact: the reply, plus each message call still going out.
        counts: dict[str, int] = {}
        if reply_to:
            counts[reply_to] = 1
        for call, _, key in targets:
            if call.key not in dropped:
                counts[key] = counts.get(key, 0) + 1
        own = contact_key(event.provider, event.contact) if event.contact else None
        over: set[str] = set()
        hits: list[str] = []
        for key, count in counts.items():
            if compliance.cap is not None:
                sent = await self.store.count_hits(f"cap:{key}", now - compliance.cap.every)
                if sent + count > compliance.cap.count:
                    log.warning(
                        "cap of %d message(s) per %.0fs reached for %s: not sent",
                        compliance.cap.count,
                        compliance.cap.every,
                        key,
                    )
                    over.add(key)
                    continue
            guard = compliance.loop_guard
            if guard is not None and key == own and event.kind != TIMEOUT_KIND:
                # Replies count once per incoming message, however many texts each holds.
                sent = await self.store.count_hits(f"loop:{key}", now - guard.every)
                if sent + 1 > guard.count:
                    log.warning(
                        "loop guard: more than %d replies to %s within %.0fs; not replying",
                        guard.count,
                        key,
                        guard.every,
                    )
                    over.add(key)
                    continue
                hits.append(f"loop:{key}")
            if compliance.cap is not None:
                hits.extend([f"cap:{key}"] * count)
        if reply_to in over:
            reply_text = None
        calls: list[OutboundCall] = []
        quiet_end = None
        if compliance.quiet_hours is not None:
            end = compliance.quiet_hours.quiet_until(datetime.fromtimestamp(now, UTC))
            quiet_end = end.timestamp() if end else None
        for call in outcome.calls:
            number = recipient(call)
            target = contact_key(call.provider, number) if number else None
            if call.key in dropped or target in over:
                continue
            proactive = event.kind == TIMEOUT_KIND or number != event.contact
            if number and proactive and quiet_end is not None:
                assert compliance.quiet_hours is not None
                if compliance.quiet_hours.action == "drop":
                    log.info("quiet hours: %s to %s dropped", call.endpoint, number)
                    continue
                log.info(
                    "quiet hours: %s to %s held until %s",
                    call.endpoint,
                    number,
                    datetime.fromtimestamp(quiet_end, UTC).isoformat(),
                )
                call = defer(call, quiet_end)
            calls.append(call)
        return replace(
            outcome, reply_text=reply_text, calls=tuple(calls), hits=outcome.hits + tuple(hits)
        )
