"""IVR steps sent at once: a webhook's commit writes its IVR step claimed for the process that
made it, which sends it without waiting for the delivery worker's claim; the worker takes
over what that process never finished. While steps back up, webhook answers wait for them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest

from responder.appstate import Signer
from responder.clients.delivery import Delivery
from responder.clients.sender import Sender
from responder.dialogues.runner import Runner
from responder.outbound import Commit, OutboundCall, StoredResponse
from responder.policy import IVR_PACE_AFTER, DeliverySettings
from responder.providers.base import WebhookRequest
from responder.providers.hoiio import HoiioProvider
from responder.rules.loader import load_rules
from responder.runtime.engine import Engine
from responder.runtime.handling import Handling
from responder.runtime.locks import KeyedLocks
from responder.settings import Settings
from responder.stores import open_store
from responder.stores.base import Store
from responder.testing.fakes import FakeProvider
from responder.testing.redisdb import drop_prefix
from tests.conftest import REPO, wait_for

OK = StoredResponse(200, "text/plain", b"")
LEASE = DeliverySettings().lease


def gather(key: str, session: str) -> OutboundCall:
    return OutboundCall(key, "hoiio", "ivr/middle/gather", {"session": session}, contact=session)


def settings(fake: FakeProvider) -> Settings:
    return Settings.from_env(
        {}, hoiio_app_id="app-1", hoiio_access_token="token-1", hoiio_api_url=fake.url
    )


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    url = (
        f"sqlite:///{tmp_path / 'responder.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("redis_url")
    )
    s = open_store(url)
    await s.open()
    yield s
    await s.close()


async def commit_held(store: Store, key: str, *calls: OutboundCall) -> tuple[str, ...]:
    now = time.time()
    committed = await store.commit(Commit(key, OK, calls, now=now, hold_until=now + LEASE))
    return committed.held


async def test_a_step_written_claimed_goes_out_without_a_claim(
    store: Store, fake_hoiio: FakeProvider
) -> None:
    held = await commit_held(store, "e1", gather("e1#0", "S-1"))
    assert held == ("e1#0",)
    async with aiohttp.ClientSession() as session:
        delivery = Delivery(store, Sender(settings(fake_hoiio), session))
        sending = delivery.send_now([gather("e1#0", "S-1")], time.time())
        assert sending is not None
        await asyncio.wait_for(sending, 10)  # no worker runs: nothing but send_now sent it
    assert [r.path for r in fake_hoiio.requests] == ["/open/ivr/middle/gather"]
    (sent,) = await store.outbox(status="sent")
    assert (sent.call.key, sent.attempts) == ("e1#0", 0)
    assert await store.claim_outbox(time.time() + 10 * LEASE, LEASE, 10) == []


async def test_a_failed_step_is_retried_by_the_worker_and_sent_once(
    store: Store, fake_hoiio: FakeProvider
) -> None:
    fake_hoiio.behaviour.fail_next = 1
    fake_hoiio.behaviour.fail_status = 503
    await commit_held(store, "e1", gather("e1#0", "S-1"))
    async with aiohttp.ClientSession() as session:
        delivery = Delivery(store, Sender(settings(fake_hoiio), session))
        sending = delivery.send_now([gather("e1#0", "S-1")], time.time())
        assert sending is not None
        await asyncio.wait_for(sending, 10)
        (pending,) = await store.outbox(status="pending")
        assert (pending.attempts, pending.last_error) == (1, "hoiio ivr/middle/gather: HTTP 503")
        worker = asyncio.create_task(delivery.run())
        try:
            await wait_for(lambda: len(fake_hoiio.requests) == 2, 10, "the retry")
            await wait_for(lambda: delivery.in_flight == 0, 5, "the retry's outcome")
        finally:
            await delivery.shutdown()
            await asyncio.wait_for(worker, 10)
    (sent,) = await store.outbox(status="sent")
    assert (sent.call.key, sent.attempts) == ("e1#0", 1)
    assert fake_hoiio.stats()["accepted_twice"] == []


async def test_answers_wait_for_their_steps_only_while_steps_back_up(
    tmp_path: Path, fake_hoiio: FakeProvider
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'responder.db'}")
    await store.open()
    fake_hoiio.behaviour.delay = 0.5
    try:
        async with aiohttp.ClientSession() as session:
            delivery = Delivery(store, Sender(settings(fake_hoiio), session))
            sendings = []
            for n in range(IVR_PACE_AFTER + 1):
                await commit_held(store, f"e{n}", gather(f"e{n}#0", f"S-{n}"))
                sending = delivery.send_now([gather(f"e{n}#0", f"S-{n}")], time.time())
                assert sending is not None
                sendings.append(sending)
                await delivery.pace(sending)
                # Up to the bound the answer goes while its step is still on its way; one
                # step more, and the answer waits until its own step is out.
                assert sending.done() is (n == IVR_PACE_AFTER)
            await asyncio.wait_for(asyncio.gather(*sendings), 10)
    finally:
        await store.close()
    assert len(fake_hoiio.requests) == IVR_PACE_AFTER + 1


async def test_an_ivr_step_costs_one_redis_round_trip_and_no_claim(
    redis_url: str, fake_hoiio: FakeProvider
) -> None:
    """Through the one pipeline with no delivery worker running: an ``answer`` notification
    reads once and commits once; its ``gather`` block, which starts no call and so takes no
    Hoiio place, costs the write of its outcome."""
    store = open_store(redis_url)
    await store.open()
    rules = load_rules([REPO / "examples" / "ivr-menu"])
    runner = Runner(Signer(b"k" * 32), "https://ivr.example.org")
    engine = Engine(rules, store, runner)
    try:
        async with aiohttp.ClientSession() as session:
            delivery = Delivery(store, Sender(settings(fake_hoiio), session))
            handling = Handling(engine, KeyedLocks(), dispatch=delivery)
            provider = HoiioProvider()
            form = {"ivr_block": "answer", "session": "S-1", "txn_ref": "T-1", "from": "+6591234"}
            request = WebhookRequest(
                (), urlencode(form).encode(), "application/x-www-form-urlencoded"
            )
            event = provider.parse("hoiio", request)
            before = dict(store.round_trips)
            handled = await handling.webhook(
                provider, event, provider.idempotency_key(event, request)
            )
            assert handled.fresh
            await wait_for(lambda: delivery.in_flight == 0 and bool(fake_hoiio.requests), 10)
            trips = {k: v - before.get(k, 0) for k, v in store.round_trips.items()}
    finally:
        await store.close()
        drop_prefix(redis_url.rsplit("prefix=", 1)[1])
    assert [r.path for r in fake_hoiio.requests] == ["/open/ivr/middle/gather"]
    assert {k: v for k, v in trips.items() if v} == {"webhook": 2, "delivery": 1}
