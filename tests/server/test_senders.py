"""What real TextIt and Hoiio senders do, over HTTP: flow webhooks sent with GET, anonymous
workspaces, flow calls that are not retries, the channel a reply goes out on, a gather
ended with '#'."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from responder.testing.fakes import FakeProvider
from responder.web.server import STORE
from tests.conftest import REPO, wait_for, write_rules
from tests.providers._support import pairs, payload

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}
SECRET = "s3cret-for-tests"
MASK = "********"
ANN_UUID = "9a3b1e2c-55d4-4c1f-8f6e-2b7d9c0e1f34"
BEA_UUID = "4e1d7a90-2b6c-4f3e-9a15-7c8d0e2f6b13"
STOPPED = "You have been unsubscribed"


class Clock:
    """A clock the test moves: answers that print ``now`` show whether they were made again."""

    def __init__(self, now: float = 1_770_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def flow_rules(tmp_path: Path, fake_http: FakeProvider) -> Path:
    # Every run of the rule calls the fake once and answers with the moment it ran.
    return write_rules(
        tmp_path / "flow-rules",
        f"""
        rules:
          - name: registration
            on: flow.step
            when: {{flow: {{name: Registration}}}}
            http: {{url: "{fake_http.url}/ran", json: {{run: "{{{{ flow.run }}}}"}}}}
            reply:
              json: {{status: "registered", at: "{{{{ now.isoformat() }}}}"}}
        """,
    )


async def answer(resp: Any) -> Any:
    assert resp.status == 200, await resp.text()
    body = await resp.read()
    return json.loads(body) if body else None


# -- 1. flow webhooks sent with GET -----------------------------------------------------------


async def test_textit_flow_webhook_sent_with_get_runs_the_rules_once_per_call(
    make_client, fake_http: FakeProvider, tmp_path: Path
) -> None:
    clock = Clock()
    client = await make_client(flow_rules(tmp_path, fake_http), clock, webhook_secret=SECRET)
    query = pairs(payload("textit", "flow_get.query"))

    # The same auth as a POST: the secret travels in the URL the flow author wrote.
    assert (await client.get("/webhooks/textit", params=query)).status == 401
    assert fake_http.requests == []

    first = await answer(await client.get("/webhooks/textit", params=[*query, ("secret", SECRET)]))
    assert first == {"status": "registered", "at": "2026-02-02T02:40:00+00:00"}
    await wait_for(lambda: len(fake_http.requests) == 1)
    assert fake_http.requests[0].json == {"run": "01969b47-2c93-76f8-8f41-6b2d53eb3e13"}

    # The same call again (same run, same moment): a retry, answered from the store.
    clock.now += 60
    again = await answer(await client.get("/webhooks/textit", params=[*query, ("secret", SECRET)]))
    assert again == first
    assert len(fake_http.requests) == 1


async def test_legacy_get_without_parameters_is_a_flow_step(make_client, tmp_path: Path) -> None:
    rules = write_rules(
        tmp_path / "r",
        """
        rules:
          - name: any-flow
            on: flow.step
            reply: {json: {ok: "yes"}}
        """,
    )
    client = await make_client(rules)
    assert await answer(await client.get("/webhooks/textit")) == {"ok": "yes"}


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/webhooks/hoiio", "POST"),  # Hoiio POSTs every notification
        ("PUT", "/webhooks/textit", None),
        ("DELETE", "/webhooks/hoiio", None),
        ("HEAD", "/webhooks/textit", None),
    ],
)
async def test_methods_no_sender_uses_are_refused(
    make_client, fake_hoiio: FakeProvider, method: str, path: str, allowed: str | None
) -> None:
    client = await make_client(REPO / "rules")
    query = "ivr_block=answer&session=S-1&txn_ref=AA-I-1&from=%2B6591234567&to=%2B6531234567"
    resp = await client.request(method, f"{path}?{query}")
    assert resp.status == 405
    if allowed is not None:
        assert resp.headers["Allow"] == allowed
    assert await client.server.app[STORE].outbox() == []
    assert fake_hoiio.requests == []


# -- 2. anonymous workspaces ------------------------------------------------------------------


def anonymous_sms(sms_id: int, urn: str | None, contact: str, text: str) -> dict[str, str]:
    fields = {
        "event": "mo_sms",
        "relayer": "254",
        "relayer_phone": "+250788111111",
        "sms": str(sms_id),
        "phone": MASK,
        "contact": contact,
        "text": text,
        "time": "2017-03-16T10:40:01.101000",
        "status": "H",
        "direction": "I",
    }
    if urn is not None:
        fields["urn"] = urn
    return fields


ECHO = """
rules:
  - name: echo
    on: sms.received
    reply: {text: "You said: {{ text }}"}
"""


@pytest.mark.parametrize(
    ("ann", "bea"),
    [
        (("tel:+250788123124", ANN_UUID), ("tel:+250788123125", BEA_UUID)),
        # Contacts without a URN in the event: the contact UUID is who they are.
        ((None, ANN_UUID), (None, BEA_UUID)),
    ],
    ids=["by-urn", "by-contact-uuid"],
)
async def test_anonymous_contacts_stay_apart_through_stop(
    make_client, tmp_path: Path, ann: tuple[str | None, str], bea: tuple[str | None, str]
) -> None:
    client = await make_client(write_rules(tmp_path / "r", ECHO))
    ids = iter(range(1, 100))

    async def say(who: tuple[str | None, str], text: str) -> Any:
        data = anonymous_sms(next(ids), who[0], who[1], text)
        return await answer(await client.post("/webhooks/textit", data=data, headers=FORM))

    def addressed_to(who: tuple[str | None, str]) -> dict[str, list[str]]:
        return {"urn": [who[0]]} if who[0] else {"contact": [who[1]]}

    stopped = await say(ann, "STOP")
    assert stopped["text"].startswith(STOPPED)
    assert {k: stopped[k] for k in ("urn", "contact") if k in stopped} == addressed_to(ann)
    assert "phone" not in stopped

    # Bea shares Ann's masked phone, not her opt-out.
    assert await say(bea, "hello") == {
        **addressed_to(bea),
        "text": "You said: hello",
        "channel": 254,
    }
    assert await say(ann, "hello") is None  # Ann hears nothing more


async def test_masked_phone_never_reaches_a_reply(
    make_client, fake_textit: FakeProvider, tmp_path: Path
) -> None:
    rules = write_rules(
        tmp_path / "r",
        """
        rules:
          - name: missed
            on: call.missed
            reply: {text: "Sorry we missed you"}
        """,
    )
    client = await make_client(rules)
    reply = await answer(
        await client.post(
            "/webhooks/textit", data=payload("textit", "mo_miss_anonymous.txt"), headers=FORM
        )
    )
    assert reply == {"urn": ["tel:+250788123125"], "text": "Sorry we missed you", "channel": 5}
    assert MASK not in json.dumps(reply)


# -- 3. flow webhooks: a new visit runs, a retry does not -------------------------------------


async def test_the_same_flow_gone_through_twice_runs_twice(
    make_client, fake_http: FakeProvider, tmp_path: Path
) -> None:
    # The editor's default POST body has no run and no path: two identical bodies are two
    # passes through the flow (RapidPro does not retry flow webhooks), not a retry.
    clock = Clock()
    client = await make_client(flow_rules(tmp_path, fake_http), clock)
    body = payload("textit", "flow_editor_default.json")
    first = await answer(await client.post("/webhooks/textit", data=body, headers=JSON))
    clock.now += 3600
    second = await answer(await client.post("/webhooks/textit", data=body, headers=JSON))
    assert first["at"] != second["at"]
    await wait_for(lambda: len(fake_http.requests) == 2)


async def test_a_flow_retry_runs_once_and_a_revisit_runs_again(
    make_client, fake_http: FakeProvider, tmp_path: Path
) -> None:
    clock = Clock()
    client = await make_client(flow_rules(tmp_path, fake_http), clock)
    body = payload("textit", "flow_resthook.json")
    first = await answer(await client.post("/webhooks/textit", data=body, headers=JSON))
    clock.now += 10  # mailroom (2020-2025) retried some calls byte for byte
    retried = await answer(await client.post("/webhooks/textit", data=body, headers=JSON))
    assert retried == first
    await wait_for(lambda: len(fake_http.requests) == 1)

    # The run loops back to the webhook node: same run and node, a later arrival.
    doc = json.loads(body)
    doc["path"].append({**doc["path"][-1], "arrived_on": "2025-05-04T12:40:00.000001Z"})
    revisit = await answer(
        await client.post("/webhooks/textit", data=json.dumps(doc), headers=JSON)
    )
    assert revisit["at"] != first["at"]
    await wait_for(lambda: len(fake_http.requests) == 2)


# -- 4. the channel a reply goes out on --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "channel"),
    [("mo_sms.txt", 254), ("mo_sms_documented.txt", 254), ("mo_sms_without_phone.txt", 31)],
)
async def test_reply_names_the_channel_the_message_came_through(
    make_client, tmp_path: Path, name: str, channel: int
) -> None:
    client = await make_client(write_rules(tmp_path / "r", ECHO))
    reply = await answer(
        await client.post("/webhooks/textit", data=payload("textit", name), headers=FORM)
    )
    assert reply["channel"] == channel


async def test_reply_to_an_event_without_a_channel_names_none(make_client, tmp_path: Path) -> None:
    client = await make_client(write_rules(tmp_path / "r", ECHO))
    data = {"event": "mo_sms", "sms": "7", "phone": "+250788123123", "text": "hi"}
    reply = await answer(await client.post("/webhooks/textit", data=data, headers=FORM))
    assert reply == {"phone": ["+250788123123"], "text": "You said: hi"}


# -- 5. a gather ended with '#' --------------------------------------------------------------


async def test_hoiio_gather_ended_with_hash_matches_the_key_pressed(
    make_client, fake_hoiio: FakeProvider
) -> None:
    client = await make_client(REPO / "examples" / "ivr-menu", public_url="https://ivr.example")
    common = {"session": "S-7", "txn_ref": "AA-S-7", "from": "+6591234567", "to": "+6531234567"}
    resp = await client.post("/webhooks/hoiio", data={"ivr_block": "answer", **common})
    assert resp.status == 200
    await wait_for(lambda: len(fake_hoiio.requests) == 1)
    menu = fake_hoiio.requests[0].params
    assert fake_hoiio.requests[0].path.endswith("ivr/middle/gather")
    url = urlsplit(menu["notify_url"])
    assert parse_qs(url.query)["app_state"]
    notify = {"ivr_block": "gather", "digits": "1#", **common}
    resp = await client.post(f"{url.path}?{url.query}", data=notify)
    assert resp.status == 200
    await wait_for(lambda: len(fake_hoiio.requests) == 2)
    sales = fake_hoiio.requests[1]
    assert sales.path.endswith("ivr/end/transfer")
    assert sales.params["dest"] == "+6561234567"
