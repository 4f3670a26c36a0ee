"""``mount``: the console's application, added under ``/console/`` to the server's."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Final

from aiohttp import web

from responder.console import conversations, login, outbox, rules, simulator, webhooks
from responder.console.auth import Gate, guard
from responder.console.masking import Masking
from responder.console.recent import Recent
from responder.console.sims import Simulations
from responder.console.state import CONSOLE, Console
from responder.console.views import environment, render
from responder.settings import Settings
from responder.web.server import OBSERVER

STATIC: Final = Path(__file__).parent / "static"
# The routes anyone may reach: the login form, and the package's static files.
OPEN: Final = frozenset({"login"})


def mount(app: web.Application, settings: Settings) -> None:
    """Serve the console on ``app`` (before it starts); ``settings.console_token`` is set."""
    if not settings.console_token:
        raise ValueError("the console needs a token")
    gate = Gate(settings.console_token)
    recent = Recent()
    console = web.Application(middlewares=[guard(gate, OPEN)])
    console[CONSOLE] = Console(
        settings,
        gate,
        Masking(settings.log_contacts == "masked", gate.secret),
        recent,
        environment(),
        Simulations(),
    )
    console.cleanup_ctx.append(_capturing(recent))
    add = console.router
    add.add_get("/", _home)
    add.add_get("/login", login.form, name="login")
    add.add_post("/login", login.login, name="login")
    add.add_post("/logout", login.logout)
    add.add_get("/conversations", conversations.listing)
    add.add_get("/conversations/{ref}", conversations.detail)
    add.add_get("/webhooks", webhooks.listing)
    add.add_get("/webhooks/{trace_id}", webhooks.detail)
    add.add_get("/outbox", outbox.listing)
    add.add_post("/outbox/retry", outbox.retry)
    add.add_get("/rules", rules.listing)
    add.add_post("/rules/reload", rules.reload)
    add.add_get("/simulator", simulator.page)
    add.add_post("/simulator/sessions", simulator.start)
    add.add_post("/simulator/sessions/{sid}/steps", simulator.step)
    add.add_get("/simulator/sessions/{sid}/transcript", simulator.transcript)
    add.add_static("/static/", STATIC, append_version=False, name="static")
    add.add_route("*", "/{tail:.*}", _missing)
    app[OBSERVER] = recent
    app.router.add_get("/console", _home)
    app.add_subapp("/console/", console)


async def _home(request: web.Request) -> web.StreamResponse:
    return web.Response(status=303, headers={"Location": "/console/conversations"})


async def _missing(request: web.Request) -> web.StreamResponse:
    return render(request, "missing.html", status=404, page="", what="page")


def _capturing(recent: Recent) -> Callable[[web.Application], AsyncIterator[None]]:
    """While the console runs, keep the log lines of each webhook (see ``Recent``)."""

    async def capture(_app: web.Application) -> AsyncIterator[None]:
        logger = logging.getLogger("responder")
        logger.addHandler(recent.handler)
        try:
            yield
        finally:
            logger.removeHandler(recent.handler)

    return capture
