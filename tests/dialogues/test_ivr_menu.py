"""The IVR main-menu example driven end to end over HTTP against a fake Hoiio API."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from responder.testing.fakes import FakeProvider
from tests.conftest import REPO, wait_for

EXAMPLE = REPO / "examples" / "ivr-menu"
PUBLIC = "https://ivr.example.org"
CALLER = "+6591234567"


class Call:
    """Plays Hoiio: posts notifications for one call and reads the blocks it is sent."""

    def __init__(self, client: Any, fake: FakeProvider, session: str) -> None:
        self.client = client
        self.fake = fake
        self.session = session
        self.seen = 0

    async def answer(self) -> dict[str, str]:
        resp = await self.client.post(
            "/webhooks/hoiio",
            data={
                "ivr_block": "answer",
                "session": self.session,
                "txn_ref": f"AA-{self.session}",
                "from": CALLER,
                "to": "+6531234567",
            },
        )
        assert resp.status == 200
        return await self.next_block()

    async def next_block(self) -> dict[str, str]:
        await wait_for(lambda: len(self.fake.requests) > self.seen)
        request = self.fake.requests[self.seen]
        self.seen += 1
        return {"endpoint": request.path.removeprefix("/open/"), **request.params}

    async def notify(self, block: dict[str, str], **params: str) -> int:
        url = urlsplit(block["notify_url"])
        assert f"{url.scheme}://{url.netloc}" == PUBLIC
        resp = await self.client.post(
            f"{url.path}?{url.query}",
            data={
                "session": self.session,
                "txn_ref": f"AA-{self.session}",
                "from": CALLER,
                "to": "+6531234567",
                **params,
            },
        )
        return resp.status


def state_of(block: dict[str, str]) -> str:
    return parse_qs(urlsplit(block["notify_url"]).query)["app_state"][0]


@pytest.fixture
async def call(make_client, fake_hoiio) -> Call:
    client = await make_client(EXAMPLE, public_url=PUBLIC)
    return Call(client, fake_hoiio, "S-100")


async def test_press_1_transfer_fails_then_voicemail(call: Call) -> None:
    menu = await call.answer()
    assert menu["endpoint"] == "ivr/middle/gather"
    assert menu["session"] == "S-100"
    assert menu["msg"] == "Welcome. Press 1 for sales, 2 to leave a message."
    assert (menu["max_digits"], menu["timeout"], menu["attempts"]) == ("1", "10", "1")
    assert state_of(menu) == "main-menu:menu:1"
    assert len(menu["notify_url"]) <= 4000

    assert await call.notify(menu, ivr_block="gather", digits="1") == 200
    sales = await call.next_block()
    assert sales["endpoint"] == "ivr/end/transfer"
    assert (sales["dest"], sales["on_failure"]) == ("+6561234567", "continue")
    assert sales["msg"] == "Connecting you to sales."
    assert state_of(sales) == "main-menu:sales:2"

    assert (
        await call.notify(sales, ivr_block="transfer", dest="+6561234567", transfer_status="busy")
        == 200
    )
    voicemail = await call.next_block()
    assert voicemail["endpoint"] == "ivr/middle/record"
    assert voicemail["max_duration"] == "60"
    assert state_of(voicemail) == "main-menu:voicemail:3"

    assert (
        await call.notify(voicemail, ivr_block="record", record_url="https://rec.example/1.mp3")
        == 200
    )
    thanks = await call.next_block()
    assert thanks["endpoint"] == "ivr/end/hangup"
    assert thanks["msg"] == "Thank you, we will call you back."
    assert "notify_url" not in thanks


async def test_press_2_records_a_voicemail(call: Call, make_client) -> None:
    menu = await call.answer()
    assert await call.notify(menu, ivr_block="gather", digits="2") == 200
    voicemail = await call.next_block()
    assert voicemail["endpoint"] == "ivr/middle/record"
    assert voicemail["msg"] == "Please leave a message after the tone."
    assert (
        await call.notify(voicemail, ivr_block="record", record_url="https://rec.example/2.mp3")
        == 200
    )
    assert (await call.next_block())["endpoint"] == "ivr/end/hangup"
    from responder.web.server import STORE

    store = call.client.server.app[STORE]
    conversation = await store.get_conversation("hoiio:ivr:S-100")
    assert conversation.status == "ended"
    assert conversation.outcome == "voicemail left"
    assert conversation.vars["recording"] == "https://rec.example/2.mp3"


async def test_three_invalid_inputs_say_goodbye(call: Call) -> None:
    block = await call.answer()
    states = [state_of(block)]
    for _ in range(3):
        assert await call.notify(block, ivr_block="gather", digits="9") == 200
        block = await call.next_block()
        if block["endpoint"] == "ivr/middle/gather":
            states.append(state_of(block))
    assert states == ["main-menu:menu:1", "main-menu:menu:2", "main-menu:menu:3"]
    assert block["endpoint"] == "ivr/end/hangup"
    assert block["msg"] == "Sorry, we did not get that. Goodbye."


async def test_tampered_app_state_is_refused_without_side_effects(call: Call) -> None:
    menu = await call.answer()
    url = urlsplit(menu["notify_url"])
    forged = url.query.replace("menu%3A1", "sales%3A1")
    resp = await call.client.post(
        f"{url.path}?{forged}", data={"session": "S-100", "ivr_block": "gather", "digits": "1"}
    )
    assert resp.status == 403
    unsigned = url.query.split("&sig=")[0]
    resp = await call.client.post(
        f"{url.path}?{unsigned}", data={"session": "S-100", "ivr_block": "gather", "digits": "1"}
    )
    assert resp.status == 403
    # The genuine notification still works: nothing was changed by the forgeries.
    assert await call.notify(menu, ivr_block="gather", digits="2") == 200
    assert (await call.next_block())["endpoint"] == "ivr/middle/record"
    assert len(call.fake.requests) == 2


async def test_app_state_replayed_into_another_session_is_refused(call: Call) -> None:
    menu = await call.answer()
    url = urlsplit(menu["notify_url"])
    resp = await call.client.post(
        f"{url.path}?{url.query}", data={"session": "S-OTHER", "ivr_block": "gather", "digits": "1"}
    )
    assert resp.status == 403
    assert len(call.fake.requests) == 1


async def test_caller_hangs_up_mid_menu(call: Call) -> None:
    menu = await call.answer()
    assert await call.notify(menu, call_state="ended", duration="1") == 200
    from responder.web.server import STORE

    store = call.client.server.app[STORE]
    conversation = await store.get_conversation("hoiio:ivr:S-100")
    assert conversation.status == "ended"
    assert conversation.outcome == "call ended in menu"


async def test_lost_store_continues_from_signed_state(make_client, fake_hoiio, tmp_path) -> None:
    first = await make_client(EXAMPLE, public_url=PUBLIC, store="memory://")
    call = Call(first, fake_hoiio, "S-200")
    menu = await call.answer()
    await first.close()
    # A fresh process with an empty store but the same signing key.
    second = await make_client(EXAMPLE, public_url=PUBLIC, store="memory://", state_key="k" * 32)
    call.client = second
    assert await call.notify(menu, ivr_block="gather", digits="2") == 403  # other key
    third = await make_client(EXAMPLE, public_url=PUBLIC, store="memory://", state_key="k" * 32)
    call3 = Call(third, fake_hoiio, "S-201")
    call3.seen = len(fake_hoiio.requests)
    menu3 = await call3.answer()
    await third.close()
    fourth = await make_client(EXAMPLE, public_url=PUBLIC, store="memory://", state_key="k" * 32)
    call3.client = fourth
    assert await call3.notify(menu3, ivr_block="gather", digits="2") == 200
    assert (await call3.next_block())["endpoint"] == "ivr/middle/record"


async def test_notify_url_over_hoiio_limit_fails_the_step_not_the_webhook(
    make_client, fake_hoiio, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client(EXAMPLE, public_url=PUBLIC + "/" + "p" * 4000)
    call = Call(client, fake_hoiio, "S-101")
    with caplog.at_level(logging.ERROR):
        resp = await client.post(
            "/webhooks/hoiio",
            data={"call_state": "ringing", "session": "S-101", "from": "+6591234567"},
        )
        assert resp.status == 200
    assert any("notify_url would be" in r.getMessage() for r in caplog.records)
    assert call.fake.calls("ivr/middle/gather") == []
