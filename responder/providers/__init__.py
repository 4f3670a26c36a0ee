"""Provider adapters: pure functions from an HTTP request to an Event, and back to a reply."""

from __future__ import annotations

from responder.providers.base import Provider, WebhookRequest
from responder.providers.hoiio import HoiioProvider
from responder.providers.textit import TextItProvider

PROVIDERS: dict[str, Provider] = {"textit": TextItProvider(), "hoiio": HoiioProvider()}

__all__ = ["PROVIDERS", "Provider", "WebhookRequest"]
