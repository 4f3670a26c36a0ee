"""The simulator page and its JSON steps: an SMS chat and a phone with a keypad, played
against the loaded rules on sessions of their own (``sims``); a session saved as a
transcript test."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from responder.console.sims import Refused, Session, conversation_view, shown
from responder.console.transcript import SUFFIX
from responder.console.views import console_of, render
from responder.transcripts.harness import DEFAULT_CONTACT, DEFAULT_NUMBER
from responder.web.server import ENGINE, SETTINGS


async def page(request: web.Request) -> web.Response:
    settings = request.config_dict[SETTINGS]
    rules = request.config_dict[ENGINE].rules
    channels = {
        provider: [name for name, p in settings.channels.items() if p == provider]
        for provider in ("textit", "hoiio")
    }
    return render(
        request,
        "simulator.html",
        page="simulator",
        channels=channels,
        contact=DEFAULT_CONTACT,
        number=DEFAULT_NUMBER,
        rules=len(rules.rules),
        dialogues=list(rules.dialogues),
    )


async def start(request: web.Request) -> web.Response:
    data = await _json(request)
    if data is None:
        return _refused("send a JSON object")
    settings = request.config_dict[SETTINGS]
    kind = str(data.get("kind", "sms"))
    provider = "hoiio" if kind == "call" else str(data.get("provider", "textit"))
    channel = str(data.get("channel") or provider)
    if settings.channels.get(channel) != provider:
        return _refused(f"no {provider} channel named {channel!r}")
    rules = request.config_dict[ENGINE].rules
    try:
        session = console_of(request).sims.start(
            rules,
            rules.files,
            kind=kind,
            provider=provider,
            channel=channel,
            contact=str(data.get("contact") or DEFAULT_CONTACT).strip(),
            number=str(data.get("number") or DEFAULT_NUMBER).strip(),
        )
    except Refused as exc:
        return _refused(str(exc))
    await session.harness.open()
    return web.json_response(_view(session, []))


async def step(request: web.Request) -> web.Response:
    session = console_of(request).sims.get(request.match_info["sid"])
    if session is None:
        return web.json_response({"error": "no such session (start a new one)"}, status=404)
    data = await _json(request)
    if data is None:
        return _refused("send a JSON object")
    try:
        seen, conversation = await session.play(str(data.get("action")), data.get("value"))
    except Refused as exc:
        return _refused(str(exc))
    view = _view(session, shown(seen))
    view["conversation"] = conversation_view(conversation)
    return web.json_response(view)


async def transcript(request: web.Request) -> web.Response:
    session = console_of(request).sims.get(request.match_info["sid"])
    if session is None:
        return web.json_response({"error": "no such session"}, status=404)
    name = f"simulated-{session.kind}-{session.id.split('-', 1)[0]}{SUFFIX}"
    return web.Response(
        text=session.transcript(),
        content_type="application/yaml",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _view(session: Session, events: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": session.id,
        "kind": session.kind,
        "provider": session.setup.provider,
        "channel": session.setup.channel,
        "contact": session.setup.contact,
        "number": session.setup.number,
        "clock": session.harness.clock.now,
        "steps": len(session.played),
        "in_call": session.in_call,
        "pending": session.pending(),
        "events": events,
    }


async def _json(request: web.Request) -> dict[str, Any] | None:
    try:
        data = await request.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _refused(why: str) -> web.Response:
    return web.json_response({"error": why}, status=409)
