"""The delivery worker draining a real SQLite outbox into the fake provider servers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from responder.clients.delivery import Delivery
from responder.clients.sender import Sender
from responder.outbound import Commit, OutboundCall, StoredResponse
from responder.policy import DeliverySettings, Rate
from responder.settings import Settings
from responder.stores.base import Slot
from responder.stores.sqlite import SqliteStore
from responder.testing.fakes import FakeProvider
from tests.conftest import wait_for

HOIIO_TOKEN = "token-secret-1"
TEXTIT_TOKEN = "textit-secret-1"
ALICE = "+6591234567"
BOB = "+6598765432"
T0 = 1_000_000.0
DEFAULTS = DeliverySettings()
LEASE = DEFAULTS.lease
MAX_ATTEMPTS = DEFAULTS.max_attempts
OK = StoredResponse(200, "text/plain", b"")


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    store: SqliteStore
    delivery: Delivery
    clock: Clock
    hoiio: FakeProvider
    textit: FakeProvider
    http: FakeProvider

    async def commit(self, key: str, *calls: OutboundCall) -> None:
        _, fresh, _ = await self.store.commit(Commit(key, OK, calls, now=self.clock()))
        assert fresh


@pytest.fixture
async def rig(
    tmp_path: Path, fake_hoiio: FakeProvider, fake_textit: FakeProvider, fake_http: FakeProvider
) -> AsyncIterator[Rig]:
    settings = Settings.from_env(
        {},
        hoiio_app_id="app-1",
        hoiio_access_token=HOIIO_TOKEN,
        hoiio_api_url=fake_hoiio.url,
        textit_api_token=TEXTIT_TOKEN,
        textit_api_url=fake_textit.url,
    )
    store = SqliteStore(str(tmp_path / "responder.db"))
    await store.open()
    clock = Clock()
    async with aiohttp.ClientSession() as session:
        delivery = Delivery(store, Sender(settings, session), clock=clock)
        yield Rig(store, delivery, clock, fake_hoiio, fake_textit, fake_http)
    await store.close()


def sms(key: str, to: str = ALICE, msg: str = "hi") -> OutboundCall:
    return OutboundCall(key, "hoiio", "sms/send", {"dest": to, "msg": msg}, rule="r", contact=to)


def hangup(key: str, to: str = ALICE, session: str = "S-1") -> OutboundCall:
    return OutboundCall(key, "hoiio", "ivr/end/hangup", {"session": session}, contact=to)


def broadcast(key: str, to: str = ALICE) -> OutboundCall:
    return OutboundCall(
        key, "textit", "broadcasts.json", {"urns": [f"tel:{to}"], "text": "hi"}, contact=to
    )


async def test_committed_items_are_drained_and_marked_sent(rig: Rig) -> None:
    webhook = OutboundCall("e1#2", "http", f"{rig.http.url}/hook", {"json": {"a": 1}})
    await rig.commit("e1", sms("e1#0"), broadcast("e1#1"), webhook)
    assert await rig.delivery.drain_once() == 3
    assert len(rig.hoiio.calls("/sms/send")) == 1
    assert len(rig.textit.calls("/broadcasts.json")) == 1
    assert rig.http.requests[0].json == {"a": 1}
    sent = await rig.store.outbox(status="sent")
    assert sorted(item.call.key for item in sent) == ["e1#0", "e1#1", "e1#2"]
    assert all(item.attempts == 0 for item in sent)
    assert await rig.delivery.drain_once() == 0
    rig.clock.now += 10 * LEASE
    assert await rig.delivery.drain_once() == 0  # sent items are never sent again
    assert len(rig.hoiio.requests) == 1


async def test_a_transient_failure_is_retried_once_due_and_delivered_once(rig: Rig) -> None:
    rig.hoiio.behaviour.fail_next = 1
    rig.hoiio.behaviour.fail_status = 503
    rig.hoiio.behaviour.retry_after = "30"
    await rig.commit("e1", sms("e1#0"))
    assert await rig.delivery.drain_once() == 1
    (pending,) = await rig.store.outbox(status="pending")
    assert pending.attempts == 1
    assert pending.last_error is not None
    assert "HTTP 503" in pending.last_error
    # Not due yet: Retry-After is a floor for the backoff.
    assert await rig.delivery.drain_once() == 0
    rig.clock.now += 29
    assert await rig.delivery.drain_once() == 0
    rig.clock.now += 1000
    assert await rig.delivery.drain_once() == 1
    assert await rig.delivery.drain_once() == 0
    rig.clock.now += 10_000
    assert await rig.delivery.drain_once() == 0
    assert len(rig.hoiio.requests) == 2
    (sent,) = await rig.store.outbox(status="sent")
    assert (sent.call.key, sent.attempts) == ("e1#0", 1)


async def test_hoiio_rate_limit_status_is_retried(rig: Rig) -> None:
    rig.hoiio.behaviour.hoiio_status = "error_rate_limit_exceeded"
    await rig.commit("e1", sms("e1#0"))
    await rig.delivery.drain_once()
    assert len(await rig.store.outbox(status="pending")) == 1
    rig.hoiio.behaviour.hoiio_status = "success_ok"
    rig.clock.now += 1000
    assert await rig.delivery.drain_once() == 1
    assert len(await rig.store.outbox(status="sent")) == 1


async def test_a_permanent_failure_ends_dead_with_the_error(rig: Rig) -> None:
    rig.hoiio.behaviour.hoiio_status = "error_invalid_session"
    await rig.commit("e1", hangup("e1#0"))
    assert await rig.delivery.drain_once() == 1
    (dead,) = await rig.store.outbox(status="dead")
    assert dead.call.key == "e1#0"
    assert dead.last_error == "hoiio ivr/end/hangup: error_invalid_session"
    rig.clock.now += 100_000
    assert await rig.delivery.drain_once() == 0
    assert len(rig.hoiio.requests) == 1


async def test_retries_stop_after_max_attempts(rig: Rig) -> None:
    rig.textit.behaviour.fail_next = 1000
    rig.textit.behaviour.fail_status = 500
    await rig.commit("e1", broadcast("e1#0"))
    for _ in range(MAX_ATTEMPTS + 3):
        await rig.delivery.drain_once()
        rig.clock.now += DEFAULTS.retry_max
    assert len(rig.textit.requests) == MAX_ATTEMPTS
    (dead,) = await rig.store.outbox(status="dead")
    assert dead.attempts == MAX_ATTEMPTS - 1
    assert (
        dead.last_error == f"textit broadcasts.json: HTTP 500 (gave up after {MAX_ATTEMPTS} tries)"
    )


async def test_dry_run_items_finish_as_dry_run(tmp_path: Path, fake_hoiio: FakeProvider) -> None:
    store = SqliteStore(str(tmp_path / "dry.db"))
    await store.open()
    try:
        async with aiohttp.ClientSession() as session:
            sender = Sender(Settings.from_env({}, hoiio_api_url=fake_hoiio.url), session)
            delivery = Delivery(store, sender, clock=Clock())
            await store.commit(Commit("e1", OK, (sms("e1#0"),), now=T0))
            assert await delivery.drain_once() == 1
        assert [i.call.key for i in await store.outbox(status="dry_run")] == ["e1#0"]
        assert fake_hoiio.requests == []
    finally:
        await store.close()


async def test_calls_to_one_contact_go_out_in_commit_order(rig: Rig) -> None:
    delay = 0.03
    rig.hoiio.behaviour.delay = delay  # each answer takes this long
    await rig.commit("e1", hangup("e1#0"), *(sms(f"e1#{n}", msg=f"a{n}") for n in range(1, 12)))
    await rig.commit("e2", hangup("e2#0", to=BOB, session="S-2"), sms("e2#1", to=BOB, msg="b1"))
    rig.clock.now += 1
    await rig.commit("e3", sms("e3#0", msg="a-later"))
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await rig.delivery.drain_once() == 15
    # Alice's 13 calls went one after another, each waiting for the previous answer (sent
    # side by side they would arrive in order too, but finish far sooner).
    assert loop.time() - started >= 13 * delay
    alice = [
        r
        for r in rig.hoiio.requests
        if r.params.get("dest") == ALICE or r.params.get("session") == "S-1"
    ]
    assert [r.path.rsplit("/", 1)[-1] for r in alice][:1] == ["hangup"]
    assert [r.params.get("msg") for r in alice[1:]] == [
        *(f"a{n}" for n in range(1, 12)),
        "a-later",
    ]
    bob = [
        r
        for r in rig.hoiio.requests
        if r.params.get("dest") == BOB or r.params.get("session") == "S-2"
    ]
    assert [r.path for r in bob] == ["/open/ivr/end/hangup", "/open/sms/send"]
    # Different contacts proceed in parallel: Bob did not wait for all of Alice's calls.
    order = [r.params.get("msg") or r.params.get("session") for r in rig.hoiio.requests]
    assert order.index("b1") < order.index("a-later")


async def test_run_delivers_in_the_background_and_stops(rig: Rig) -> None:
    worker = asyncio.create_task(rig.delivery.run())
    await rig.commit("e1", sms("e1#0"))
    rig.delivery.wake()
    await wait_for(lambda: len(rig.hoiio.requests) == 1)
    assert await rig.delivery.shutdown() == 0
    await asyncio.wait_for(worker, 5)
    assert [i.call.key for i in await rig.store.outbox(status="sent")] == ["e1#0"]


async def test_secrets_never_appear_in_logs(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    rig.hoiio.behaviour.hoiio_status = "error_invalid_session"
    rig.http.behaviour.fail_next = 1
    rig.textit.behaviour.fail_next = 1
    rig.textit.behaviour.fail_status = 400
    hook = OutboundCall(
        "e1#3",
        "http",
        f"{rig.http.url}/hook?token=hook-secret-9&x=1",
        {"json": {}},
        headers={"Authorization": "Bearer header-secret-8"},
    )
    await rig.commit("e1", sms("e1#0"), broadcast("e1#1", to=BOB), hangup("e1#2", to="S-1"), hook)
    await rig.delivery.drain_once()
    rig.clock.now += 100
    await rig.delivery.drain_once()
    statuses = {i.call.key: i.status for i in await rig.store.outbox()}
    assert statuses == {"e1#0": "dead", "e1#1": "dead", "e1#2": "dead", "e1#3": "sent"}
    assert len(rig.http.requests) == 2  # failed once, then sent
    assert rig.http.requests[0].params["token"] == "hook-secret-9"  # it was really sent
    records = caplog.records
    assert any(r.name == "responder.delivery" for r in records)
    everything = "\n".join(
        [caplog.text, *(r.getMessage() for r in records), *(repr(r.args) for r in records)]
    )
    for secret in (HOIIO_TOKEN, TEXTIT_TOKEN, "hook-secret-9", "header-secret-8"):
        assert secret not in everything
    for item in await rig.store.outbox():
        assert HOIIO_TOKEN not in (item.last_error or "")
        assert TEXTIT_TOKEN not in (item.last_error or "")


def rig_with(rig: Rig, **settings: object) -> Delivery:
    """Another worker on the rig's store and sender, with these delivery settings."""
    return Delivery(
        rig.store, rig.delivery.sender, settings=DeliverySettings(**settings), clock=rig.clock
    )  # type: ignore[arg-type]


async def test_later_calls_wait_behind_a_first_call_being_retried(rig: Rig) -> None:
    rig.hoiio.behaviour.fail_next = 1
    rig.hoiio.behaviour.fail_status = 503
    await rig.commit("e1", sms("e1#0", msg="first"))
    await rig.commit("e2", sms("e2#0", msg="second"), sms("e2#1", to=BOB, msg="bob"))
    assert await rig.delivery.drain_once() == 2  # Alice's first (fails) and Bob's
    assert [r.params["msg"] for r in rig.hoiio.requests] == ["first", "bob"]
    assert await rig.delivery.drain_once() == 0  # "second" waits for "first"'s retry
    rig.clock.now += DEFAULTS.retry_base
    assert await rig.delivery.drain_once() == 2
    assert [r.params["msg"] for r in rig.hoiio.requests] == ["first", "bob", "first", "second"]


async def test_a_dead_call_lets_the_next_one_of_its_contact_go(rig: Rig) -> None:
    rig.hoiio.behaviour.fail_next = 1
    rig.hoiio.behaviour.fail_status = 400
    await rig.commit("e1", sms("e1#0", msg="first"), sms("e1#1", msg="second"))
    assert await rig.delivery.drain_once() == 2
    statuses = {i.call.key: i.status for i in await rig.store.outbox()}
    assert statuses == {"e1#0": "dead", "e1#1": "sent"}


async def test_an_item_older_than_the_max_age_is_dead_without_a_try(rig: Rig) -> None:
    await rig.commit("e1", sms("e1#0"), hangup("e1#1", to=BOB))
    rig.clock.now += 121  # IVR steps give up after two minutes, other calls after a day
    assert await rig.delivery.drain_once() == 2
    (dead,) = await rig.store.outbox(status="dead")
    assert dead.call.key == "e1#1"
    assert dead.last_error == "not sent within 120s of its commit"
    await rig.commit("e2", sms("e2#0", to=BOB))
    rig.clock.now += DEFAULTS.max_age + 1
    assert await rig.delivery.drain_once() == 1
    (dead, _) = await rig.store.outbox(status="dead")
    assert (dead.call.key, dead.attempts) == ("e2#0", 0)
    assert len(rig.hoiio.requests) == 1


async def test_a_retry_that_would_be_too_late_is_dead_now(rig: Rig) -> None:
    rig.hoiio.behaviour.fail_next = 1
    rig.hoiio.behaviour.fail_status = 429
    rig.hoiio.behaviour.retry_after = "600"
    await rig.commit("e1", hangup("e1#0"))
    assert await rig.delivery.drain_once() == 1
    (dead,) = await rig.store.outbox(status="dead")
    assert dead.last_error == "hoiio ivr/end/hangup: HTTP 429 (a retry would be later than 120s)"


async def test_retries_back_off_exponentially_with_jitter(rig: Rig) -> None:
    rig.textit.behaviour.fail_next = 1000
    await rig.commit("e1", broadcast("e1#0"))
    assert await rig.delivery.drain_once() == 1
    waits = []
    for _ in range(6):
        failed = rig.clock.now
        while await rig.delivery.drain_once() == 0:  # each pass that sends is the next try
            rig.clock.now += 0.25
        waits.append(rig.clock.now - failed)
    for n, wait in enumerate(waits, start=1):
        ceiling = DEFAULTS.retry_base * 2 ** (n - 1)
        assert ceiling / 2 <= wait <= ceiling + 0.25, (n, waits)


async def test_a_call_over_the_rate_limit_is_postponed_without_a_try(rig: Rig) -> None:
    delivery = rig_with(rig, textit_rate=Rate(2, 3600.0))
    await rig.commit("e1", *(broadcast(f"e1#{n}", to=f"+1{n}") for n in range(3)))
    assert await delivery.drain_once() == 3
    assert len(rig.textit.requests) == 2
    (waiting,) = await rig.store.outbox(status="pending")
    assert (waiting.attempts, waiting.last_error) == (0, None)
    rig.clock.now += 3600
    assert await delivery.drain_once() == 0  # the window is a little longer than the hour
    rig.clock.now += 1
    assert await delivery.drain_once() == 1
    assert len(rig.textit.requests) == 3


async def test_hoiio_requests_in_flight_stay_under_the_account_limit(rig: Rig) -> None:
    delivery = Delivery(
        rig.store, rig.delivery.sender, settings=DeliverySettings(hoiio_max_concurrent=3)
    )
    rig.hoiio.behaviour.delay = 0.2
    calls = [dial(f"e1#{n}", f"+65910000{n:02d}") for n in range(12)]
    calls += [sms(f"e2#{n}", to=f"+65900000{n:02d}") for n in range(12)]
    await rig.store.commit(Commit("e1", OK, tuple(calls), now=time.time()))
    worker = asyncio.create_task(delivery.run())
    try:
        await wait_for(lambda: len(rig.hoiio.requests) == 24, within=30)
    finally:
        delivery.stop()
        await asyncio.wait_for(worker, 10)
        await delivery.shutdown()
    # Requests starting a call keep to the limit; SMS have none at Hoiio and fill the worker.
    assert rig.hoiio.max_in_flight > 3
    assert rig.hoiio.max_in_flight_by["ivr"] == 3


async def test_shutdown_lets_calls_finish_within_the_grace_period(rig: Rig) -> None:
    delivery = Delivery(rig.store, rig.delivery.sender, clock=rig.clock)
    rig.hoiio.behaviour.delay = 0.3
    await rig.commit("e1", sms("e1#0"), sms("e1#1"))
    worker = asyncio.create_task(delivery.run())
    await wait_for(lambda: len(rig.hoiio.requests) == 1)
    assert await delivery.shutdown(grace=10) == 0
    await asyncio.wait_for(worker, 10)
    # The call in flight finished; the next one was never started and waits in the outbox.
    assert [i.call.key for i in await rig.store.outbox(status="sent")] == ["e1#0"]
    assert [i.call.key for i in await rig.store.outbox(status="pending")] == ["e1#1"]


async def test_shutdown_past_the_grace_period_leaves_the_call_in_the_outbox(rig: Rig) -> None:
    delivery = Delivery(rig.store, rig.delivery.sender, clock=rig.clock)
    rig.hoiio.behaviour.delay = 5
    await rig.commit("e1", sms("e1#0"))
    worker = asyncio.create_task(delivery.run())
    await wait_for(lambda: len(rig.hoiio.requests) == 1)
    assert await delivery.shutdown(grace=0.1) == 1
    await asyncio.wait_for(worker, 10)
    (pending,) = await rig.store.outbox(status="pending")
    assert (pending.call.key, pending.attempts) == ("e1#0", 0)
    # It is offered again once its lease is up (the next start, or another replica).
    rig.clock.now += LEASE
    rig.hoiio.behaviour.delay = 0
    assert await rig.delivery.drain_once() == 1


async def test_every_try_of_a_call_carries_the_same_idempotency_key(rig: Rig) -> None:
    rig.textit.behaviour.fail_next = 1
    await rig.commit("e1", broadcast("e1#0"))
    await rig.delivery.drain_once()
    rig.clock.now += 10
    await rig.delivery.drain_once()
    keys = [r.headers.get("Idempotency-Key") for r in rig.textit.requests]
    assert keys == ["e1#0", "e1#0"]


def dial(key: str, to: str) -> OutboundCall:
    return OutboundCall(key, "hoiio", "ivr/start/dial", {"dest": to}, contact=to)


def play(key: str, session: str) -> OutboundCall:
    return OutboundCall(key, "hoiio", "ivr/middle/play", {"session": session}, contact=session)


async def test_an_ivr_block_overtakes_a_full_worker(rig: Rig) -> None:
    delivery = Delivery(rig.store, rig.delivery.sender, settings=DeliverySettings(concurrency=2))
    rig.hoiio.behaviour.delay = 1.0
    now = time.time()
    sms_calls = tuple(sms(f"s#{n}", to=f"+6590000{n:03d}") for n in range(6))
    await rig.store.commit(Commit("s", OK, sms_calls, now=now))
    worker = asyncio.create_task(delivery.run())
    try:
        await wait_for(lambda: len(rig.hoiio.requests) == 2)
        await rig.store.commit(Commit("i", OK, (play("i#0", "S-9"),), now=time.time()))
        delivery.wake(ivr_steps=1)
        await wait_for(lambda: len(rig.hoiio.requests) == 3)
        # The block went out while both SMS were still in flight, ahead of the four waiting.
        assert rig.hoiio.requests[2].path == "/open/ivr/middle/play"
        assert rig.hoiio.max_in_flight == 3
        await wait_for(lambda: len(rig.hoiio.requests) == 7, within=30)
    finally:
        await delivery.shutdown()
        await asyncio.wait_for(worker, 10)
    assert len(await rig.store.outbox(status="sent")) == 7


async def test_a_transfer_gets_the_next_free_hoiio_place_first(rig: Rig) -> None:
    delivery = Delivery(
        rig.store, rig.delivery.sender, settings=DeliverySettings(hoiio_max_concurrent=1)
    )
    rig.hoiio.behaviour.delay = 1.0
    dials = tuple(
        OutboundCall(
            f"d#{n}", "hoiio", "ivr/start/dial", {"dest": f"+6590{n}"}, contact=f"+6590{n}"
        )
        for n in range(4)
    )
    await rig.store.commit(Commit("s", OK, dials, now=time.time()))
    worker = asyncio.create_task(delivery.run())
    try:
        await wait_for(lambda: len(rig.hoiio.requests) == 1)
        transfer = OutboundCall(
            "i#0", "hoiio", "ivr/end/transfer", {"session": "S-9", "dest": "+659"}, contact="S-9"
        )
        await rig.store.commit(Commit("i", OK, (transfer,), now=time.time()))
        delivery.wake(ivr_steps=1)
        await wait_for(lambda: len(rig.hoiio.requests) == 5, within=30)
    finally:
        await delivery.shutdown()
        await asyncio.wait_for(worker, 10)
    paths = [r.path.rsplit("/", 1)[-1] for r in rig.hoiio.requests]
    assert paths == ["dial", "transfer", "dial", "dial", "dial"]


async def test_a_block_for_a_connected_call_needs_no_hoiio_place(rig: Rig) -> None:
    """Hoiio limits the calls going at once; a block for a call already going starts none."""
    delivery = Delivery(
        rig.store, rig.delivery.sender, settings=DeliverySettings(hoiio_max_concurrent=1)
    )
    rig.hoiio.behaviour.delay = 1.0
    dial = OutboundCall("d#0", "hoiio", "ivr/start/dial", {"dest": "+65901"}, contact="+65901")
    await rig.store.commit(Commit("s", OK, (dial,), now=time.time()))
    worker = asyncio.create_task(delivery.run())
    try:
        await wait_for(lambda: len(rig.hoiio.requests) == 1)
        await rig.store.commit(Commit("i", OK, (play("i#0", "S-9"),), now=time.time()))
        delivery.wake(ivr_steps=1)
        await wait_for(lambda: len(rig.hoiio.requests) == 2, within=30)
        assert rig.hoiio.max_in_flight == 2  # the play went while the dial held the place
    finally:
        await delivery.shutdown()
        await asyncio.wait_for(worker, 10)


class SlotWrites(SqliteStore):
    """A SqliteStore that lists how the worker gives concurrency slots back."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.writes: list[tuple[str, str, bool]] = []

    async def finish_outbox(
        self, key: str, status: str, detail: str | None, now: float, slot: Slot | None = None
    ) -> None:
        self.writes.append(("finish_outbox", key, slot is not None))
        await super().finish_outbox(key, status, detail, now, slot)

    async def free_slot(self, key: str, holder: str) -> None:
        self.writes.append(("free_slot", holder.rsplit(":", 1)[1], True))
        await super().free_slot(key, holder)


async def test_a_sent_call_gives_its_slot_back_with_its_outcome(rig: Rig, tmp_path: Path) -> None:
    store = SlotWrites(str(tmp_path / "slots.db"))
    await store.open()
    try:
        delivery = Delivery(
            store, rig.delivery.sender, settings=DeliverySettings(hoiio_max_concurrent=1)
        )
        await store.commit(Commit("e1", OK, (dial("e1#0", ALICE),), now=time.time()))
        assert await delivery.drain_once() == 1
        assert store.writes == [("finish_outbox", "e1#0", True)]  # one write, slot included
        rig.hoiio.behaviour.hoiio_status = "error_invalid_session"
        await store.commit(Commit("e2", OK, (dial("e2#0", BOB),), now=time.time()))
        assert await delivery.drain_once() == 1
        assert store.writes[1:] == [("finish_outbox", "e2#0", False), ("free_slot", "e2#0", True)]
        # Both slots are back: the one place is free for another holder.
        assert await store.take_slot("busy:hoiio", 1, "other", time.time() + 60, time.time()) == 0
    finally:
        await store.close()


async def test_a_call_that_can_never_be_sent_is_dead_at_once_and_frees_its_lane(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    poisoned = OutboundCall(
        "e0#0",
        "http",
        f"{rig.http.url}/hook",
        {"json": {}},
        contact=ALICE,
        headers={"X-Said": "a\r\nX-Forged: 1"},
    )
    await rig.commit("e0", poisoned)
    for n in range(1, 4):
        await rig.commit(f"e{n}", sms(f"e{n}#0", msg=f"reply {n}"))
    for _ in range(5):
        await rig.delivery.drain_once()
    assert [r.params["msg"] for r in rig.hoiio.calls("/sms/send")] == [
        "reply 1",
        "reply 2",
        "reply 3",
    ]
    (dead,) = await rig.store.outbox(status="dead")
    assert dead.call.key == "e0#0"
    assert dead.attempts == 0  # one try, no retry
    assert dead.last_error is not None
    assert dead.last_error.startswith(f"http {rig.http.url}/hook: cannot be sent: ValueError")
    assert "\n" not in dead.last_error
    assert "\r" not in dead.last_error
    assert not rig.http.requests
    assert not [r for r in caplog.records if r.exc_info]


async def test_a_key_unsafe_in_a_header_is_sent_as_its_digest_on_every_try(rig: Rig) -> None:
    rig.hoiio.behaviour.fail_next = 1
    rig.hoiio.behaviour.fail_status = 503
    await rig.commit("e1", sms("P1\r\nX: y#0"))
    await rig.delivery.drain_once()
    rig.clock.now += DEFAULTS.retry_max
    await rig.delivery.drain_once()
    first, second = (r.headers["Idempotency-Key"] for r in rig.hoiio.calls("/sms/send"))
    assert first == second
    assert first.startswith("sha256-")
    assert (await rig.store.outbox(status="sent"))[0].call.key == "P1\r\nX: y#0"


async def test_a_fault_of_our_own_is_retried_within_the_try_limit(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(call: OutboundCall, within: float | None = None) -> str:
        raise RuntimeError("a bug")

    monkeypatch.setattr(rig.delivery.sender, "send", broken)
    await rig.commit("e1", sms("e1#0"))
    for _ in range(MAX_ATTEMPTS + 3):
        await rig.delivery.drain_once()
        rig.clock.now += DEFAULTS.retry_max
    (dead,) = await rig.store.outbox(status="dead")
    assert dead.last_error == f"RuntimeError: a bug (gave up after {MAX_ATTEMPTS} tries)"
