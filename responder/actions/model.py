"""The actions a rule or a dialogue state can take, as compiled from YAML: plain frozen data
whose strings are Templates, rendered by ``responder.actions.render``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from responder.templating.templates import Template


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer the webhook: a text (TextIt Messages format / Hoiio SMS) or flow variables."""

    text: Template | None = None
    json: Any = None  # a JSON tree whose strings are Templates


@dataclass(frozen=True, slots=True)
class Sms:
    """Send an SMS to any number through a provider's API."""

    text: Template
    to: Template | None = None  # default: the event's contact
    via: str | None = None  # default: the event's provider


@dataclass(frozen=True, slots=True)
class Hangup:
    """End a Hoiio IVR call (``ivr/end/hangup``), optionally saying something first."""

    say: Template | None = None


@dataclass(frozen=True, slots=True)
class Http:
    """Call an HTTP webhook of your own."""

    url: Template
    method: str = "POST"
    json: Any = None
    headers: Mapping[str, Template] = field(default_factory=dict)
    timeout: float = 10.0
