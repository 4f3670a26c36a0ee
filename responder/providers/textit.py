"""TextIt (hosted RapidPro) webhooks: legacy form events, legacy flow events, JSON flow webhooks."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

from responder.events import Event, Flow, FlowValue, freeze, value_key
from responder.providers.base import (
    EMPTY_OK,
    HttpReply,
    Params,
    WebhookRequest,
    body_hash,
    first,
    key_part,
    parse_params,
)
from responder.speed import dumps

KIND_BY_EVENT: Final[Mapping[str, str]] = MappingProxyType(
    {
        "mo_sms": "sms.received",
        "mt_sent": "sms.sent",
        "mt_dlvd": "sms.delivered",
        "mt_fail": "sms.failed",
        "mo_miss": "call.missed",
        "mo_call": "call.received",
        "mt_call": "call.made",
        "mt_miss": "call.unanswered",
        "alarm": "channel.alarm",
        "flow": "flow.step",
    }
)

# The documented examples spell some fields differently from what the sender emits; both
# spellings are accepted and ``raw`` also carries the emitted name (originals are kept).
_RAW_ALIASES: Final = (
    ("battery", "power_level"),
    ("unsent", "pending_message_count"),
    ("channel_phone", "relayer_phone"),
    ("channel", "relayer"),
)
_CALL_EVENTS: Final = frozenset({"mo_call", "mo_miss", "mt_call", "mt_miss"})
_SMS_EVENTS: Final = frozenset({"mo_sms", "mt_sent", "mt_dlvd", "mt_fail"})

# TextIt validates the reply body and silently drops a text over 480 characters.
MAX_REPLY_TEXT: Final = 480
# An anonymous workspace sends ``phone=********`` for every contact (RapidPro
# ContactURN.ANON_MASK). No phone number or URN path holds a '*', so one that does is masked.
MASK_CHAR: Final = "*"
_TIME_FORMATS: Final = ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S")


def parse_time(value: str | None) -> datetime | None:
    """Parse RapidPro times: microseconds or milliseconds, with or without ``Z`` (UTC)."""
    if not value:
        return None
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
        for fmt in _TIME_FORMATS:
            try:
                parsed = datetime.strptime(text.rstrip("Z"), fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def urn_path(urn: str | None) -> str | None:
    """``tel:+250788123123`` -> ``+250788123123``; other schemes keep their path."""
    if not urn:
        return None
    _, sep, path = urn.partition(":")
    return path if sep else urn


def identity(value: str | None) -> str | None:
    """``value`` if it can name a contact: not empty and not masked by an anonymous workspace."""
    if not value or MASK_CHAR in value:
        return None
    return value


def usable_urn(urn: str | None) -> str | None:
    """``urn`` if its path names a contact (``tel:********`` or ``tel:`` does not)."""
    return urn if identity(urn_path(urn)) else None


def _category(raw: Any, language: str | None) -> str:
    # 2015-09 to 2017-12 senders give a per-language object instead of a string.
    if isinstance(raw, dict):
        for key in (language, "base", "eng"):
            if key and isinstance(raw.get(key), str):
                return str(raw[key])
        for value in raw.values():
            if isinstance(value, str):
                return value
        return ""
    return "" if raw is None else str(raw)


def _legacy_values(
    text: str | None, language: str | None
) -> tuple[dict[str, FlowValue], str | None]:
    if not text:
        return {}, None
    try:
        items = json.loads(text)
    except (ValueError, RecursionError):
        return {}, "flow values are not valid JSON; ignored"
    if not isinstance(items, list):
        return {}, "flow values are not a JSON list; ignored"
    values: dict[str, FlowValue] = {}
    for item in items:
        if not isinstance(item, dict) or not item.get("label"):
            continue
        label = str(item["label"])
        values[value_key(label)] = FlowValue(
            label=label,
            category=_category(item.get("category"), language),
            value=_str(item.get("value")),
            text=_str(item.get("text")),
        )
    return values, None


def _modern_values(results: Any) -> dict[str, FlowValue]:
    values: dict[str, FlowValue] = {}
    if not isinstance(results, dict):
        return values
    for key, item in results.items():
        if not isinstance(item, dict):
            continue
        label = _str(item.get("name")) or str(key)
        text = item.get("input")
        values[value_key(str(key))] = FlowValue(
            label=label,
            category=_category(item.get("category"), None),
            value=_str(item.get("value")),
            text=_str(text),
        )
    return values


def _canonical(values: Mapping[str, str], event_name: str | None) -> dict[str, str]:
    """``values`` plus the emitted names of documented aliases that were used instead."""
    out = dict(values)
    for documented, emitted in _RAW_ALIASES:
        if documented in out and emitted not in out:
            out[emitted] = out[documented]
    id_name = "call" if event_name in _CALL_EVENTS else "sms" if event_name in _SMS_EVENTS else None
    if id_name and "id" in out and id_name not in out:
        out[id_name] = out["id"]
    return out


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _obj(document: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = document.get(key)
    return value if isinstance(value, dict) else {}


class TextItProvider:
    """Parse TextIt webhooks and render TextIt reply bodies."""

    name = "textit"
    # Flow webhooks may be sent with GET: RapidPro's editor makes new Call Webhook nodes GET,
    # with the parameters the author wrote into the URL and no body. Everything else is POST.
    methods = frozenset({"POST", "GET"})
    # The event kinds TextIt's webhooks can become.
    kinds = frozenset(KIND_BY_EVENT.values()) | {"flow.step", "unknown"}

    def parse(self, channel: str, request: WebhookRequest) -> Event:
        params = parse_params(request)
        doc = params.document
        if doc is not None and isinstance(doc.get("flow"), dict):
            return self._modern_flow(channel, params, doc)
        return self._legacy(channel, params, flow_call=request.method == "GET")

    def _legacy(self, channel: str, params: Params, *, flow_call: bool = False) -> Event:
        """A form event, or a flow webhook whose parameters are in the query (``flow_call``:
        only a flow's Call Webhook node sends GET, with whatever names its author chose)."""
        v = params.values
        event_name = first(v, "event")
        is_flow = (
            flow_call
            or event_name == "flow"
            or (
                event_name is None
                and ("flow" in v or "run" in v)
                and ("values" in v or "step" in v)
            )
        )
        kind = "flow.step" if is_flow else KIND_BY_EVENT.get(event_name or "", "unknown")
        notes = list(params.notes)
        urn = usable_urn(first(v, "urn"))
        given_time = first(v, "time", "last_seen")
        time = parse_time(given_time)
        if given_time and time is None:
            notes.append("unreadable time ignored")
        flow = None
        values: dict[str, FlowValue] = {}
        if kind == "flow.step":
            language = first(v, "flow_base_language")
            step = first(v, "step")
            flow = Flow(
                id=first(v, "flow"),
                uuid=first(v, "flow_uuid"),
                name=first(v, "flow_name"),
                step=None if step == "None" else step,
                run=first(v, "run"),
                # The form's ``time`` is when the flow called: the moment it reached the step.
                arrived_on=time,
            )
            values, note = _legacy_values(v.get("values"), language)
            if note:
                notes.append(note)
        external = first(v, "sms", "call", "id") if not is_flow else first(v, "run")
        return Event(
            provider=self.name,
            channel=channel,
            kind=kind,
            # A masked or empty phone is nobody: the URN (complete even in an anonymous
            # workspace) names the contact, else the contact UUID does (compliance keys on it).
            contact=identity(first(v, "phone")) or urn_path(urn),
            channel_number=first(v, "relayer_phone", "channel_phone"),
            text=v.get("text"),
            status=first(v, "status", "power_status"),
            flow=flow,
            values=MappingProxyType(values),
            external_id=external,
            time=time,
            urn=urn,
            contact_uuid=first(v, "contact"),
            contact_name=first(v, "contact_name"),
            provider_event="flow" if flow_call else event_name or ("flow" if is_flow else None),
            attachments=tuple(params.every("attachments")) if "attachments" in v else (),
            app_state=first(v, "app_state"),
            raw=MappingProxyType(_canonical(v, event_name)),  # a copy of its own
            notes=tuple(notes),
        )

    def _modern_flow(self, channel: str, params: Params, doc: dict[str, Any]) -> Event:
        contact = _obj(doc, "contact")
        flow = _obj(doc, "flow")
        run = _obj(doc, "run")
        chan = _obj(doc, "channel")
        inp = _obj(doc, "input")
        path = doc.get("path")
        step = arrived_on = None
        if isinstance(path, list) and path and isinstance(path[-1], dict):
            step = _str(path[-1].get("node_uuid")) or None
            arrived_on = parse_time(_str(path[-1].get("arrived_on")) or None)
        urn_raw = contact.get("urn")
        if isinstance(urn_raw, dict):  # goflow renders some URNs as objects
            urn_raw = f"{urn_raw.get('scheme', 'tel')}:{urn_raw.get('path', '')}"
        urn = _str(urn_raw) or None
        in_urn = inp.get("urn")
        if isinstance(in_urn, dict):
            in_urn = f"{in_urn.get('scheme', 'tel')}:{in_urn.get('path', '')}"
        urn = usable_urn(urn) or usable_urn(_str(in_urn) or None)
        attachments = []
        listed = inp.get("attachments")
        for item in listed if isinstance(listed, list) else ():
            if isinstance(item, dict):
                attachments.append(_str(item.get("url")))
            elif isinstance(item, str):
                attachments.append(item)
        text = inp.get("text")
        return Event(
            provider=self.name,
            channel=channel,
            kind="flow.step",
            contact=urn_path(urn),
            channel_number=_str(chan.get("address")) or None,
            text=None if text is None else _str(text),
            flow=Flow(
                uuid=_str(flow.get("uuid")) or None,
                name=_str(flow.get("name")) or None,
                step=step,
                run=_str(run.get("uuid")) or None,
                arrived_on=arrived_on,
            ),
            values=MappingProxyType(_modern_values(doc.get("results"))),
            external_id=_str(run.get("uuid")) or None,
            time=parse_time(_str(inp.get("created_on")) or None),
            urn=urn,
            contact_uuid=_str(contact.get("uuid")) or None,
            contact_name=_str(contact.get("name")) or None,
            provider_event="flow",
            attachments=tuple(attachments),
            app_state=first(params.values, "app_state"),
            raw=freeze(params.values),
            notes=params.notes,
        )

    def idempotency_key(self, event: Event, request: WebhookRequest) -> str:
        if event.kind == "flow.step":
            return _flow_key(event)
        if event.external_id and event.provider_event:
            # Retries repeat the same event type and message/call id on the same relayer.
            relayer = first(event.raw, "relayer", "channel") or ""
            parts = (event.provider_event, relayer, event.external_id)
            return f"textit:{event.channel}:" + ":".join(key_part(p) for p in parts)
        # Account-level events are retried (3 attempts) byte for byte.
        return f"textit:{event.channel}:body:{body_hash(request)}"

    def reply(
        self, event: Event, text: str | None, variables: Mapping[str, Any] | None
    ) -> HttpReply:
        if event.kind == "flow.step":
            if variables is None and text is None:
                return EMPTY_OK
            body: dict[str, Any] = dict(variables or {})
            if text is not None:
                body.setdefault("text", text)
            return _json(body)
        if text is None:
            return EMPTY_OK
        address = _address(event)
        if address is None:
            return EMPTY_OK
        key, value = address
        message: dict[str, Any] = {key: [value], "text": text[:MAX_REPLY_TEXT]}
        channel = _channel_id(event)
        if channel is not None:
            # Without it TextIt sends from the workspace's most recently seen channel, which
            # need not be the one the contact wrote to.
            message["channel"] = channel
        return _json(message)


def _flow_key(event: Event) -> str:
    """One call of a flow webhook: its run, step and the moment the run reached the step.

    RapidPro does not retry flow webhooks today (mailroom retried some from 2020 to 2025,
    byte for byte), and a contact who goes through a flow again sends the same answers
    again: a body is no identity. A call without a run and a moment carries nothing that
    tells a retry from the next visit, so it gets a key of its own and runs.
    """
    flow = event.flow
    if flow is None or not flow.run or flow.arrived_on is None:
        return f"textit:{event.channel}:flow-once:{uuid.uuid4().hex}"
    step = f"{flow.run}\0{flow.step or ''}\0{flow.arrived_on.isoformat()}"
    return f"textit:{event.channel}:flow:{hashlib.sha256(step.encode()).hexdigest()[:32]}"


def _address(event: Event) -> tuple[str, str] | None:
    # Answer the way the event was addressed: phone, else URN, else contact UUID. A masked
    # phone (anonymous workspace) is refused by TextIt and an empty one reaches nobody.
    phone = identity(first(event.raw, "phone"))
    if phone:
        return "phone", phone
    if event.urn:
        return "urn", event.urn
    if event.contact_uuid:
        return "contact", event.contact_uuid
    return None


def _channel_id(event: Event) -> int | None:
    """The channel the event came through, as the reply's ``channel`` names it: its database
    id, as ``relayer`` (and ``channel``) carry it (``-1`` or empty when there is none)."""
    relayer = first(event.raw, "relayer", "channel")
    # A positive integer of at most 18 digits (no sign, no leading zero, ASCII digits only).
    if (
        relayer is None
        or not (relayer.isascii() and relayer.isdigit())
        or relayer[0] == "0"
        or len(relayer) > 18
    ):
        return None
    return int(relayer)


def _json(body: Mapping[str, Any]) -> HttpReply:
    data = dumps(body).encode()
    return HttpReply(status=200, content_type="application/json", body=data)
