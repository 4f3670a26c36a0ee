"""The names templates and expressions see when an event is handled."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from jinja2 import ChainableUndefined

from responder.events import Event
from responder.matching.calendars import Calendar, views


class FlowValues(dict[str, Any]):
    """A flow's collected values by label. A label the run has not collected (yet) reads as
    blank, as in RapidPro (``@results.shipping`` is empty), and ``default`` still applies:
    ``{{ values.shipping.value | default('none') }}``."""

    def __missing__(self, key: str) -> Any:
        return ChainableUndefined(name=f"values.{key}")


# The values of an event that has none (most): one shared mapping, which templates cannot
# change (the sandbox refuses every mutating method).
NO_VALUES: Final = FlowValues()


def template_context(
    event: Event, now: datetime, calendars: Mapping[str, Calendar] | None = None
) -> dict[str, Any]:
    """The names templates and expressions see (documented in docs/rules.md)."""
    flow = event.flow
    return {
        "contact": event.contact or "",
        "contact_name": event.contact_name or "",
        "contact_uuid": event.contact_uuid or "",
        "urn": event.urn or "",
        "text": event.text or "",
        "digits": event.digits or "",
        "session": event.session or "",
        "status": event.status or "",
        "channel": event.channel,
        "channel_number": event.channel_number or "",
        "provider": event.provider,
        "kind": event.kind,
        "attachments": list(event.attachments),
        "values": FlowValues(
            {
                key: {"label": v.label, "category": v.category, "value": v.value, "text": v.text}
                for key, v in event.values.items()
            }
        )
        if event.values
        else NO_VALUES,
        "flow": {
            "id": flow.id,
            "uuid": flow.uuid,
            "name": flow.name,
            "step": flow.step,
            "run": flow.run,
        }
        if flow
        else {},
        "event": dict(event.raw),
        "captures": {},
        "now": now,
        "rule": "",
        "vars": {},
        "calendars": views(calendars or {}, now),
    }
