"""Rendering: one autoescaping jinja2 environment over the console's templates, the filters
the pages use, and ``render`` with what every page needs (the CSRF token, the nav)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from responder import __version__
from responder.console.auth import COOKIE
from responder.console.state import CONSOLE, Console
from responder.web.server import CLOCK

NAV = (
    ("conversations", "Conversations"),
    ("webhooks", "Webhooks"),
    ("outbox", "Outbox"),
    ("rules", "Rules"),
    ("simulator", "Simulator"),
)


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("responder.console", "templates"),
        autoescape=select_autoescape(["html"], default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["pretty"] = pretty
    return env


def when(at: float | None) -> str:
    """A time as the console shows it: UTC, to the second."""
    if not at:
        return "—"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


def ago(now: float) -> Callable[[float | None], str]:
    def shown(at: float | None) -> str:
        if not at:
            return ""
        seconds = now - at
        later = seconds < 0
        seconds = abs(seconds)
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds >= size:
                amount = f"{int(seconds // size)}{unit}"
                break
        else:
            amount = f"{int(seconds)}s"
        return f"in {amount}" if later else f"{amount} ago"

    return shown


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def contact_query(request: web.Request) -> str | None:
    """The ``contact`` searched for; a ``+`` typed into a URL by hand arrives as a space."""
    raw = request.query.get("contact", "")
    if raw[:1] == " " and raw[1:].strip().isdigit():
        raw = "+" + raw[1:]
    return raw.strip() or None


def console_of(request: web.Request) -> Console:
    return request.config_dict[CONSOLE]


def render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    console = console_of(request)
    session = request.cookies.get(COOKIE)
    csrf = console.gate.csrf(session) if session and console.gate.session_ok(session) else ""
    now = request.config_dict[CLOCK]()
    page = console.pages.get_template(template).render(
        csrf=csrf,
        nav=NAV,
        version=__version__,
        masked=console.masking.masked,
        ago=ago(now),
        now=now,
        **context,
    )
    return web.Response(text=page, status=status, content_type="text/html", charset="utf-8")
