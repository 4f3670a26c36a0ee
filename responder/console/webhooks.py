"""Webhooks: the recent ones this process answered, and each one explained the way
``responder explain`` tells it, with the rules that listen for its event."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from responder.console.recent import Seen
from responder.console.views import console_of, contact_query, render
from responder.rules.model import Rule
from responder.runtime.outcome import NOTHING, Outcome
from responder.tools.explain import tell
from responder.web.server import ENGINE

LIMIT: Final = 200


async def listing(request: web.Request) -> web.Response:
    console = console_of(request)
    contact = contact_query(request)
    rows = []
    for seen in console.recent.webhooks():
        if contact is not None and seen.trace.event.contact != contact:
            continue
        rows.append(_row(seen))
        if len(rows) >= LIMIT:
            break
    return render(
        request,
        "webhooks.html",
        page="webhooks",
        rows=rows,
        contact="" if console.masking.masked else contact or "",
        searched=console.masking.contact(contact),
        limit=LIMIT,
    )


def _verdict(rule: Rule, outcome: Outcome) -> str:
    if rule.name in outcome.matched:
        return "matched"
    return "limited" if rule.name in outcome.limited else "not matched"


def _row(seen: Seen) -> dict[str, Any]:
    fields = seen.trace.as_dict()
    effects = fields.get("effects") or {}
    return {
        "at": seen.at,
        "trace_id": seen.trace_id,
        "channel": fields["channel"],
        "kind": fields["kind"],
        "contact": fields.get("contact") or fields.get("session") or "—",
        "said": fields.get("text") if fields.get("text") is not None else fields.get("digits"),
        "matched": [m for m in fields.get("matched") or () if not m.startswith("dialogue:")],
        "transition": fields.get("transition"),
        "replied": bool(effects.get("reply")),
        "calls": len(effects.get("calls") or ()),
        "errors": len(fields.get("errors") or ()),
        "duplicate": bool(fields.get("duplicate") or fields.get("concurrent_duplicate")),
        "ms": (fields.get("timings_ms") or {}).get("total"),
    }


async def detail(request: web.Request) -> web.Response:
    console = console_of(request)
    trace_id = request.match_info["trace_id"]
    seen = console.recent.find(trace_id)
    if seen is None:
        return render(request, "missing.html", status=404, page="webhooks", what="webhook")
    fields = seen.trace.as_dict()
    record = {
        "time": datetime.fromtimestamp(seen.at, UTC).isoformat(timespec="milliseconds"),
        "trace_id": trace_id,
        **fields,
    }
    logs = [
        {"level": line.level, "logger": line.logger, "message": line.message}
        for line in console.recent.logs(trace_id)
    ]
    story = io.StringIO()
    tell(record, logs, story)
    outcome = seen.trace.outcome or NOTHING
    rules = request.config_dict[ENGINE].rules
    tried = [
        {"name": rule.name, "where": f"{rule.file}:{rule.line}", "verdict": _verdict(rule, outcome)}
        for rule in rules.candidates_for(seen.trace.event)
    ]
    # Dialogues and compliance keywords take events too, ahead of or instead of rules.
    names = {t["name"] for t in tried}
    others = [name for name in outcome.matched if name not in names]
    conversation = None
    if outcome.conversation is not None:
        conversation = console.masking.seal(outcome.conversation.key)
    effects = fields.get("effects") or {}
    return render(
        request,
        "webhook.html",
        page="webhooks",
        at=seen.at,
        trace_id=trace_id,
        fields=fields,
        story=story.getvalue(),
        tried=tried,
        others=others,
        reply=effects.get("reply"),
        calls=[console.masking.value(call) for call in effects.get("calls") or ()],
        duplicate=bool(fields.get("duplicate")),
        conversation=conversation,
    )
