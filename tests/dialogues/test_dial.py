"""Outbound calls: a rule starts a dialogue that dials (ivr/start/dial) and then runs a menu."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

from responder.web.server import STORE
from tests.conftest import REPO, wait_for

EXAMPLE = REPO / "examples" / "callback"
PUBLIC = "https://ivr.example.org"


def _state(url: str) -> str:
    return parse_qs(urlsplit(url).query)["app_state"][0]


async def _post(client, url: str, **data: str) -> int:
    parts = urlsplit(url)
    resp = await client.post(f"{parts.path}?{parts.query}", data=data)
    return resp.status


async def _request_call(client) -> None:
    resp = await client.post(
        "/webhooks/textit",
        data={"event": "mo_sms", "sms": "41", "phone": "+6598765432", "text": "Call me please"},
    )
    assert await resp.json() == {"phone": ["+6598765432"], "text": "Calling you now."}


async def test_dial_then_menu_then_confirm(make_client, fake_hoiio) -> None:
    client = await make_client(EXAMPLE, public_url=PUBLIC)
    await _request_call(client)
    await wait_for(lambda: len(fake_hoiio.requests) == 1)
    dial = fake_hoiio.requests[0]
    assert dial.path == "/open/ivr/start/dial"
    assert "session" not in dial.params
    assert dial.params["dest"] == "+6598765432"
    assert dial.params["caller_id"] == "+6531234567"
    assert dial.params["msg"] == "Hello, this is the clinic calling you back."
    assert dial.params["notify_url"].startswith(f"{PUBLIC}/webhooks/hoiio?")
    dialogue, state, seq, ref = _state(dial.params["notify_url"]).split(":")
    assert (dialogue, state, seq, len(ref)) == ("callback", "ring", "1", 16)

    assert (
        await _post(
            client,
            dial.params["notify_url"],
            ivr_block="dial",
            session="S-D1",
            txn_ref="AA-D1",
            dest="+6598765432",
            dial_status="answered",
        )
        == 200
    )
    await wait_for(lambda: len(fake_hoiio.requests) == 2)
    menu = fake_hoiio.requests[1]
    assert menu.path == "/open/ivr/middle/gather"
    assert menu.params["session"] == "S-D1"
    assert _state(menu.params["notify_url"]) == f"callback:menu:2:{ref}"

    # The dial's notify_url cannot be replayed once the call has moved on.
    assert (
        await _post(
            client,
            dial.params["notify_url"],
            ivr_block="dial",
            session="S-EVIL",
            dial_status="answered",
        )
        == 200
    )
    # A later block's URL is bound to the real session.
    assert (
        await _post(
            client, menu.params["notify_url"], ivr_block="gather", session="S-EVIL", digits="1"
        )
        == 403
    )

    assert (
        await _post(
            client,
            menu.params["notify_url"],
            ivr_block="gather",
            session="S-D1",
            txn_ref="AA-D1",
            digits="1",
        )
        == 200
    )
    await wait_for(lambda: len(fake_hoiio.requests) == 3)
    bye = fake_hoiio.requests[2]
    assert bye.path == "/open/ivr/end/hangup"
    assert bye.params["msg"] == "Confirmed. See you tomorrow."
    store = client.server.app[STORE]
    conversation = await store.get_conversation(f"hoiio:ivr:dial-{ref}")
    assert (conversation.status, conversation.outcome) == ("ended", "confirmed")
    assert conversation.session == "S-D1"


async def test_unanswered_dial_ends_the_conversation(make_client, fake_hoiio) -> None:
    client = await make_client(EXAMPLE, public_url=PUBLIC)
    await _request_call(client)
    await wait_for(lambda: len(fake_hoiio.requests) == 1)
    url = fake_hoiio.requests[0].params["notify_url"]
    assert await _post(client, url, ivr_block="dial", session="S-D2", dial_status="busy") == 200
    ref = _state(url).split(":")[3]
    conversation = await client.server.app[STORE].get_conversation(f"hoiio:ivr:dial-{ref}")
    assert (conversation.status, conversation.outcome) == ("ended", "not answered (busy)")
    assert len(fake_hoiio.requests) == 1


async def test_retried_request_dials_once(make_client, fake_hoiio) -> None:
    client = await make_client(EXAMPLE, public_url=PUBLIC)
    await _request_call(client)
    await _request_call(client)
    await wait_for(lambda: len(fake_hoiio.requests) >= 1)
    await asyncio.sleep(0.3)  # a second dial would have been delivered by now
    assert [r.path for r in fake_hoiio.requests] == ["/open/ivr/start/dial"]
