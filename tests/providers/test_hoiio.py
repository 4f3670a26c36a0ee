"""Hoiio adapter: every example notification, query vs body transport, keys and replies."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest

from responder.errors import BadRequest
from responder.events import KINDS, Event
from responder.providers.base import MAX_PARAMS, HttpReply, WebhookRequest
from responder.providers.hoiio import HoiioProvider

from ._support import FORM, JSON, expected, form, pairs, payload, payload_names, project, split
from ._support import query_only as query_request

CALLER = "+6591234567"
HOIIO_NUMBER = "+6531234567"

# One row per payload file (hoiio.md §6, plus §2.5 fax, hangup and dial).
TABLE: dict[str, dict[str, Any]] = {
    # §6 documented example (labelled sms/send, but the field set of an incoming SMS).
    "sms_received_documented.txt": {
        "kind": "sms.received",
        "contact": "+16201234567",
        "channel_number": "+16501234567",
        "text": "hoiio world",
        "external_id": "AA-SI-85",
        "provider_event": "sms",
        "time": "2012-10-30T12:20:50+08:00",
    },
    # §6 incoming call, newer + older naming together, and each naming alone.
    "ivr_answer.txt": {
        "kind": "ivr.answer",
        "contact": CALLER,
        "channel_number": HOIIO_NUMBER,
        "session": "S-1234",
        "status": "ringing",
        "external_id": "AA-I-1",
        "provider_event": "answer",
    },
    "ivr_answer_block_only.txt": {
        "kind": "ivr.answer",
        "contact": CALLER,
        "channel_number": HOIIO_NUMBER,
        "session": "S-1234",
        "external_id": "AA-I-1",
        "provider_event": "answer",
    },
    "ivr_answer_ringing_only.txt": {
        "kind": "ivr.answer",
        "contact": CALLER,
        "channel_number": HOIIO_NUMBER,
        "session": "S-1234",
        "status": "ringing",
        "external_id": "AA-I-1",
        "provider_event": "answer",
    },
    # §6 gather result with the pass-on app_state.
    "ivr_gather.txt": {
        "kind": "ivr.gather",
        "digits": "1",
        "session": "S-1234",
        "status": "ongoing",
        "app_state": "gather",
        "external_id": "AA-I-1",
        "provider_event": "gather",
    },
    "ivr_record.txt": {
        "kind": "ivr.record",
        "session": "S-1234",
        "status": "ongoing",
        "external_id": "AA-I-1",
        "provider_event": "record",
    },
    # §6 transfer failed with on_failure=continue: dest is the transfer target, not the caller.
    "ivr_transfer_failed.txt": {
        "kind": "ivr.transfer",
        "session": "S-1234",
        "status": "busy",
        "external_id": "AA-I-1",
        "provider_event": "transfer",
    },
    "ivr_call_ended.txt": {
        "kind": "ivr.ended",
        "contact": CALLER,
        "channel_number": HOIIO_NUMBER,
        "session": "S-1234",
        "status": "ended",
        "external_id": "AA-I-1",
        "provider_event": "ended",
        "time": "2012-10-30T12:20:50+08:00",
    },
    "sms_status_delivered.txt": {
        "kind": "sms.delivered",
        "contact": "+6511111111",
        "status": "delivered",
        "external_id": "AA-S-141147",
        "provider_event": "sms_status",
        "time": "2012-10-30T12:20:50+08:00",
    },
    "voice_call_ended.txt": {
        "kind": "call.made",
        "contact": "+6522222222",
        "status": "answered",
        "external_id": "AA-S-141147",
        "provider_event": "call",
        "time": "2010-01-01T10:10:00+08:00",
    },
    # §2.5 incoming fax.
    "fax_received.txt": {
        "kind": "fax.received",
        "contact": "+6562345678",
        "channel_number": HOIIO_NUMBER,
        "status": "answered",
        "external_id": "AA-FI-2311",
        "provider_event": "fax",
        "time": "2012-10-30T12:25:03+08:00",
    },
    # Hangup block notification, sent with the end-of-call billing fields.
    "ivr_hangup.txt": {
        "kind": "ivr.hangup",
        "contact": CALLER,
        "channel_number": HOIIO_NUMBER,
        "session": "S-1234",
        "status": "ended",
        "external_id": "AA-I-1",
        "provider_event": "hangup",
        "time": "2012-10-30T12:22:10+08:00",
    },
    # Outbound Dial answered: the contact is the dialled number, the channel our caller id.
    "ivr_dial.txt": {
        "kind": "ivr.dial",
        "contact": "+6598765432",
        "channel_number": HOIIO_NUMBER,
        "session": "S-5678",
        "status": "answered",
        "external_id": "AA-I-2",
        "provider_event": "dial",
    },
}

# Fields the table cannot show because Event has no attribute for them: they stay in raw.
RAW: dict[str, dict[str, str]] = {
    "ivr_record.txt": {
        "record_url": "https://secure.hoiio.com/open/ivr/recordings/S-1234-AA-I-1.mp3"
    },
    "ivr_transfer_failed.txt": {"dest": "+6599999999", "transfer_status": "busy"},
    "ivr_gather.txt": {"tag": "myapp"},
    "ivr_call_ended.txt": {"duration": "2", "currency": "SGD", "rate": "0.02", "debit": "0.04"},
    "sms_status_delivered.txt": {"split_count": "1", "tag": "id_1", "debit": "0.038"},
    "voice_call_ended.txt": {"dest1": "+6511111111", "call_status_dest1": "answered"},
    "fax_received.txt": {
        "fax_url": "https://hoiio-fax.s3.amazonaws.com/incoming/AA-FI-2311.pdf"
        "?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1351600000"
        "&Signature=q2xB7v3xTQ%2B9fW2Yw0k%3D",
        "duration": "1",
    },
    "sms_received_documented.txt": {"currency": "SGD", "debit": "0.013"},
}


def body_only(body: bytes) -> WebhookRequest:
    return form(body)


def as_json(body: bytes) -> WebhookRequest:
    # hoiio-java parses notifications as JSON; tolerated defensively.
    return WebhookRequest(query=(), body=json.dumps(dict(pairs(body))).encode(), content_type=JSON)


TRANSPORTS: dict[str, Callable[[bytes], WebhookRequest]] = {
    "body": body_only,
    "query": query_request,
    "split": split,
    "json": as_json,
}


def parse_request(request: WebhookRequest, channel: str = "hoiio") -> Event:
    return HoiioProvider().parse(channel, request)


def parse(body: bytes | str, query: tuple[tuple[str, str], ...] = ()) -> Event:
    return parse_request(form(body, query))


# --------------------------------------------------------------------------- the payload table


def test_every_payload_file_has_a_table_row() -> None:
    assert payload_names("hoiio") == sorted(TABLE)


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
@pytest.mark.parametrize("name", sorted(TABLE))
def test_payload_parses_to_expected_event(name: str, transport: str) -> None:
    event = parse_request(TRANSPORTS[transport](payload("hoiio", name)))
    assert event.provider == "hoiio"
    assert event.channel == "hoiio"
    assert event.kind in KINDS
    assert project(event) == expected(TABLE[name])
    assert dict(event.values) == {}
    assert event.flow is None
    assert event.notes == ()
    for key, value in RAW.get(name, {}).items():
        assert event.raw[key] == value


@pytest.mark.parametrize("name", sorted(TABLE))
def test_raw_is_the_same_wherever_the_params_travel(name: str) -> None:
    body = payload("hoiio", name)
    raws = {t: dict(parse_request(make(body)).raw) for t, make in TRANSPORTS.items()}
    assert raws["query"] == raws["body"] == raws["split"] == raws["json"] == dict(pairs(body))


def test_split_really_splits() -> None:
    request = split(payload("hoiio", "ivr_gather.txt"))
    assert dict(request.query)["app_state"] == "gather"
    assert b"ivr_block=gather" in request.body
    assert "ivr_block" not in dict(request.query)


def test_body_wins_over_query_for_the_same_key() -> None:
    event = parse(
        "ivr_block=gather&session=S-1234&txn_ref=AA-I-1&digits=2&app_state=menu",
        (("app_state", "gather"), ("digits", "9")),
    )
    assert event.digits == "2"
    assert event.app_state == "menu"


def test_pass_on_params_only_in_the_query() -> None:
    # notify_url = THIS_URL + '?app_state=gather' and Hoiio posts the result in the body.
    event = parse(
        "ivr_block=gather&call_state=ongoing&session=S-1234&txn_ref=AA-I-1&digits=3",
        (("app_state", "gather"), ("username", "alice")),
    )
    assert event.kind == "ivr.gather"
    assert event.app_state == "gather"
    assert event.raw["username"] == "alice"


# --------------------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("params", "kind", "provider_event"),
    [
        # newer naming: ivr_block
        ("ivr_block=play&session=S-1&txn_ref=AA-I-9", "ivr.play", "play"),
        ("ivr_block=monitor&session=S-1&txn_ref=AA-I-9", "ivr.monitor", "monitor"),
        ("ivr_block=unhold&session=S-1&txn_ref=AA-I-9", "ivr.unhold", "unhold"),
        ("ivr_block=GATHER&session=S-1&txn_ref=AA-I-9&digits=4", "ivr.gather", "gather"),
        ("ivr_block=answer&call_state=ended&session=S-1&txn_ref=AA-I-9", "ivr.ended", "answer"),
        ("ivr_block=hangup&call_state=ended&session=S-1&txn_ref=AA-I-9", "ivr.hangup", "hangup"),
        ("ivr_block=hangup&session=S-1&txn_ref=AA-I-9", "ivr.hangup", "hangup"),
        ("ivr_block=conference&session=S-1&txn_ref=AA-I-9", "unknown", "conference"),
        # older naming: call_state, block inferred from the result fields
        ("call_state=RINGING&session=S-1&txn_ref=AA-I-9", "ivr.answer", "answer"),
        ("call_state=ongoing&session=S-1&txn_ref=AA-I-9&digits=12", "ivr.gather", "gather"),
        ("call_state=ongoing&session=S-1&txn_ref=AA-I-9&digits=", "ivr.gather", "gather"),
        (
            "call_state=ongoing&session=S-1&txn_ref=AA-I-9&record_url=https%3A%2F%2Fx.test%2Fa.mp3",
            "ivr.record",
            "record",
        ),
        (
            "call_state=ongoing&session=S-1&txn_ref=AA-I-9&dest=%2B6599999999&transfer_status=failed",
            "ivr.transfer",
            "transfer",
        ),
        (
            "call_state=ongoing&session=S-1&txn_ref=AA-I-9&dest=%2B6599999999&dial_status=answered",
            "ivr.dial",
            "dial",
        ),
        ("call_state=ongoing&session=S-1&txn_ref=AA-I-9", "ivr.play", "play"),
        ("call_state=ended&session=S-1&txn_ref=AA-I-9", "ivr.ended", "ended"),
        # SMS status values
        ("txn_ref=AA-S-1&sms_status=queued&dest=%2B6511111111", "sms.sent", "sms_status"),
        ("txn_ref=AA-S-1&sms_status=delivered&dest=%2B6511111111", "sms.delivered", "sms_status"),
        ("txn_ref=AA-S-1&sms_status=failed&dest=%2B6511111111", "sms.failed", "sms_status"),
        ("txn_ref=AA-S-1&sms_status=error&dest=%2B6511111111", "sms.failed", "sms_status"),
        ("txn_ref=AA-S-1&sms_status=Delivered&dest=%2B6511111111", "sms.delivered", "sms_status"),
        ("txn_ref=AA-S-1&sms_status=exploded&dest=%2B6511111111", "unknown", "sms_status"),
        # voice/call status
        (
            "txn_ref=AA-S-2&dest1=%2B6511111111&dest2=%2B6522222222"
            "&call_status_dest1=answered&call_status_dest2=busy",
            "call.unanswered",
            "call",
        ),
        (
            "txn_ref=AA-S-2&dest1=%2B6511111111&dest2=%2B6522222222&call_status_dest1=unanswered",
            "call.unanswered",
            "call",
        ),
        # fax
        (
            "txn_ref=AA-FI-1&fax_status=failed&fax_error_code=busy&from=%2B6562345678"
            "&to=%2B6531234567",
            "fax.received",
            "fax",
        ),
        # nothing recognisable
        ("", "unknown", None),
        ("foo=bar", "unknown", None),
        ("txn_ref=AA-X-1", "unknown", None),
        ("msg=hello", "unknown", None),
    ],
)
def test_classification(params: str, kind: str, provider_event: str | None) -> None:
    event = parse(params)
    assert event.kind == kind
    assert event.provider_event == provider_event


def test_empty_request_is_unknown_without_raising() -> None:
    event = parse_request(WebhookRequest(query=(), body=b""))
    assert event.kind == "unknown"
    assert event.contact is None
    assert event.external_id is None
    assert dict(event.raw) == {}


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ("txn_ref=AA-S-1&sms_status=queued&dest=%2B6511111111", "queued"),
        ("txn_ref=AA-FI-1&fax_status=failed&from=%2B6562345678", "failed"),
        (
            "ivr_block=transfer&call_state=ended&session=S-1&txn_ref=AA-I-1&transfer_status=answered",
            "answered",
        ),
        ("ivr_block=dial&call_state=ongoing&session=S-1&txn_ref=AA-I-1&dial_status=busy", "busy"),
        ("txn_ref=AA-S-2&call_status_dest1=answered&call_status_dest2=unanswered", "unanswered"),
        ("ivr_block=play&call_state=ongoing&session=S-1&txn_ref=AA-I-1", "ongoing"),
        ("ivr_block=play&session=S-1&txn_ref=AA-I-1", None),
    ],
)
def test_status(params: str, status: str | None) -> None:
    assert parse(params).status == status


def test_successful_transfer_reports_when_the_transferred_call_ends() -> None:
    event = parse(
        "ivr_block=transfer&call_state=ended&session=S-1234&txn_ref=AA-I-1&from=%2B6591234567"
        "&to=%2B6531234567&dest=%2B6599999999&transfer_status=answered&duration=3"
    )
    assert event.kind == "ivr.ended"
    assert event.provider_event == "transfer"
    assert event.contact == CALLER


def test_transfer_contact_is_the_caller_not_the_transfer_target() -> None:
    event = parse(
        "ivr_block=transfer&call_state=ongoing&session=S-1234&txn_ref=AA-I-1&from=%2B6591234567"
        "&to=%2B6531234567&dest=%2B6599999999&transfer_status=busy"
    )
    assert event.kind == "ivr.transfer"
    assert event.contact == CALLER
    assert event.channel_number == HOIIO_NUMBER
    assert event.raw["dest"] == "+6599999999"


def test_gather_timeout_gives_empty_digits() -> None:
    event = parse("ivr_block=gather&call_state=ongoing&session=S-1234&txn_ref=AA-I-1&digits=")
    assert event.kind == "ivr.gather"
    assert event.digits == ""


def test_digits_absent_is_none() -> None:
    assert parse("ivr_block=play&session=S-1&txn_ref=AA-I-1").digits is None


@pytest.mark.parametrize(
    ("sent", "digits"),
    [("12%23", "12"), ("1%23", "1"), ("%23", ""), ("12", "12"), ("%2A1", "*1"), ("1%23%23", "1#")],
)
def test_the_hash_that_ends_a_gather_is_not_part_of_the_digits(sent: str, digits: str) -> None:
    # `#` always ends a gather (hoiio.md §3.3); whether `digits` carries it is unconfirmed.
    event = parse(f"ivr_block=gather&session=S-1&txn_ref=AA-I-1&digits={sent}")
    assert event.digits == digits
    assert event.raw["digits"] == sent.replace("%23", "#").replace("%2A", "*")


def test_voice_call_unanswered_contact_is_dest2() -> None:
    event = parse(
        "txn_ref=AA-S-2&dest1=%2B6511111111&dest2=%2B6522222222&call_status_dest1=answered"
        "&call_status_dest2=unanswered"
    )
    assert event.kind == "call.unanswered"
    assert event.contact == "+6522222222"


# --------------------------------------------------------------------------- tolerated oddities


@pytest.mark.parametrize(
    ("body", "msg"),
    [
        (b"msg=caf%E9+ouvert", "café ouvert"),
        (b"msg=caf\xe9", "café"),
        (b"msg=caf%C3%A9", "café"),
        (b"msg=%A3100+%B1+5%25", "£100 ± 5%"),
        (b"msg=50%+off", "50% off"),
        (b"msg=%zz", "%zz"),
        (b"msg=", ""),
    ],
    ids=[
        "latin1-percent",
        "latin1-raw",
        "utf8",
        "latin1-symbols",
        "bare-percent",
        "bad-escape",
        "empty",
    ],
)
def test_incoming_sms_text_decoding(body: bytes, msg: str) -> None:
    event = parse(body + b"&from=%2B16201234567&to=%2B16501234567&txn_ref=AA-SI-86")
    assert event.kind == "sms.received"
    assert event.text == msg
    assert event.contact == "+16201234567"


def test_duplicated_keys_last_wins() -> None:
    event = parse("ivr_block=gather&session=S-1&txn_ref=AA-I-1&digits=1&digits=2")
    assert event.digits == "2"


def test_date_with_fraction_is_read() -> None:
    event = parse("txn_ref=AA-S-1&sms_status=delivered&date=2012-01-31+12%3A06%3A15.0")
    assert event.time is not None
    assert event.time.isoformat() == "2012-01-31T12:06:15+08:00"


@pytest.mark.parametrize("date", ["31%2F01%2F2012", "2012-01-31T12%3A06%3A15", "soon"])
def test_unreadable_date_is_noted_not_raised(date: str) -> None:
    event = parse(f"txn_ref=AA-S-1&sms_status=delivered&date={date}")
    assert event.kind == "sms.delivered"
    assert event.time is None
    assert event.notes == ("unreadable date ignored",)


def test_json_body_with_wrong_content_type() -> None:
    body = json.dumps(dict(pairs(payload("hoiio", "ivr_gather.txt")))).encode()
    event = parse_request(WebhookRequest(query=(), body=body, content_type=FORM))
    assert project(event) == expected(TABLE["ivr_gather.txt"])


def test_json_content_type_with_invalid_json_is_bad_request() -> None:
    with pytest.raises(BadRequest):
        parse_request(
            WebhookRequest(query=(), body=payload("hoiio", "ivr_gather.txt"), content_type=JSON)
        )


def test_too_many_params_is_bad_request() -> None:
    query = tuple((f"q{i}", "x") for i in range(MAX_PARAMS))
    with pytest.raises(BadRequest):
        parse("txn_ref=AA-S-1", query)


# --------------------------------------------------------------------------- idempotency keys


def key_of(request: WebhookRequest, channel: str = "hoiio") -> str:
    provider = HoiioProvider()
    return provider.idempotency_key(provider.parse(channel, request), request)


def key(params: str, query: tuple[tuple[str, str], ...] = ()) -> str:
    return key_of(form(params, query))


@pytest.mark.parametrize("name", sorted(TABLE))
def test_resent_identical_notification_has_the_same_key(name: str) -> None:
    body = payload("hoiio", name)
    assert key_of(form(body)) == key_of(form(body))


@pytest.mark.parametrize("name", sorted(TABLE))
def test_key_does_not_depend_on_where_params_travel(name: str) -> None:
    body = payload("hoiio", name)
    keys = {key_of(make(body)) for make in TRANSPORTS.values()}
    assert len(keys) == 1


def test_key_does_not_depend_on_param_order() -> None:
    body = payload("hoiio", "sms_status_delivered.txt")
    reordered = b"&".join(reversed(body.split(b"&")))
    assert key_of(form(reordered)) == key_of(form(body))


def test_queued_and_delivered_of_one_txn_ref_have_different_keys() -> None:
    base = "txn_ref=AA-S-141147&dest=%2B6511111111&split_count=1&tag=id_1&sms_status="
    queued, delivered = key(base + "queued"), key(base + "delivered")
    assert queued != delivered
    assert "AA-S-141147" in queued
    assert "AA-S-141147" in delivered


def test_gathers_with_different_digits_have_different_keys() -> None:
    base = "app_state=gather&ivr_block=gather&call_state=ongoing&session=S-1234&txn_ref=AA-I-1"
    assert key(base + "&digits=1") != key(base + "&digits=2")
    assert key(base + "&digits=1") == key(base + "&digits=1")


def test_gathers_with_different_app_state_have_different_keys() -> None:
    base = "ivr_block=gather&call_state=ongoing&session=S-1234&txn_ref=AA-I-1&digits=1"
    assert key(base, (("app_state", "menu"),)) != key(base, (("app_state", "sales"),))
    assert key(base + "&app_state=menu") != key(base + "&app_state=sales")


def test_blocks_of_one_call_have_different_keys() -> None:
    keys = {
        key_of(form(payload("hoiio", name)))
        for name in (
            "ivr_answer.txt",
            "ivr_gather.txt",
            "ivr_record.txt",
            "ivr_transfer_failed.txt",
        )
    }
    assert len(keys) == 4


def test_channels_do_not_share_keys() -> None:
    body = payload("hoiio", "ivr_answer.txt")
    assert key_of(form(body), "hoiio") != key_of(form(body), "hoiio-sg")


def test_notification_without_txn_ref_is_keyed_by_body() -> None:
    assert key("foo=bar") == key("foo=bar")
    assert key("foo=bar") != key("foo=baz")
    assert key("") == key("")


# --------------------------------------------------------------------------- replies


@pytest.mark.parametrize("name", sorted(TABLE))
@pytest.mark.parametrize(
    ("text", "variables"), [(None, None), ("Thanks", None), ("Thanks", {"a": 1}), (None, {"a": 1})]
)
def test_reply_is_always_empty_200(name: str, text: str | None, variables: Any) -> None:
    event = parse(payload("hoiio", name))
    result = HoiioProvider().reply(event, text, variables)
    assert result == HttpReply(status=200, content_type="text/plain", body=b"")


def test_reply_to_unknown_is_empty_200() -> None:
    result = HoiioProvider().reply(parse(urlencode({"x": "y"})), "hi", None)
    assert result.status == 200
    assert result.body == b""
