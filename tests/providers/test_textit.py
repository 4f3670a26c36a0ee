"""TextIt adapter: every example payload of the protocol reference, aliases, replies, keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus, urlencode

import pytest

from responder.errors import BadRequest
from responder.events import KINDS, Event, Flow, FlowValue
from responder.providers.base import MAX_PARAMS, HttpReply, WebhookRequest
from responder.providers.textit import MAX_REPLY_TEXT, TextItProvider

from ._support import (
    FORM,
    JSON,
    expected,
    form,
    pairs,
    payload,
    payload_names,
    project,
    request_of,
)

JOE = "0c6f0d6b-0f7e-4b8d-9c1a-3f5e2b7a9d41"
ERIC = "d33e9ad5-5c35-414c-abd4-e7451c69ff1d"
COLOR_FLOW = Flow(
    id="12",
    uuid="b7cf0d83-f1c9-411c-96fd-c511a4cfa86d",
    name="Color Flow",
    step="5c1cf9a1-7a31-4e8f-a6b4-1f3c5f8e0b42",
    run="1234",
    arrived_on=datetime(2015, 10, 27, 14, 7, 30, 6, tzinfo=UTC),
)
COLOR_VALUES = {"color": FlowValue(label="Color", category="Other", value="Mauve", text="Mauve")}
RYAN = "5d76d86b-3bb9-4d5a-b822-c9d86f5d8e4f"
REGISTRATION = "50c3706e-fedb-42c0-8eab-dda3335714b7"
GOFLOW_RUN = "01969b47-2c93-76f8-8f41-6b2d53eb3e13"
ANN = "9a3b1e2c-55d4-4c1f-8f6e-2b7d9c0e1f34"
BEA = "4e1d7a90-2b6c-4f3e-9a15-7c8d0e2f6b13"
CY = "b2f0c6d1-8e47-4a3c-9d2e-5f1a7b3c9e80"
MASK = "********"
RESTHOOK_FLOW = Flow(
    uuid=REGISTRATION,
    name="Registration",
    step="f5bb9b7a-7b5e-45c3-8f0e-61b4e95edf03",
    run=GOFLOW_RUN,
    arrived_on=datetime(2025, 5, 4, 12, 31, 21, 123456, tzinfo=UTC),
)
RESTHOOK_VALUES = {
    "favorite_color": FlowValue("Favorite Color", "Red", "red", ""),
    "webhook": FlowValue(
        "webhook",
        "Success",
        "200",
        "GET http://127.0.0.1:49999/?content=%7B%22results%22%3A%5B%5D%7D",
    ),
}
GET_FLOW = Flow(
    uuid=REGISTRATION,
    name="Registration",
    run=GOFLOW_RUN,
    arrived_on=datetime(2025, 5, 4, 12, 31, 21, 123456, tzinfo=UTC),
)

# One row per payload file: the Event fields that must come out (all others must be None/empty).
TABLE: dict[str, dict[str, Any]] = {
    # §5.1 mo_sms as sent by code, and the documented example (id / channel / channel_phone).
    "mo_sms.txt": {
        "kind": "sms.received",
        "contact": "+250788123123",
        "channel_number": "+250788111111",
        "external_id": "23554",
        "text": "I'm gonna pop some tags",
        "status": "H",
        "provider_event": "mo_sms",
        "urn": "tel:+250788123123",
        "contact_uuid": JOE,
        "contact_name": "Joe Blow",
        "time": "2017-03-16T10:34:34.034000+00:00",
    },
    "mo_sms_documented.txt": {
        "kind": "sms.received",
        "contact": "+250788123123",
        "channel_number": "+250788111111",
        "external_id": "23554",
        "text": "Im gonna pop some tags",
        "provider_event": "mo_sms",
        "time": "2013-01-01T05:34:34.034000+00:00",
    },
    # §5.2 mt_sent / mt_dlvd / mt_fail as sent by code, and the documented mt_sent example.
    "mt_sent_documented.txt": {
        "kind": "sms.sent",
        "contact": "+250788123123",
        "channel_number": "+250788111111",
        "external_id": "23555",
        "text": "Only got $20 in my pocket",
        "provider_event": "mt_sent",
        "time": "2013-01-01T05:34:34.034000+00:00",
    },
    "mt_sent.txt": {
        "kind": "sms.sent",
        "contact": "+250788123123",
        "channel_number": "+250788111111",
        "external_id": "23555",
        "text": "Only got $20 in my pocket",
        "status": "S",
        "provider_event": "mt_sent",
        "urn": "tel:+250788123123",
        "contact_uuid": JOE,
        "contact_name": "Joe Blow",
        "time": "2017-03-16T10:35:02.512000+00:00",
    },
    "mt_dlvd.txt": {
        "kind": "sms.delivered",
        "contact": "+250788123123",
        "channel_number": "+250788111111",
        "external_id": "23555",
        "text": "Only got $20 in my pocket",
        "status": "D",
        "provider_event": "mt_dlvd",
        "urn": "tel:+250788123123",
        "contact_uuid": JOE,
        "contact_name": "Joe Blow",
        "time": "2017-03-16T10:35:09.100000+00:00",
    },
    "mt_fail.txt": {
        "kind": "sms.failed",
        "contact": "+250788123123",
        "channel_number": "+250788111111",
        "external_id": "23556",
        "text": "Only got $20 in my pocket",
        "status": "F",
        "provider_event": "mt_fail",
        "urn": "tel:+250788123123",
        "contact_uuid": JOE,
        "contact_name": "Joe Blow",
        "time": "2017-03-16T10:41:17+00:00",
    },
    # §5.3 mo_miss as sent by code (`call`) and documented (`id`).
    "mo_miss.txt": {
        "kind": "call.missed",
        "contact": "+250788123123",
        "channel_number": "+250788123123",
        "external_id": "125156",
        "provider_event": "mo_miss",
        "urn": "tel:+250788123123",
        "contact_uuid": JOE,
        "contact_name": "Joe Blow",
        "time": "2017-03-16T10:34:34.034000+00:00",
    },
    "mo_miss_documented.txt": {
        "kind": "call.missed",
        "contact": "+250788123123",
        "channel_number": "+250788111111",
        "external_id": "125156",
        "provider_event": "mo_miss",
        "time": "2013-01-01T05:34:34.034000+00:00",
    },
    # §5.4 alarm as sent by code (power_level...) and documented (battery / unsent).
    "alarm.txt": {
        "kind": "channel.alarm",
        "channel_number": "+250788123123",
        "status": "CHARGING",
        "provider_event": "alarm",
        "time": "2017-03-16T10:30:00+00:00",
    },
    "alarm_documented.txt": {
        "kind": "channel.alarm",
        "channel_number": "+250788111111",
        "provider_event": "alarm",
        "time": "2013-01-01T05:35:32.012000+00:00",
    },
    # §5.5 legacy flow event as sent by code: no `event`, category is a per-language object.
    "flow_legacy.txt": {
        "kind": "flow.step",
        "contact": "+250788382382",
        "external_id": "1234",
        "text": "Green is my favorite",
        "provider_event": "flow",
        "urn": "tel:+250788382382",
        "contact_uuid": ERIC,
        "contact_name": "Eric",
        "time": "2015-10-27T14:07:30.000006+00:00",
        "flow": COLOR_FLOW,
        "values": COLOR_VALUES,
    },
    # ... started without an inbound message: relayer=-1, no text, no channel_uuid.
    "flow_legacy_no_input.txt": {
        "kind": "flow.step",
        "contact": "+250788382382",
        "external_id": "1234",
        "provider_event": "flow",
        "urn": "tel:+250788382382",
        "contact_uuid": ERIC,
        "contact_name": "Eric",
        "time": "2015-10-27T14:07:30.000006+00:00",
        "flow": COLOR_FLOW,
        "values": COLOR_VALUES,
    },
    # ... as documented (2014): event=flow, relayer_phone, category as a plain string.
    "flow_documented.txt": {
        "kind": "flow.step",
        "contact": "+250788123123",
        "channel_number": "+250788111111",
        "external_id": "3421",
        "text": "yego",
        "provider_event": "flow",
        "time": "2013-01-01T05:36:54.012000+00:00",
        "flow": Flow(
            id="1524",
            step="a2c4e6f8-1b3d-4f5a-8c7e-9d0b1a2c3e4f",
            run="3421",
            arrived_on=datetime(2013, 1, 1, 5, 36, 54, 12000, tzinfo=UTC),
        ),
        "values": {
            "water_source": FlowValue("Water Source", "Stream", "Stream", "from stream"),
            "boil": FlowValue("Boil", "Yes", "Yes", "yego"),
        },
    },
    # §3.3 floweditor default POST body.
    "flow_editor_default.json": {
        "kind": "flow.step",
        "contact": "+12024561111",
        "provider_event": "flow",
        "urn": "tel:+12024561111",
        "contact_uuid": RYAN,
        "contact_name": "Ryan Lewis",
        "flow": Flow(uuid=REGISTRATION, name="Registration"),
        "values": {"favorite_color": FlowValue("favorite_color", "Red", "red", "")},
    },
    # §5.6 Python-era JSON flow webhook.
    "flow_python_era.json": {
        "kind": "flow.step",
        "contact": "+12065551212",
        "external_id": "7facea33-9fbc-4bdd-ba63-b2600cd4f69b",
        "text": "stream",
        "provider_event": "flow",
        "urn": "tel:+12065551212",
        "contact_uuid": "dc2b3709-3261-465f-b39a-fc7312b2ab95",
        "contact_name": "Ben Haggerty",
        "flow": Flow(
            uuid="13fed2d2-160e-48e5-b52e-6eea3f74f27d",
            name="Water Survey",
            step="207d919d-ac4e-451a-9f7a-6ef7b0ed8b57",
            run="7facea33-9fbc-4bdd-ba63-b2600cd4f69b",
            arrived_on=datetime(2014, 6, 3, 8, 21, 9, 865526, tzinfo=UTC),
        ),
        "values": {"water_source": FlowValue("Water Source", "Stream", "stream", "stream")},
    },
    # §5.7 goflow migrated legacy webhook: null channel, null urn, null input, no results.
    "flow_goflow_legacy.json": {
        "kind": "flow.step",
        "external_id": GOFLOW_RUN,
        "provider_event": "flow",
        "contact_uuid": "ba96bf7f-bc2a-4873-a7c7-254d1927c4e3",
        "contact_name": "Ben Haggerty",
        "flow": Flow(
            uuid="0256c9fc-8194-4567-b4ab-6965c2b7e791",
            name="Webhook",
            step="30c97f0e-4d3c-4f1e-8a2b-58fd4b2a1e77",
            run=GOFLOW_RUN,
            arrived_on=datetime(2025, 5, 4, 12, 30, 51, 123456, tzinfo=UTC),
        ),
    },
    # §5.8 goflow legacy/resthook payload with an input (URN object, attachment objects).
    "flow_resthook.json": {
        "kind": "flow.step",
        "contact": "+12024561111",
        "channel_number": "+17036975131",
        "external_id": GOFLOW_RUN,
        "text": "Hi there",
        "provider_event": "flow",
        "urn": "tel:+12024561111",
        "contact_uuid": RYAN,
        "contact_name": "Ryan Lewis",
        "time": "2017-12-31T11:35:09.123456+00:00",
        "attachments": ("http://s3.amazon.com/bucket/test.jpg",),
        "flow": RESTHOOK_FLOW,
        "values": RESTHOOK_VALUES,
    },
    # Anonymous workspaces (textit.md §7): `phone` is ******** for every contact, `urn` and
    # `contact` stay complete; the URN names the contact.
    "mo_sms_anonymous.txt": {
        "kind": "sms.received",
        "contact": "+250788123124",
        "channel_number": "+250788111111",
        "external_id": "23570",
        "text": "Murakoze",
        "status": "H",
        "provider_event": "mo_sms",
        "urn": "tel:+250788123124",
        "contact_uuid": ANN,
        "contact_name": "Ann",
        "time": "2017-03-16T10:40:01.101000+00:00",
    },
    "mo_miss_anonymous.txt": {
        "kind": "call.missed",
        "contact": "+250788123125",
        "channel_number": "+250788111111",
        "external_id": "125160",
        "provider_event": "mo_miss",
        "urn": "tel:+250788123125",
        "contact_uuid": BEA,
        "contact_name": "Bea",
        "time": "2017-03-16T10:42:11.500000+00:00",
    },
    "flow_legacy_anonymous.txt": {
        "kind": "flow.step",
        "contact": "+250788382382",
        "external_id": "1234",
        "text": "Green is my favorite",
        "provider_event": "flow",
        "urn": "tel:+250788382382",
        "contact_uuid": ERIC,
        "contact_name": "Eric",
        "time": "2015-10-27T14:07:30.000006+00:00",
        "flow": COLOR_FLOW,
        "values": COLOR_VALUES,
    },
    # ... a contact without a phone number: `phone` is empty, the URN is another scheme.
    "mo_sms_without_phone.txt": {
        "kind": "sms.received",
        "contact": "34642632786",
        "channel_number": "nyaruka_bot",
        "external_id": "23571",
        "text": "hours",
        "status": "H",
        "provider_event": "mo_sms",
        "urn": "telegram:34642632786",
        "contact_uuid": CY,
        "contact_name": "Cy",
        "time": "2017-03-16T10:45:00.000001+00:00",
    },
    # goflow redacts every URN of an anonymous workspace to ******** (goflow flows/urn.go
    # `Reduce`): neither contact.urn nor input.urn names anybody; the contact UUID does.
    "flow_editor_default_anonymous.json": {
        "kind": "flow.step",
        "provider_event": "flow",
        "contact_uuid": RYAN,
        "contact_name": "Ryan Lewis",
        "flow": Flow(uuid=REGISTRATION, name="Registration"),
        "values": {"favorite_color": FlowValue("favorite_color", "Red", "red", "")},
    },
    "flow_goflow_anonymous.json": {
        "kind": "flow.step",
        "channel_number": "+17036975131",
        "external_id": GOFLOW_RUN,
        "text": "Hi there",
        "provider_event": "flow",
        "contact_uuid": RYAN,
        "contact_name": "Ryan Lewis",
        "time": "2017-12-31T11:35:09.123456+00:00",
        "attachments": ("http://s3.amazon.com/bucket/test.jpg",),
        "flow": RESTHOOK_FLOW,
        "values": RESTHOOK_VALUES,
    },
    # Flow webhooks sent with GET (floweditor's default for a new Call Webhook node): the
    # parameters are whatever the author wrote into the URL, here the names responder reads.
    "flow_get.query": {
        "kind": "flow.step",
        "contact": "+12024561111",
        "external_id": GOFLOW_RUN,
        "text": "red",
        "provider_event": "flow",
        "urn": "tel:+12024561111",
        "contact_uuid": RYAN,
        "contact_name": "Ryan Lewis",
        "time": "2025-05-04T12:31:21.123456+00:00",
        "flow": GET_FLOW,
    },
    "flow_get_anonymous.query": {
        "kind": "flow.step",
        "external_id": GOFLOW_RUN,
        "text": "red",
        "provider_event": "flow",
        "contact_uuid": RYAN,
        "contact_name": "Ryan Lewis",
        "time": "2025-05-04T12:31:21.123456+00:00",
        "flow": GET_FLOW,
    },
    # ... a legacy flow set to GET: the URL was called with no parameters at all (§1.4).
    "flow_get_legacy.query": {
        "kind": "flow.step",
        "provider_event": "flow",
        "flow": Flow(),
    },
}


def parse(body: bytes | str, query: tuple[tuple[str, str], ...] = (), ctype: str = FORM) -> Event:
    return TextItProvider().parse("textit", form(body, query, ctype))


def load(name: str, ctype: str | None = None) -> Event:
    if ctype is None:
        return TextItProvider().parse("textit", request_of("textit", name))
    return parse(payload("textit", name), ctype=ctype)


def reply_json(reply: HttpReply) -> Any:
    assert reply.status == 200
    assert reply.content_type == "application/json"
    return json.loads(reply.body)


# --------------------------------------------------------------------------- the payload table


def test_every_payload_file_has_a_table_row() -> None:
    assert payload_names("textit") == sorted(TABLE)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_payload_parses_to_expected_event(name: str) -> None:
    row = TABLE[name]
    event = load(name)
    assert event.provider == "textit"
    assert event.channel == "textit"
    assert event.kind in KINDS
    assert project(event) == expected(row)
    assert dict(event.values) == row.get("values", {})
    assert event.notes == ()


@pytest.mark.parametrize("name", sorted(n for n in TABLE if n.endswith(".json")))
@pytest.mark.parametrize("ctype", ["", "text/plain", FORM, "application/json; charset=utf-8"])
def test_json_payload_does_not_depend_on_content_type(name: str, ctype: str) -> None:
    # goflow adds no Content-Type of its own (§3.2); editors add application/json.
    assert project(load(name, ctype)) == project(load(name))
    assert load(name, ctype).values == load(name).values


def test_json_payload_with_query_params_keeps_them_in_raw() -> None:
    # §5.7 is POSTed to /?cmd=foo.
    event = parse(payload("textit", "flow_goflow_legacy.json"), (("cmd", "foo"),), JSON)
    assert event.kind == "flow.step"
    assert event.raw["cmd"] == "foo"


def test_flow_value_lookup_by_label() -> None:
    event = load("flow_documented.txt")
    assert event.value("Water Source") == FlowValue(
        "Water Source", "Stream", "Stream", "from stream"
    )
    assert event.value("water source") == event.value("Water Source")
    assert event.value("Boil") == FlowValue("Boil", "Yes", "Yes", "yego")
    assert event.value("Missing") is None


def test_legacy_flow_keeps_steps_and_values_in_raw() -> None:
    event = load("flow_legacy.txt")
    steps = json.loads(event.raw["steps"])
    assert [s["type"] for s in steps] == ["A", "R"]
    assert json.loads(event.raw["values"])[0]["rule_value"] == "Mauve"
    assert event.raw["channel_uuid"] == "e2ab1d4c-6f0f-4c3a-9d6a-83b1f0a7c5d2"


def test_flow_without_inbound_message_has_no_channel() -> None:
    event = load("flow_legacy_no_input.txt")
    assert event.raw["relayer"] == "-1"
    assert "channel_uuid" not in event.raw
    assert event.text is None


# --------------------------------------------------------------------------- documented aliases


def test_documented_sms_id_equals_sent_sms_id() -> None:
    sent, documented = load("mo_sms.txt"), load("mo_sms_documented.txt")
    assert sent.external_id == documented.external_id == "23554"
    assert sent.raw["sms"] == documented.raw["sms"] == "23554"
    assert documented.raw["id"] == "23554"


def test_documented_call_id_equals_sent_call_id() -> None:
    sent, documented = load("mo_miss.txt"), load("mo_miss_documented.txt")
    assert sent.external_id == documented.external_id == "125156"
    assert documented.raw["call"] == "125156"
    assert "sms" not in documented.raw


def test_channel_phone_is_an_alias_of_relayer_phone() -> None:
    documented = load("mo_sms_documented.txt")
    assert documented.channel_number == "+250788111111"
    assert documented.raw["relayer_phone"] == documented.raw["channel_phone"] == "+250788111111"
    assert documented.raw["relayer"] == "254"


def test_relayer_phone_wins_over_channel_phone() -> None:
    event = parse(
        "event=mo_sms&sms=1&relayer_phone=%2B250788111111&channel_phone=%2B250788999999&text=x"
    )
    assert event.channel_number == "+250788111111"


@pytest.mark.parametrize(
    ("name", "level", "pending"),
    [("alarm.txt", "85", "5"), ("alarm_documented.txt", "50", "4")],
)
def test_alarm_battery_and_unsent_aliases(name: str, level: str, pending: str) -> None:
    event = load(name)
    assert event.kind == "channel.alarm"
    assert event.raw["power_level"] == level
    assert event.raw["pending_message_count"] == pending


def test_alarm_sent_names_win_over_documented_names() -> None:
    event = parse(
        "event=alarm&relayer=5&power_level=85&battery=10&pending_message_count=5&unsent=9"
    )
    assert event.raw["power_level"] == "85"
    assert event.raw["pending_message_count"] == "5"
    assert event.raw["battery"] == "10"


@pytest.mark.parametrize(
    ("event_name", "kind", "id_key"),
    [
        ("mo_sms", "sms.received", "sms"),
        ("mt_sent", "sms.sent", "sms"),
        ("mt_dlvd", "sms.delivered", "sms"),
        ("mt_fail", "sms.failed", "sms"),
        ("mo_miss", "call.missed", "call"),
        ("mo_call", "call.received", "call"),
        ("mt_call", "call.made", "call"),
        ("mt_miss", "call.unanswered", "call"),
    ],
)
@pytest.mark.parametrize("use_documented_id", [False, True])
def test_every_event_type_and_id_alias(
    event_name: str, kind: str, id_key: str, use_documented_id: bool
) -> None:
    key = "id" if use_documented_id else id_key
    event = parse(
        f"event={event_name}&{key}=991&relayer=7&channel=7&relayer_phone=%2B250788111111"
        "&phone=%2B250788555555&duration=12&time=2017-03-16T10%3A34%3A34.034000"
    )
    assert event.kind == kind
    assert event.provider_event == event_name
    assert event.external_id == "991"
    assert event.contact == "+250788555555"
    assert event.raw[id_key] == "991"


# --------------------------------------------------------------------------- tolerated oddities


@pytest.mark.parametrize(
    ("body", "ctype", "provider_event"),
    [
        (b"", FORM, None),
        (b"", JSON, None),
        (b"", "", None),
        (b"event=mt_queued&sms=1&phone=%2B250788123123", FORM, "mt_queued"),
        (b"event=webhook_called&relayer=3", FORM, "webhook_called"),
        (b"event=&sms=1", FORM, None),
        (b"foo=bar", FORM, None),
        (b'{"event": "new_thing", "sms": 3}', JSON, "new_thing"),
        (b'{"contact": {"uuid": "x"}, "results": {}}', JSON, None),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_unknown_events_do_not_raise(body: bytes, ctype: str, provider_event: str | None) -> None:
    event = parse(body, ctype=ctype)
    assert event.kind == "unknown"
    assert event.provider_event == provider_event
    assert event.flow is None
    assert dict(event.values) == {}


def test_unknown_event_keeps_raw() -> None:
    event = parse("event=mt_queued&sms=1&phone=%2B250788123123&text=hi")
    assert event.raw["event"] == "mt_queued"
    assert event.text == "hi"
    assert event.external_id == "1"


@pytest.mark.parametrize(
    ("values", "note"),
    [
        ("%5Bnot+json", "not valid JSON"),
        ("%7B%22label%22%3A+%22Color%22%7D", "not a JSON list"),
        ("42", "not a JSON list"),
    ],
)
def test_invalid_values_json_is_tolerated(values: str, note: str) -> None:
    event = parse(f"run=99&flow=12&step=abc&phone=%2B250788382382&values={values}")
    assert event.kind == "flow.step"
    assert dict(event.values) == {}
    assert len(event.notes) == 1
    assert note in event.notes[0]
    assert event.flow == Flow(id="12", step="abc", run="99")


def test_values_items_without_label_are_skipped() -> None:
    items = [{"category": "x"}, "junk", {"label": "Age", "category": None, "value": 7}]
    event = parse(f"event=flow&run=1&flow=2&values={quote_plus(json.dumps(items))}")
    assert dict(event.values) == {"age": FlowValue("Age", "", "7", "")}
    assert event.notes == ()


@pytest.mark.parametrize(
    ("category", "language", "want"),
    [
        ("Stream", None, "Stream"),
        ({"base": "Other"}, "base", "Other"),
        ({"base": "Other"}, None, "Other"),
        ({"eng": "Yes", "fra": "Oui"}, "fra", "Oui"),
        ({"eng": "Yes", "fra": "Oui"}, "eng", "Yes"),
        ({"eng": "Yes", "fra": "Oui"}, "spa", "Yes"),
        ({"kin": "Yego"}, "eng", "Yego"),
        ({}, "eng", ""),
        (None, "eng", ""),
    ],
)
def test_category_string_or_per_language_object(
    category: Any, language: str | None, want: str
) -> None:
    items = [{"label": "Boil", "category": category, "text": "yego", "value": "Yes"}]
    params: dict[str, str] = {"run": "5", "flow": "2", "step": "n1", "values": json.dumps(items)}
    if language is not None:
        params["flow_base_language"] = language
    event = parse(urlencode(params))
    assert event.kind == "flow.step"
    assert event.values["boil"] == FlowValue("Boil", want, "Yes", "yego")


def test_legacy_mode_category_string_with_category_localized() -> None:
    # Dec 2017 legacy_format: category is a string again, plus category_localized.
    items = [{"label": "Boil", "category": "Yes", "category_localized": "Oui", "value": "Oui"}]
    event = parse(f"run=5&flow=2&step=n1&values={quote_plus(json.dumps(items))}")
    assert event.values["boil"] == FlowValue("Boil", "Yes", "Oui", "")


def test_literal_none_step_means_no_step() -> None:
    event = parse("run=7&flow=3&step=None&values=%5B%5D")
    assert event.kind == "flow.step"
    assert event.flow == Flow(id="3", run="7")


@pytest.mark.parametrize(
    "body",
    ["run=7&flow=3", "run=7", "flow=3&text=hello"],
)
def test_flow_like_fields_without_values_or_step_are_not_a_flow(body: str) -> None:
    assert parse(body).kind == "unknown"


def test_unreadable_time_is_noted_not_raised() -> None:
    event = parse("event=mo_sms&sms=1&phone=%2B250788123123&time=yesterday")
    assert event.kind == "sms.received"
    assert event.time is None
    assert event.notes == ("unreadable time ignored",)


def test_repeated_attachments() -> None:
    event = parse(
        "event=mo_sms&sms=5&phone=%2B250788123123&text="
        "&attachments=https%3A%2F%2Fexample.com%2Fa.jpg&attachments=https%3A%2F%2Fexample.com%2Fb.ogg"
    )
    assert event.attachments == ("https://example.com/a.jpg", "https://example.com/b.ogg")
    assert event.text == ""


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b"event=mo_sms&sms=1&phone=%2B250788123123&text=caf%E9", "café"),
        (b"event=mo_sms&sms=1&phone=%2B250788123123&text=caf\xe9", "café"),
        (b"event=mo_sms&sms=1&phone=%2B250788123123&text=caf%C3%A9", "café"),
        (b"event=mo_sms&sms=1&phone=%2B250788123123&text=caf\xc3\xa9", "café"),
        (b"event=mo_sms&sms=1&phone=%2B250788123123&text=%F0%9F%91%8D", "\U0001f44d"),
        (b"event=mo_sms&sms=1&phone=%2B250788123123&text=100%zz+off", "100%zz off"),
        (b"event=mo_sms&sms=1&phone=%2B250788123123&text=50%", "50%"),
        (b"event=mo_sms&sms=1&phone=%2B250788123123&text=a%2", "a%2"),
        (b"event=mo_sms&sms=1&phone=%2B250788123123&text=1+%2B+1+%3D+2", "1 + 1 = 2"),
    ],
    ids=[
        "latin1-percent",
        "latin1-raw",
        "utf8-percent",
        "utf8-raw",
        "emoji",
        "bad-escape",
        "trailing-percent",
        "short-escape",
        "plus",
    ],
)
def test_text_decoding(body: bytes, text: str) -> None:
    event = parse(body)
    assert event.kind == "sms.received"
    assert event.text == text
    assert event.contact == "+250788123123"


def test_duplicated_keys_last_wins() -> None:
    event = parse("event=mo_sms&sms=1&phone=%2B250788123123&text=first&text=second")
    assert event.text == "second"
    assert event.raw["text"] == "second"


def test_body_wins_over_query() -> None:
    event = parse(
        "event=mo_sms&sms=2&phone=%2B250788123123&text=body",
        (("text", "query"), ("password", "akabanga")),
    )
    assert event.text == "body"
    assert event.raw["password"] == "akabanga"


def test_form_event_may_come_in_the_query_string() -> None:
    event = parse(b"", (("event", "mo_sms"), ("sms", "8"), ("phone", "+250788123123")))
    assert event.kind == "sms.received"
    assert event.external_id == "8"


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        (b"event=mo_sms&sms=1", JSON),
        (b'{"flow": {"uuid": ', JSON),
        (b"{'flow': 1}", "application/json; charset=utf-8"),
        (b"not json", "application/vnd.rapidpro+json"),
    ],
)
def test_json_content_type_with_invalid_json_is_bad_request(body: bytes, ctype: str) -> None:
    with pytest.raises(BadRequest, match="not valid JSON"):
        parse(body, ctype=ctype)


@pytest.mark.parametrize("ctype", [JSON, FORM, ""])
def test_json_array_body_is_bad_request(ctype: str) -> None:
    with pytest.raises(BadRequest, match="object"):
        parse(b'[{"status": "Shipped"}]', ctype=ctype)


def test_too_many_params_is_bad_request() -> None:
    body = "event=mo_sms&" + "&".join(f"k{i}=v" for i in range(MAX_PARAMS))
    with pytest.raises(BadRequest, match="too many parameters"):
        parse(body)


def test_params_at_the_limit_are_accepted() -> None:
    body = "event=mo_sms&sms=1&" + "&".join(f"k{i}=v" for i in range(MAX_PARAMS - 2))
    assert parse(body).kind == "sms.received"


# --------------------------------------------------------------------------- idempotency keys


def key_of(body: bytes | str, channel: str = "textit", ctype: str = FORM) -> str:
    provider = TextItProvider()
    request = form(body, ctype=ctype)
    return provider.idempotency_key(provider.parse(channel, request), request)


def test_repeated_delivery_has_the_same_key() -> None:
    body = payload("textit", "mo_sms.txt")
    assert key_of(body) == key_of(body)


def test_repeated_delivery_with_reordered_fields_has_the_same_key() -> None:
    body = payload("textit", "mo_sms.txt")
    reordered = b"&".join(reversed(body.split(b"&")))
    assert reordered != body
    assert key_of(reordered) == key_of(body)


def test_sent_and_delivered_of_one_sms_have_different_keys() -> None:
    sent, delivered = payload("textit", "mt_sent.txt"), payload("textit", "mt_dlvd.txt")
    assert load("mt_sent.txt").external_id == load("mt_dlvd.txt").external_id
    assert key_of(sent) != key_of(delivered)


def test_different_sms_ids_have_different_keys() -> None:
    base = "event=mo_sms&relayer=254&phone=%2B250788123123&text=hi&sms="
    assert key_of(base + "1") != key_of(base + "2")


def test_different_relayers_have_different_keys() -> None:
    base = "event=mo_sms&phone=%2B250788123123&text=hi&sms=1&relayer="
    assert key_of(base + "1") != key_of(base + "2")


def test_documented_channel_and_sent_relayer_give_the_same_key() -> None:
    a = "event=mo_sms&sms=1&relayer=254&phone=%2B250788123123"
    b = "event=mo_sms&id=1&channel=254&phone=%2B250788123123"
    assert key_of(a) == key_of(b)


def test_channels_do_not_share_keys() -> None:
    body = payload("textit", "mo_sms.txt")
    assert key_of(body, "textit") != key_of(body, "textit-kenya")


def file_key(name: str) -> str:
    provider = TextItProvider()
    request = request_of("textit", name)
    return provider.idempotency_key(provider.parse("textit", request), request)


# Each call carries its run and the moment the run reached the step: a retry repeats them.
KEYED_FLOWS = [
    "flow_documented.txt",
    "flow_legacy.txt",
    "flow_legacy_no_input.txt",
    "flow_legacy_anonymous.txt",
    "flow_python_era.json",
    "flow_goflow_legacy.json",
    "flow_resthook.json",
    "flow_goflow_anonymous.json",
    "flow_get.query",
    "flow_get_anonymous.query",
]
# Nothing in these tells one call from the next visit: every call is new.
UNKEYED_FLOWS = [
    "flow_editor_default.json",
    "flow_editor_default_anonymous.json",
    "flow_get_legacy.query",
]


def test_every_flow_payload_is_listed_as_keyed_or_not() -> None:
    flows = sorted(n for n, row in TABLE.items() if row["kind"] == "flow.step")
    assert sorted(KEYED_FLOWS + UNKEYED_FLOWS) == flows


@pytest.mark.parametrize("name", KEYED_FLOWS)
def test_a_retried_flow_call_has_the_same_key(name: str) -> None:
    assert file_key(name) == file_key(name)
    assert ":flow:" in file_key(name)


@pytest.mark.parametrize("name", UNKEYED_FLOWS)
def test_a_flow_call_without_run_and_moment_is_always_new(name: str) -> None:
    assert file_key(name) != file_key(name)


def test_flow_calls_of_one_run_differ_by_step_and_moment() -> None:
    base = "run=7&flow=3&values=%5B%5D"
    one = key_of(f"{base}&step=n1&time=2015-10-27T14%3A07%3A30.000006Z")
    assert one == key_of(f"{base}&step=n1&time=2015-10-27T14%3A07%3A30.000006Z")
    assert one != key_of(f"{base}&step=n2&time=2015-10-27T14%3A07%3A30.000006Z")
    assert one != key_of(f"{base}&step=n1&time=2015-10-27T14%3A09%3A02.500000Z")
    other_run = "run=8&flow=3&values=%5B%5D"
    assert one != key_of(f"{other_run}&step=n1&time=2015-10-27T14%3A07%3A30.000006Z")
    # The same instant written another way is the same moment.
    assert one == key_of(f"{base}&step=n1&time=2015-10-27T14%3A07%3A30.000006%2B00%3A00")


def test_goflow_revisit_of_the_webhook_node_is_a_new_call() -> None:
    # A flow that loops back to its webhook node sends the same run, node and results; only
    # the path step's arrived_on differs.
    doc = json.loads(payload("textit", "flow_goflow_legacy.json"))
    again = json.loads(json.dumps(doc))
    again["path"].append({"arrived_on": "2025-05-04T12:35:02.000001Z", **doc["path"][0]})
    again["path"][-1]["arrived_on"] = "2025-05-04T12:35:02.000001Z"
    first_call = key_of(json.dumps(doc), ctype=JSON)
    assert first_call == key_of(json.dumps(doc), ctype=JSON)
    assert first_call != key_of(json.dumps(again), ctype=JSON)


@pytest.mark.parametrize(
    "body",
    [
        "run=7&flow=3&step=n1&values=%5B%5D",  # no time
        "flow=3&step=n1&values=%5B%5D&time=2015-10-27T14%3A07%3A30Z",  # no run
        "run=7&flow=3&step=n1&values=%5B%5D&time=yesterday",  # unreadable time
    ],
)
def test_legacy_flow_call_without_run_or_time_is_always_new(body: str) -> None:
    assert key_of(body) != key_of(body)


def test_alarm_without_id_is_keyed_by_body() -> None:
    a, b = payload("textit", "alarm.txt"), payload("textit", "alarm_documented.txt")
    assert key_of(a) == key_of(a)
    assert key_of(a) != key_of(b)


# --------------------------------------------------------------------------- replies


def reply(event: Event, text: str | None, variables: dict[str, Any] | None = None) -> HttpReply:
    return TextItProvider().reply(event, text, variables)


@pytest.mark.parametrize(
    ("name", "channel"),
    [
        ("mo_sms.txt", 254),
        ("mo_sms_documented.txt", 254),  # the documented `channel=` is the same id
        ("mo_miss.txt", 5),
        ("mo_miss_documented.txt", 254),
    ],
)
def test_reply_to_phone_on_the_channel_written_to(name: str, channel: int) -> None:
    body = reply_json(reply(load(name), "Thanks, got it"))
    assert body == {"phone": ["+250788123123"], "text": "Thanks, got it", "channel": channel}


def test_reply_to_urn_when_there_is_no_phone() -> None:
    event = parse(f"event=mo_sms&sms=3&urn=twitter%3Ajoe_blow&contact={JOE}&text=hi")
    assert reply_json(reply(event, "Hello")) == {"urn": ["twitter:joe_blow"], "text": "Hello"}


def test_reply_to_urn_when_phone_is_blank() -> None:
    # Contacts without a tel URN: `phone` may arrive empty (§7.6).
    event = parse(f"event=mo_sms&sms=3&phone=&urn=tel%3A%2B250788123123&contact={JOE}&text=hi")
    assert event.contact == "+250788123123"
    assert reply_json(reply(event, "Hello")) == {"urn": ["tel:+250788123123"], "text": "Hello"}


@pytest.mark.parametrize(
    ("name", "urn", "channel"),
    [
        ("mo_sms_anonymous.txt", "tel:+250788123124", 254),
        ("mo_miss_anonymous.txt", "tel:+250788123125", 5),
        ("mo_sms_without_phone.txt", "telegram:34642632786", 31),
    ],
)
def test_masked_or_empty_phone_is_never_a_reply_address(name: str, urn: str, channel: int) -> None:
    # TextIt refuses `phone` in an anonymous workspace, and ******** is nobody's number.
    event = load(name)
    assert event.raw["phone"] in (MASK, "")
    assert reply_json(reply(event, "Hello")) == {"urn": [urn], "text": "Hello", "channel": channel}


@pytest.mark.parametrize(
    "phone", [MASK, "%2A%2A%2A", "+2507881%2A%2A%2A%2A", "", "+", "%20"], ids=repr
)
def test_masked_phone_without_urn_is_answered_by_contact_uuid(phone: str) -> None:
    event = parse(f"event=mo_sms&sms=3&relayer=254&phone={phone}&contact={JOE}&text=hi")
    assert event.contact is None
    assert event.contact_uuid == JOE
    assert reply_json(reply(event, "Hello")) == {"contact": [JOE], "text": "Hello", "channel": 254}


@pytest.mark.parametrize("urn", ["tel%3A%2A%2A%2A%2A%2A%2A%2A%2A", MASK, "tel%3A"], ids=repr)
def test_masked_urn_is_no_identity_either(urn: str) -> None:
    event = parse(f"event=mo_sms&sms=3&phone={MASK}&urn={urn}&contact={JOE}&text=hi")
    assert (event.contact, event.urn, event.contact_uuid) == (None, None, JOE)
    assert reply_json(reply(event, "Hello")) == {"contact": [JOE], "text": "Hello"}


def test_anonymous_contacts_are_told_apart() -> None:
    ann, bea = load("mo_sms_anonymous.txt"), load("mo_miss_anonymous.txt")
    assert ann.raw["phone"] == bea.raw["phone"] == MASK
    assert ann.contact != bea.contact


@pytest.mark.parametrize(
    ("relayer", "channel"),
    [("254", 254), ("-1", None), ("", None), ("0", None), ("x1", None), ("1e3", None)],
    ids=repr,
)
def test_reply_names_the_channel_only_when_the_event_does(
    relayer: str, channel: int | None
) -> None:
    event = parse(f"event=mo_sms&sms=3&relayer={relayer}&phone=%2B250788123123&text=hi")
    body = reply_json(reply(event, "Hello"))
    assert body.get("channel") == channel
    assert body["phone"] == ["+250788123123"]


def test_flow_step_reply_names_no_channel() -> None:
    # A flow webhook's answer is variables for the flow, not a message to send.
    assert "channel" not in reply_json(reply(load("flow_legacy.txt"), "Hi", {"a": 1}))


def test_reply_to_contact_when_there_is_only_a_contact() -> None:
    event = parse(f"event=mo_sms&sms=3&contact={JOE}&text=hi")
    assert reply_json(reply(event, "Hello")) == {"contact": [JOE], "text": "Hello"}


def test_reply_without_text_is_empty_200() -> None:
    result = reply(load("mo_sms.txt"), None, {"ignored": "yes"})
    assert result == HttpReply(status=200, content_type="text/plain", body=b"")


def test_reply_to_event_without_any_address_is_empty_200() -> None:
    result = reply(load("alarm.txt"), "Battery low")
    assert result.status == 200
    assert result.body == b""


@pytest.mark.parametrize(("length", "kept"), [(479, 479), (480, 480), (481, 480), (2000, 480)])
def test_reply_text_is_truncated_to_480(length: int, kept: int) -> None:
    text = "é" * length
    body = reply_json(reply(load("mo_sms.txt"), text))
    assert MAX_REPLY_TEXT == 480
    assert body["text"] == "é" * kept


def test_reply_keeps_unicode_unescaped() -> None:
    result = reply(load("mo_sms.txt"), "Murakoze \U0001f44d")
    assert "Murakoze \U0001f44d".encode() in result.body


ORDER = {"status": "Shipped", "number": "CU001", "ship_date": "October 9th"}


@pytest.mark.parametrize("name", [n for n, r in TABLE.items() if r["kind"] == "flow.step"])
def test_flow_step_reply_is_the_variables_object(name: str) -> None:
    assert reply_json(reply(load(name), None, ORDER)) == ORDER


def test_flow_step_reply_with_nested_variables() -> None:
    variables = {"order": {"items": [1, 2]}, "ok": True, "count": 3}
    assert reply_json(reply(load("flow_resthook.json"), None, variables)) == variables


def test_flow_step_reply_with_empty_variables_is_an_empty_object() -> None:
    assert reply_json(reply(load("flow_legacy.txt"), None, {})) == {}


def test_flow_step_reply_without_anything_is_empty_200() -> None:
    result = reply(load("flow_legacy.txt"), None, None)
    assert result.status == 200
    assert result.body == b""


def test_flow_step_reply_text_joins_the_variables() -> None:
    assert reply_json(reply(load("flow_legacy.txt"), "Shipped!", None)) == {"text": "Shipped!"}
    both = reply_json(reply(load("flow_legacy.txt"), "Hi", {"status": "Shipped"}))
    assert both == {"status": "Shipped", "text": "Hi"}
    own = reply_json(reply(load("flow_legacy.txt"), "Hi", {"text": "mine"}))
    assert own == {"text": "mine"}


# --------------------------------------------------------------------------- GET flow webhooks


def get(query: str) -> Event:
    request = WebhookRequest(query=tuple(pairs(query.encode())), body=b"", method="GET")
    return TextItProvider().parse("textit", request)


@pytest.mark.parametrize(
    "query",
    [
        "",
        "foo=bar",
        "event=mo_sms&sms=1&phone=%2B250788123123&text=hi",
        "event=mo_miss&call=2&phone=%2B250788123123",
    ],
    ids=repr,
)
def test_a_get_is_always_a_flow_call(query: str) -> None:
    # Only a flow's Call Webhook node sends GET, with names its author chose.
    event = get(query)
    assert (event.kind, event.provider_event) == ("flow.step", "flow")
    assert event.flow is not None


def test_the_same_parameters_posted_without_flow_fields_are_no_flow() -> None:
    query = "contact=5d76d86b-3bb9-4d5a-b822-c9d86f5d8e4f&text=red"
    assert get(query).kind == "flow.step"
    assert parse(b"", tuple(pairs(query.encode()))).kind == "unknown"


def test_get_flow_parameters_are_read_like_the_legacy_form() -> None:
    event = get(payload("textit", "flow_get.query").decode())
    posted = parse(payload("textit", "flow_get.query") + b"&step=None&values=%5B%5D")
    assert project(event) == project(posted)
