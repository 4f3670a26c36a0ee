"""Webhooks: the recent ones this process answered, and each one explained the way
``responder explain`` tells it, with the rules that listen for its event."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from responder.console.recent import Seen
from responder.console.views import console_of, contact_query, render
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
    trace = seen.trace
    matched = set(trace.outcome.matched) if trace.outcome is not None else set()
    limited = set(trace.outcome.limited) if trace.outcome is not None else set()
    rules = request.config_dict[ENGINE].rules
    tried = [
        {
            "name": rule.name,
            "where": f"{rule.file}:{rule.line}",
            "verdict": "matched"
            if rule.name in matched
            else "limited"
            if rule.name in limited
            else "not matched",
        }
        for rule in rules.candidates_for(trace.event)
    ]
    others = (
        [m for m in trace.outcome.matched if m not in {t["name"] for t in tried}]
        if (trace.outcome is not None)
        else []
    )
    conversation = None
    if trace.outcome is not None and trace.outcome.conversation is not None:
        conversation = console.masking.seal(trace.outcome.conversation.key)
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
