"""Provider limits through the store: two workers on one SQLite file share them."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from responder.clients.limits import Gate, Limits, Postponed
from responder.outbound import OutboundCall
from responder.policy import RATE_MARGIN, DeliverySettings, Rate
from responder.stores.sqlite import SqliteStore
from responder.testing.fakes import FakeProvider
from tests.conftest import ClientFactory, wait_for, write_rules


def sms(key: str) -> OutboundCall:
    return OutboundCall(key, "hoiio", "sms/send", {"dest": "+1", "msg": "x"}, contact="+1")


def dial(key: str) -> OutboundCall:
    return OutboundCall(key, "hoiio", "ivr/start/dial", {"dest": "+1"}, contact="+1")


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, SqliteStore]]:
    a, b = SqliteStore(str(tmp_path / "s.db")), SqliteStore(str(tmp_path / "s.db"))
    await a.open()
    await b.open()
    yield a, b
    await a.close()
    await b.close()


async def test_concurrency_slots_are_shared_by_every_process_on_the_store(
    stores: tuple[SqliteStore, SqliteStore],
) -> None:
    settings = DeliverySettings(hoiio_max_concurrent=2)
    one, two = Limits(stores[0], settings), Limits(stores[1], settings)
    async with contextlib.AsyncExitStack() as held:
        await held.enter_async_context(one.hold(dial("a"), time.time() + 5))
        await held.enter_async_context(one.hold(dial("b"), time.time() + 5))
        with pytest.raises(Postponed):
            async with two.hold(dial("c"), time.time() + 0.2):
                pass
        await held_for(two, sms("sms"))  # sending SMS is not limited by Hoiio's call limit
        waiting = asyncio.create_task(held_for(two, dial("d")))
        await asyncio.sleep(0.2)
        assert not waiting.done()
    await asyncio.wait_for(waiting, 10)  # one's slots are free: two goes ahead


async def held_for(limits: Limits, call: OutboundCall) -> None:
    async with limits.hold(call, time.time() + 30):
        pass


async def test_a_rate_holds_calls_past_the_window(stores: tuple[SqliteStore, SqliteStore]) -> None:
    settings = DeliverySettings(hoiio_rate=Rate(3, 1.0))
    one, two = Limits(stores[0], settings), Limits(stores[1], settings)
    started = time.time()
    for n, limits in enumerate((one, two, one)):
        await held_for(limits, sms(f"k{n}"))
    assert time.time() - started < 1.0
    await held_for(two, sms("k3"))  # the fourth in a second waits for the first to leave
    assert time.time() - started >= 1.0 + RATE_MARGIN - 0.01


async def test_a_long_wait_is_postponed_not_held(stores: tuple[SqliteStore, SqliteStore]) -> None:
    limits = Limits(stores[0], DeliverySettings(textit_rate=Rate(1, 3600.0)))
    call = OutboundCall("t", "textit", "broadcasts.json", {}, contact="+1")
    await held_for(limits, call)
    with pytest.raises(Postponed) as caught:
        async with limits.hold(call, time.time() + 30):
            pass
    assert 3599 < caught.value.wait <= 3600 + RATE_MARGIN


async def test_webhooks_have_no_limits(stores: tuple[SqliteStore, SqliteStore]) -> None:
    limits = Limits(stores[0], DeliverySettings())
    for n in range(20):
        await held_for(limits, OutboundCall(f"h{n}", "http", "http://127.0.0.1/x", {}))


RULES = """
rules:
  - name: ack
    on: sms.received
    sms: {text: "Got it"}
"""


async def test_a_provider_limited_to_5_per_second_never_sees_more_and_gets_every_call(
    tmp_path: Path, make_client: ClientFactory, fake_hoiio: FakeProvider
) -> None:
    fake_hoiio.behaviour.rate_limit = 5  # the fake answers 429 above 5 in any second
    client = await make_client(
        write_rules(tmp_path / "rules", RULES), delivery=DeliverySettings(hoiio_rate=Rate(5, 1.0))
    )
    count = 30
    for n in range(count):
        form = {"txn_ref": f"AA-R-{n}", "from": f"+6591{n:06d}", "to": "+6531234567", "msg": "hi"}
        resp = await client.post("/webhooks/hoiio", data=form)
        assert resp.status == 200
    await wait_for(lambda: len(fake_hoiio.accepted) == count, within=120)
    per_second = collections.Counter(math.floor(r.at) for r in fake_hoiio.requests)
    assert max(per_second.values()) <= 5, per_second
    # Sliding too: any 6 requests in a row span a second (less some jitter on a busy machine).
    times = sorted(r.at for r in fake_hoiio.requests)
    assert min(b - a for a, b in zip(times, times[5:], strict=False)) > 0.9, times
    assert fake_hoiio.refused == 0  # not even one 429: the limit was kept, not discovered
    assert len(fake_hoiio.requests) == count
    assert sorted(fake_hoiio.accepted.values()) == [1] * count


async def test_the_gate_lets_higher_priority_in_first_then_by_arrival() -> None:
    gate = Gate(1)
    await gate.acquire()
    order: list[str] = []

    async def wait(name: str, priority: int) -> None:
        async with gate.hold(priority):
            order.append(name)

    tasks = [asyncio.create_task(wait(n, p)) for n, p in (("a", 0), ("b", 0), ("ivr", 1))]
    await asyncio.sleep(0.05)
    assert order == []
    gate.release()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert order == ["ivr", "a", "b"]


async def test_a_waiter_that_gives_up_does_not_keep_a_place() -> None:
    gate = Gate(1)
    await gate.acquire()
    quitter = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0.01)
    quitter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await quitter
    gate.release()
    await asyncio.wait_for(gate.acquire(), 5)  # the place went back, not to the quitter
    gate.release()
    await asyncio.wait_for(gate.acquire(), 5)
