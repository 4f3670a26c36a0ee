"""What only the Redis store has: URLs and prefixes, shared state across clients, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from responder.errors import StoreError
from responder.outbound import Commit, OutboundCall, StoredResponse
from responder.stores import open_store
from responder.stores.base import CALLER, Wanted
from responder.stores.memory import HIT_HORIZON
from responder.stores.redis import PURGE_BATCH, RedisStore
from responder.stores.redis_url import split_url
from responder.testing.process import free_port
from responder.testing.redisdb import SERVER, drop_prefix, require_server, scratch_url

OK = StoredResponse(200, "text/plain", b"ok")


@pytest.fixture
async def url() -> AsyncIterator[str]:
    require_server()
    made = scratch_url("redis")
    yield made
    drop_prefix(split_url(made)[1])


async def opened(url: str) -> RedisStore:
    store = RedisStore(url)
    await store.open()
    return store


def test_open_store_picks_redis_for_both_schemes() -> None:
    plain = open_store("redis://127.0.0.1:6379/2?prefix=blue")
    assert isinstance(plain, RedisStore)
    assert (plain.url, plain.prefix, plain.base) == ("redis://127.0.0.1:6379/2", "blue", "{blue}:")
    tls = open_store("rediss://cache.internal:6380/0")
    assert isinstance(tls, RedisStore)
    assert tls.prefix == "responder"


@pytest.mark.parametrize("prefix", ["", "a{b}"])
def test_a_prefix_that_would_break_the_hash_tag_is_refused(prefix: str) -> None:
    with pytest.raises(StoreError, match="prefix"):
        open_store(f"redis://127.0.0.1:6379/0?prefix={prefix}")


async def test_an_unreachable_server_is_a_store_error_without_the_password() -> None:
    store = RedisStore(f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    with pytest.raises(StoreError, match="cannot reach Redis store") as caught:
        await store.open()
    assert "hunter2" not in str(caught.value)
    with pytest.raises(StoreError, match="not open"):
        await store.get_response("k")


async def test_two_clients_of_one_prefix_share_everything(url: str) -> None:
    a, b = await opened(url), await opened(url)
    try:
        commits = [
            (a if i % 2 else b).commit(
                Commit(
                    "k",
                    StoredResponse(200, "text/plain", str(i).encode()),
                    (OutboundCall("k#0", "hoiio", "sms/send", {"n": i}, contact="+1"),),
                )
            )
            for i in range(20)
        ]
        results = await asyncio.gather(*commits)
        assert sum(committed.fresh for committed in results) == 1
        assert len({committed.response for committed in results}) == 1
        assert len(await b.outbox()) == 1
        assert await a.secret("s") == await b.secret("s")
        # One claims the call; the other gets nothing until the lease runs out.
        assert len(await a.claim_outbox(1e9, 30.0, 10)) == 1
        assert await b.claim_outbox(1e9 + 29.0, 30.0, 10) == []
        assert len(await b.claim_outbox(1e9 + 30.0, 30.0, 10)) == 1
    finally:
        await a.close()
        await b.close()


async def test_prefixes_keep_stores_apart(url: str) -> None:
    other_url = scratch_url("redis")
    a, b = await opened(url), await opened(other_url)
    try:
        await a.commit(Commit("k", OK))
        assert await b.get_response("k") is None
        assert (await b.commit(Commit("k", OK)))[1] is True
    finally:
        await a.close()
        await b.close()
        drop_prefix(b.prefix)


async def test_errors_while_running_surface_as_store_error(url: str) -> None:
    store = await opened(url)
    client = aioredis.Redis.from_url(SERVER)
    try:
        await client.set(f"{store.base}optouts", "not a hash")
        with pytest.raises(StoreError, match="WRONGTYPE"):
            await store.opted_out(["+1"])
        with pytest.raises(StoreError, match="Redis store"):
            await store.commit(Commit("k", OK, opt_outs=(("+1", True),)))
    finally:
        await client.aclose()
        await store.close()


def test_the_cluster_option_takes_yes_or_no() -> None:
    assert RedisStore("redis://h:7000/0?cluster=yes").cluster is True
    assert RedisStore("redis://h:7000/0?cluster=no&prefix=p").cluster is False
    assert RedisStore("redis://h:7000/0").url == "redis://h:7000/0"
    with pytest.raises(StoreError, match="cluster='maybe'"):
        RedisStore("redis://h:7000/0?cluster=maybe")


async def test_a_cluster_without_the_option_is_named(redis_cluster: str) -> None:
    # Stores whose slot lives on another node than the one named are told to add the option.
    plain = redis_cluster.replace("?cluster=yes", "")
    messages = []
    for n in range(12):
        store = RedisStore(f"{plain}?prefix=plain-{n}")
        try:
            await store.open()
        except StoreError as exc:
            messages.append(str(exc))
        finally:
            await store.close()
    assert 0 < len(messages) < 12
    assert all("add ?cluster=yes" in m for m in messages)


async def test_purge_goes_in_batches_and_leaves_no_empty_keys(url: str) -> None:
    store = await opened(url)
    client = aioredis.Redis.from_url(SERVER)
    try:
        count = 2 * PURGE_BATCH + 3  # three batches of records, two of hit keys
        for n in range(count):
            await store.commit(Commit(f"e{n}", OK, hits=(f"h{n}",), now=float(n), ttl=1.0))
        await store.take_slot("rate", 5, "a", 10.0, 0.0)
        assert await store.purge(count + HIT_HORIZON) == 2 * count + 1
        assert await store.purge(count + HIT_HORIZON) == 0
        left = [k async for k in client.scan_iter(match=f"{store.base}*")]
        assert sorted(left) == [f"{store.base}seq".encode()]
    finally:
        await client.aclose()
        await store.close()


async def test_round_trips_are_counted_by_who_made_them(redis_url: str) -> None:
    """One webhook's decision reads once and commits once; the count says so per caller."""
    store = open_store(redis_url)
    await store.open()
    try:
        CALLER.set("webhook")
        before = store.round_trips["webhook"]
        await store.snapshot(Wanted("k1", "textit:sms:+65", "+65", ()))
        await store.commit(Commit(key="k1", response=StoredResponse(200, "text/plain", b"")))
        assert store.round_trips["webhook"] - before == 2
        assert store.round_trips["delivery"] == 0
    finally:
        await store.close()


async def test_a_year_on_only_the_key_families_still_wanted_are_left(url: str) -> None:
    """Every key family is dropped by the purge or bounded by what is still pending."""
    from tests.stores.test_contract import DAY, fill_a_day

    store = await opened(url)
    client = aioredis.Redis.from_url(SERVER)
    try:
        await fill_a_day(store)
        await store.secret("app_state")
        await store.purge(1001.0 + 365 * DAY)
        families: dict[str, int] = {}
        async for key in client.scan_iter(match=f"{store.base}*"):
            name = key.decode()[len(store.base) :].split(":")[0]
            families[name] = families.get(name, 0) + 1
        assert families == {
            "ob": 50,  # the pending calls
            "lane": 40,  # one lane per contact with a pending call
            "heads": 1,
            "ready": 1,
            "obs": 1,  # obs:pending
            "oball": 1,
            "conv": 1,  # the conversation with a timer
            "convs": 1,
            "convupd": 1,
            "timers": 1,
            "timerdata": 1,
            "optouts": 1,
            "secrets": 1,
            "seq": 1,
        }
        assert await client.zcard(f"{store.base}oball") == 50
        assert await client.hlen(f"{store.base}optouts") == 8
    finally:
        await client.aclose()
        await store.close()
