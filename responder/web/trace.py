"""One trace per webhook: what came in, what matched, what it led to, and how long it took.

The trace is logged as one record (JSON fields with ``RESPONDER_LOG_FORMAT=json``) and is
what ``responder explain`` reads back. It never holds secrets: outbound calls are listed by
provider, action and their public parameters, webhook URLs lose their query strings and
headers are left out.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from responder.clients.sender import loggable_endpoint, redact
from responder.events import Event
from responder.outbound import OutboundCall
from responder.runtime.outcome import Outcome
from responder.web.logs import TraceFields, mask_contact

# Every limit has a number: texts in a trace are cut to this many characters.
MAX_TRACE_TEXT: Final = 500
# What logging records as the caller when it does not look it up.
_NO_FILE: Final = "(unknown file)"
_NO_FUNCTION: Final = "(unknown function)"


def _cut(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_TRACE_TEXT:
        return text
    return text[:MAX_TRACE_TEXT] + "..."


def call_summary(call: OutboundCall, masked: bool) -> dict[str, Any]:
    """A call as a trace shows it: no credentials, no headers, no webhook query strings."""
    params: dict[str, Any] = {}
    if call.provider != "http":
        params = {k: _cut(v) if isinstance(v, str) else v for k, v in redact(call.params).items()}
        if masked and "dest" in params:
            params["dest"] = mask_contact(str(params["dest"]))
    return {
        "provider": call.provider,
        "action": call.method if call.provider == "http" else call.endpoint,
        "endpoint": loggable_endpoint(call),
        "rule": call.rule,
        "params": params,
    }


def event_fields(event: Event, masked: bool) -> dict[str, Any]:
    contact = mask_contact(event.contact) if masked else event.contact
    fields: dict[str, Any] = {
        "channel": event.channel,
        "provider": event.provider,
        "kind": event.kind,
        "contact": contact,
    }
    if event.provider_event:
        fields["provider_event"] = event.provider_event
    if event.text is not None:
        fields["text"] = _cut(event.text)
    if event.digits:
        fields["digits"] = event.digits
    if event.session:
        fields["session"] = event.session
    if event.status:
        fields["status"] = event.status
    return fields


def webhook_trace(
    event: Event,
    key: str,
    outcome: Outcome | None,
    *,
    fresh: bool,
    masked: bool,
    timings: dict[str, float],
) -> dict[str, Any]:
    """The trace fields of one webhook; ``outcome`` is None for a retried delivery."""
    fields = event_fields(event, masked)
    fields["key"] = key
    fields["timings_ms"] = {name: round(seconds * 1000, 3) for name, seconds in timings.items()}
    if outcome is None:
        fields["duplicate"] = True
        return fields
    fields["matched"] = list(outcome.matched)
    if outcome.limited:
        fields["limited"] = list(outcome.limited)
    if outcome.errors:
        fields["errors"] = list(outcome.errors)
    if outcome.transition is not None:
        dialogue, source, dest = outcome.transition
        fields["transition"] = {"dialogue": dialogue, "from": source, "to": dest}
        if outcome.conversation is not None and outcome.conversation.status != "active":
            fields["transition"]["ended"] = outcome.conversation.outcome or "ended"
    if not fresh:
        # Another copy of this webhook committed first; its effects are the ones that count.
        fields["concurrent_duplicate"] = True
        fields["effects"] = {"reply": None, "calls": []}
        return fields
    reply: dict[str, Any] | None = None
    if outcome.reply_text is not None or outcome.variables is not None:
        reply = {}
        if outcome.reply_text is not None:
            reply["text"] = _cut(outcome.reply_text)
        if outcome.variables is not None:
            reply["json"] = sorted(outcome.variables)
    fields["effects"] = {
        "reply": reply,
        "calls": [call_summary(call, masked) for call in outcome.calls],
    }
    return fields


class WebhookTrace(TraceFields):
    """The trace record of one webhook, built only as far as the log format asks: text lines
    need the one-line message (``str()``), JSON lines the fields too (``as_dict()``)."""

    __slots__ = ("_message", "event", "fresh", "key", "masked", "outcome", "timings")

    def __init__(
        self,
        event: Event,
        key: str,
        outcome: Outcome | None,
        *,
        fresh: bool,
        masked: bool,
        timings: dict[str, float],
    ) -> None:
        self.event = event
        self.key = key
        self.outcome = outcome
        self.fresh = fresh
        self.masked = masked
        self.timings = timings
        self._message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        fields = webhook_trace(
            self.event,
            self.key,
            self.outcome,
            fresh=self.fresh,
            masked=self.masked,
            timings=self.timings,
        )
        return {"event": "webhook", **fields}

    def record(self, logger: logging.Logger, trace_id: str | None) -> logging.LogRecord:
        """The INFO record of this trace, as ``logger.info`` makes it but without looking up
        the caller's file and line (a walk up the stack; no log format shows them)."""
        extra = {"trace": self, "trace_id": trace_id}
        return logger.makeRecord(
            logger.name, logging.INFO, _NO_FILE, 0, self, (), None, _NO_FUNCTION, extra
        )

    def __str__(self) -> str:
        """The one-line message of the trace, for text logs (made from the event and the
        outcome, without building the fields)."""
        if self._message is None:
            self._message = self._describe()
        return self._message

    def _describe(self) -> str:
        event, outcome = self.event, self.outcome
        contact = mask_contact(event.contact) if self.masked else event.contact
        who = contact or event.session or "-"
        if outcome is None:
            return _summary(event.channel, event.kind, who, duplicate=True)
        fresh = self.fresh
        return _summary(
            event.channel,
            event.kind,
            who,
            matched=list(outcome.matched),
            replied=fresh and (outcome.reply_text is not None or outcome.variables is not None),
            calls=len(outcome.calls) if fresh else 0,
            errors=len(outcome.errors),
            concurrent=not fresh,
        )


def _summary(
    channel: str,
    kind: str,
    who: str,
    *,
    duplicate: bool = False,
    matched: list[str] | None = None,
    replied: bool = False,
    calls: int = 0,
    errors: int = 0,
    concurrent: bool = False,
) -> str:
    head = f"{channel} {kind} from {who}"
    if duplicate:
        return f"{head}: retried delivery answered with the stored response"
    rules = f"rules {matched}" if matched else "no rule matched"
    tail = " (a concurrent delivery answered first)" if concurrent else ""
    replied_part = ", replied" if replied else ""
    failed = f", {errors} error(s)" if errors else ""
    return f"{head}: {rules}{replied_part}, {calls} call(s){failed}{tail}"
