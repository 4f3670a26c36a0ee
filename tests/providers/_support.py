"""Shared helpers for the provider tests: payload files and request builders."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from responder.events import Event
from responder.providers.base import WebhookRequest

PAYLOADS = Path(__file__).resolve().parents[1] / "data" / "payloads"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"

# The Event fields every table row is compared on; a row lists the ones that are not None.
FIELDS = (
    "kind",
    "contact",
    "channel_number",
    "external_id",
    "text",
    "digits",
    "session",
    "status",
    "app_state",
    "provider_event",
    "urn",
    "contact_uuid",
    "contact_name",
    "time",
    "flow",
    "attachments",
)


def payload_names(provider: str) -> list[str]:
    """Every example payload file of ``provider``, sorted."""
    return sorted(p.name for p in (PAYLOADS / provider).iterdir() if p.is_file())


def payload(provider: str, name: str) -> bytes:
    """The raw body stored in a payload file (one line; the trailing newline is not part of it).

    A ``.query`` file holds a query string sent with GET and no body (TextIt flow webhooks);
    ``.txt`` a form body and ``.json`` a JSON body, both POSTed.
    """
    return (PAYLOADS / provider / name).read_bytes().rstrip(b"\r\n")


def method_of(name: str) -> str:
    """The HTTP method a payload file's sender uses."""
    return "GET" if name.endswith(".query") else "POST"


def content_type_of(name: str) -> str:
    """The Content-Type a payload file's body is sent with ("" for a GET: no body)."""
    if name.endswith(".query"):
        return ""
    return JSON if name.endswith(".json") else FORM


def request_of(provider: str, name: str) -> WebhookRequest:
    """A payload file as the request its sender makes."""
    raw = payload(provider, name)
    if method_of(name) == "GET":
        return WebhookRequest(query=tuple(pairs(raw)), body=b"", method="GET")
    return WebhookRequest(query=(), body=raw, content_type=content_type_of(name))


def pairs(body: bytes) -> list[tuple[str, str]]:
    """Decode a form body the way a web framework decodes a query string."""
    return parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=True)


def form(
    body: bytes | str, query: Iterable[tuple[str, str]] = (), ctype: str = FORM
) -> WebhookRequest:
    """A request with a form-encoded (or any raw) body."""
    raw = body.encode() if isinstance(body, str) else body
    return WebhookRequest(query=tuple(query), body=raw, content_type=ctype)


def query_only(body: bytes) -> WebhookRequest:
    """The same params, carried in the URL query string with an empty body."""
    return WebhookRequest(query=tuple(pairs(body)), body=b"", content_type="")


def split(body: bytes) -> WebhookRequest:
    """The same params, alternately in the query string and in the form body."""
    items = pairs(body)
    return WebhookRequest(
        query=tuple(items[0::2]), body=urlencode(items[1::2]).encode(), content_type=FORM
    )


def project(event: Event) -> dict[str, Any]:
    """The table-comparable view of an event (times as ISO strings, so the zone is compared)."""
    out: dict[str, Any] = {}
    for name in FIELDS:
        value = getattr(event, name)
        if name == "time" and value is not None:
            value = value.isoformat()
        out[name] = value
    return out


def expected(row: Mapping[str, Any]) -> dict[str, Any]:
    """A table row completed with the defaults of every field it does not list."""
    out: dict[str, Any] = dict.fromkeys(FIELDS)
    out["attachments"] = ()
    out.update({k: v for k, v in row.items() if k in FIELDS})
    return out
