"""Hoiio notifications: incoming SMS, SMS status, voice call status, fax and IVR blocks."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Final

from responder.events import Event, freeze
from responder.providers.base import (
    EMPTY_OK,
    HttpReply,
    WebhookRequest,
    body_hash,
    first,
    key_part,
    parse_params,
)

# Hoiio dates are "YYYY-MM-DD HH:MM:SS" (sometimes with ".0") in GMT+8.
HOIIO_TZ: Final = timezone(timedelta(hours=8), "GMT+8")

IVR_BLOCKS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "answer": "ivr.answer",
        "dial": "ivr.dial",
        "play": "ivr.play",
        "gather": "ivr.gather",
        "record": "ivr.record",
        "monitor": "ivr.monitor",
        "unhold": "ivr.unhold",
        "transfer": "ivr.transfer",
        "hangup": "ivr.hangup",
    }
)

SMS_STATUS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "queued": "sms.sent",
        "delivered": "sms.delivered",
        "failed": "sms.failed",
        "error": "sms.failed",
    }
)

# Result fields that carry a notification's status, most specific first.
_STATUS_FIELDS: Final = ("transfer_status", "dial_status", "fax_status", "sms_status")
# Where an event's status is read from, in this order.
_STATUS_KEYS: Final = (*_STATUS_FIELDS, "call_status_dest2", "call_state")


def parse_date(value: str | None) -> datetime | None:
    """Parse a Hoiio date (GMT+8), tolerating a fractional part."""
    if not value:
        return None
    text = value.strip().split(".")[0]
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=HOIIO_TZ)
    except ValueError:
        return None


def gathered(digits: str | None) -> str | None:
    """The keys a caller pressed, without the ``#`` that ended the input.

    A gather ends on ``#`` whatever ``max_digits`` says (openapi.hoiio.com ivr-api/gather:
    "max_digits ... default 0 = until # or timeout; # always ends input" [DOC]). Whether
    ``digits`` carries that ``#`` is not documented [UNCONFIRMED], so one at the end is
    taken off: ``1#`` matches a rule for ``1``, and ``#`` alone is an empty answer, as a
    timeout with nothing pressed. ``raw`` keeps what was sent.
    """
    if digits is not None and digits.endswith("#"):
        return digits[:-1]
    return digits


def classify(v: Mapping[str, str]) -> tuple[str, str | None]:
    """The event kind of a notification, and the name of the block or status that says so."""
    block = first(v, "ivr_block")
    state = first(v, "call_state")
    if block is not None:
        block = block.lower()
        if state == "ended" and block != "hangup":
            return "ivr.ended", block
        return IVR_BLOCKS.get(block, "unknown"), block
    if state is not None:
        state = state.lower()
        if state == "ringing":
            return "ivr.answer", "answer"
        if state == "ended":
            return "ivr.ended", "ended"
        # Older notifications name no block: infer it from the result fields.
        for key, block_name in (
            ("digits", "gather"),
            ("record_url", "record"),
            ("transfer_status", "transfer"),
            ("dial_status", "dial"),
        ):
            if key in v:
                return IVR_BLOCKS[block_name], block_name
        return "ivr.play", "play"
    if "sms_status" in v:
        return SMS_STATUS.get(v["sms_status"].strip().lower(), "unknown"), "sms_status"
    if "fax_status" in v:
        return "fax.received", "fax"
    if "call_status_dest1" in v or "call_status_dest2" in v:
        answered = (first(v, "call_status_dest2") or "").lower() == "answered"
        return ("call.made" if answered else "call.unanswered"), "call"
    if "msg" in v and "from" in v:
        return "sms.received", "sms"
    return "unknown", None


class HoiioProvider:
    """Parse Hoiio notifications; Hoiio ignores response bodies, so replies are empty."""

    name = "hoiio"
    # Hoiio POSTs every notification (openapi.hoiio.com handling-notifications [DOC]); GET
    # is only how an app may call Hoiio's own API.
    methods = frozenset({"POST"})
    # The event kinds Hoiio's notifications can become.
    kinds = (
        frozenset(IVR_BLOCKS.values())
        | frozenset(SMS_STATUS.values())
        | {"ivr.ended", "ivr.answer", "ivr.play", "sms.received", "fax.received"}
        | {"call.made", "call.unanswered", "unknown"}
    )

    def parse(self, channel: str, request: WebhookRequest) -> Event:
        params = parse_params(request)
        v = params.values
        kind, block = classify(v)
        notes = list(params.notes)
        date = first(v, "date")
        time = parse_date(date)
        if date and time is None:
            notes.append("unreadable date ignored")
        if kind in ("sms.sent", "sms.delivered", "sms.failed"):
            contact = first(v, "dest")
        elif kind in ("call.made", "call.unanswered"):
            contact = first(v, "dest2", "dest1")
        elif kind == "ivr.dial":
            contact = first(v, "dest", "to")
        elif kind == "ivr.transfer":
            # A transfer's ``dest`` is the number the caller was put through to, not the caller.
            contact = first(v, "from")
        else:
            contact = first(v, "from", "dest")
        status = None
        for key in _STATUS_KEYS:
            if key in v:  # most are absent: no call for them
                status = first(v, key)
                if status:
                    break
        return Event(
            provider=self.name,
            channel=channel,
            kind=kind,
            contact=contact,
            channel_number=first(v, "to") if kind != "ivr.dial" else first(v, "from"),
            text=v.get("msg"),
            digits=gathered(v.get("digits")),
            session=first(v, "session"),
            status=status,
            app_state=first(v, "app_state"),
            external_id=first(v, "txn_ref"),
            time=time,
            provider_event=block,
            raw=freeze(v),
            notes=tuple(notes),
        )

    def idempotency_key(self, event: Event, request: WebhookRequest) -> str:
        if event.external_id:
            # One transaction yields several notifications (queued then delivered, one per
            # IVR block); a re-sent one repeats every parameter, so they go into the key.
            digest = hashlib.sha256()
            for key, value in sorted(event.raw.items()):
                digest.update(f"{key}={value}\0".encode())
            return (
                f"hoiio:{event.channel}:{key_part(event.external_id)}:"
                f"{key_part(event.provider_event or '-')}:{digest.hexdigest()[:24]}"
            )
        return f"hoiio:{event.channel}:body:{body_hash(request)}"

    def reply(
        self, event: Event, text: str | None, variables: Mapping[str, Any] | None
    ) -> HttpReply:
        return EMPTY_OK
