"""Conversations: search by contact; one conversation with its state, variables, timer,
outcome, diagram and recent steps."""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from responder.console.recent import Step
from responder.console.views import console_of, contact_query, render
from responder.conversations import Conversation
from responder.tools.graph import diagram
from responder.web.server import ENGINE, STORE
from responder.web.trace import call_summary

LIMIT: Final = 100


async def listing(request: web.Request) -> web.Response:
    console = console_of(request)
    masking = console.masking
    contact = contact_query(request)
    found = await request.config_dict[STORE].find_conversations(contact, LIMIT)
    rows = [
        {
            "ref": masking.seal(c.key),
            "key": masking.key(c.key),
            "contact": masking.contact(c.contact),
            "dialogue": c.dialogue,
            "state": c.state,
            "status": c.status,
            "outcome": c.outcome,
            "updated": c.updated,
        }
        for c in found
    ]
    return render(
        request,
        "conversations.html",
        page="conversations",
        rows=rows,
        searched=masking.contact(contact),
        # A masked console does not write the number back into the search box.
        contact="" if masking.masked else contact or "",
        limit=LIMIT,
    )


async def detail(request: web.Request) -> web.Response:
    console = console_of(request)
    masking = console.masking
    key = masking.unseal(request.match_info["ref"])
    if key is None:
        return render(
            request, "missing.html", status=404, page="conversations", what="conversation"
        )
    store = request.config_dict[STORE]
    conversation = await store.get_conversation(key)
    timer = await store.get_timer(key)
    steps = [
        _step(step, console.masking.masked, masking.value) for step in console.recent.steps(key)
    ]
    if conversation is None and not steps:
        return render(
            request, "missing.html", status=404, page="conversations", what="conversation"
        )
    rules = request.config_dict[ENGINE].rules
    chart = None
    if conversation is not None and conversation.dialogue in rules.dialogues:
        mark = "current" if conversation.status == "active" else "uncovered"
        chart = diagram(rules, conversation.dialogue, {conversation.state: mark})
    return render(
        request,
        "conversation.html",
        page="conversations",
        key=masking.key(key),
        conversation=_shown(conversation, masking.contact, masking.value),
        timer=timer,
        steps=steps,
        chart=chart,
    )


def _shown(conversation: Conversation | None, contact: Any, value: Any) -> dict[str, Any] | None:
    if conversation is None:
        return None
    return {
        "dialogue": conversation.dialogue,
        "state": conversation.state,
        "status": conversation.status,
        "outcome": conversation.outcome,
        "channel": conversation.channel,
        "provider": conversation.provider,
        "contact": contact(conversation.contact),
        "session": conversation.session,
        "vars": value(dict(conversation.vars)),
        "visits": dict(conversation.visits),
        "step": conversation.seq,
        "version": conversation.version,
        "started": conversation.started,
        "updated": conversation.updated,
        "expires": conversation.expires,
    }


def _step(step: Step, masked: bool, value: Any) -> dict[str, Any]:
    if step.timer is not None:
        what = f"timer (step {step.timer.seq})"
    else:
        what = step.kind + (f" ({step.provider_event})" if step.provider_event else "")
    return {
        "at": step.at,
        "what": what,
        "text": step.text,
        "digits": step.digits,
        "trace": step.trace_id,
        "transition": step.transition,
        "ended": step.ended,
        "reply": step.reply,
        "calls": [value(call_summary(call, masked)) for call in step.calls],
        "errors": list(step.errors),
        "matched": [m for m in step.matched if not m.startswith("dialogue:")],
    }
