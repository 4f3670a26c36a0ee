"""The console's own state, one object on its application."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from jinja2 import Environment

from responder.console.auth import Gate
from responder.console.masking import Masking
from responder.console.recent import Recent
from responder.console.sims import Simulations
from responder.settings import Settings


@dataclass(frozen=True, slots=True)
class Console:
    settings: Settings
    gate: Gate
    masking: Masking
    recent: Recent
    pages: Environment
    sims: Simulations


CONSOLE = web.AppKey("console", Console)
