"""One trace per webhook: what came in, what matched, what it led to, and how long it took.

The trace is logged as one record (JSON fields with ``RESPONDER_LOG_FORMAT=json``) and is
what ``responder explain`` reads back. It never holds secrets: outbound calls are listed by
provider, action and their public parameters, webhook URLs lose their query strings and
headers are left out.
"""

from __future__ import annotations

from typing import Any, Final

from responder.clients.sender import loggable_endpoint, redact
from responder.engine import Outcome
from responder.events import Event
from responder.logs import mask_contact
from responder.outbound import OutboundCall

# Every limit has a number: texts in a trace are cut to this many characters.
MAX_TRACE_TEXT: Final = 500


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


def describe(fields: dict[str, Any]) -> str:
    """The one-line message of a trace, for text logs."""
    who = fields.get("contact") or fields.get("session") or "-"
    head = f"{fields['channel']} {fields['kind']} from {who}"
    if fields.get("duplicate"):
        return f"{head}: retried delivery answered with the stored response"
    matched = fields.get("matched")
    rules = f"rules {matched}" if matched else "no rule matched"
    effects = fields.get("effects") or {}
    calls = len(effects.get("calls") or ())
    tail = " (a concurrent delivery answered first)" if fields.get("concurrent_duplicate") else ""
    replied = ", replied" if effects.get("reply") else ""
    errors = len(fields.get("errors") or ())
    failed = f", {errors} error(s)" if errors else ""
    return f"{head}: {rules}{replied}, {calls} call(s){failed}{tail}"
