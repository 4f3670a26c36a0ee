"""Three real ``responder serve`` processes on one Redis, a fake Hoiio on a real socket.

An IVR call whose notifications land on a different replica each time completes; every
event delivered three times at once, to three replicas, is answered exactly once; a replica
killed with SIGKILL while it holds claimed calls loses none of them.

``RESPONDER_REPLICA_EVENTS`` changes the number of events (default 1,000);
``pytest -s tests/server/test_redis_replicas.py`` prints the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import redis.asyncio as aioredis

from responder.stores.redis import RedisStore
from responder.testing.fakes import Behaviour, FakeProvider
from responder.testing.process import ServeProcess
from responder.testing.redisdb import scratch_url
from tests.conftest import REPO, wait_for, write_rules

EVENTS = int(os.environ.get("RESPONDER_REPLICA_EVENTS", "1000"))
PUBLIC = "https://ivr.example.org"
CALLER = "+6591234567"
RULES = """
rules:
  - name: ack
    on: sms.received
    sms: {text: "Got it: {{ text }}"}
"""


def contact(n: int) -> str:
    return f"+659{n:07d}"


def environment(fake: FakeProvider, **extra: str) -> dict[str, str]:
    return {
        "HOIIO_APP_ID": "app-1",
        "HOIIO_ACCESS_TOKEN": "token-secret-1",
        "HOIIO_API_URL": fake.url,
        "RESPONDER_PUBLIC_URL": PUBLIC,
        "RESPONDER_LOG_LEVEL": "WARNING",
        **extra,
    }


@contextlib.asynccontextmanager
async def replicas(
    count: int, rules: Path, store: str, env: dict[str, str], logs: Path, name: str = "replica"
) -> AsyncIterator[list[ServeProcess]]:
    procs = [
        ServeProcess(["--rules", str(rules), "--store", store], env, logs / f"{name}-{n}.log")
        for n in range(count)
    ]
    try:
        await asyncio.gather(*(p.start() for p in procs))
        yield procs
    finally:
        await asyncio.gather(*(p.stop() for p in procs if p.proc is not None))


async def post(http: aiohttp.ClientSession, url: str, form: dict[str, str]) -> bytes:
    async with http.post(url, data=form) as resp:
        body = await resp.read()
        assert resp.status == 200, body
        return body


@pytest.fixture(params=["redis", "redis-cluster"])
def shared_store(request: pytest.FixtureRequest) -> str:
    """One Redis, or a three-node Redis Cluster, for all the replicas of a test."""
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))
    return scratch_url("replicas", request.getfixturevalue("redis_cluster"))


async def test_an_ivr_call_completes_across_alternating_replicas(
    tmp_path: Path, shared_store: str
) -> None:
    redis_url = shared_store
    async with (
        FakeProvider("hoiio") as fake,
        replicas(3, REPO / "examples" / "ivr-menu", redis_url, environment(fake), tmp_path) as rs,
        aiohttp.ClientSession() as http,
    ):
        seen = 0

        async def next_block() -> dict[str, str]:
            nonlocal seen
            await wait_for(lambda: len(fake.requests) > seen, 10, "next IVR block")
            request = fake.requests[seen]
            seen += 1
            return {"endpoint": request.path.removeprefix("/open/"), **request.params}

        async def notify(replica: ServeProcess, block: dict[str, str], **params: str) -> None:
            url = urlsplit(block["notify_url"])
            assert f"{url.scheme}://{url.netloc}" == PUBLIC
            form = {"session": "S-1", "txn_ref": "AA-S-1", "from": CALLER, "to": "+65", **params}
            await post(http, f"{replica.url}{url.path}?{url.query}", form)

        answer = {"ivr_block": "answer", "session": "S-1", "txn_ref": "AA-S-1", "from": CALLER}
        await post(http, f"{rs[0].url}/webhooks/hoiio", {**answer, "to": "+6531234567"})
        block = await next_block()
        states = [parse_qs(urlsplit(block["notify_url"]).query)["app_state"][0]]
        # Two wrong keys, each on another replica: the menu's visits are counted across them.
        for replica in (rs[1], rs[2]):
            await notify(replica, block, ivr_block="gather", digits="9")
            block = await next_block()
            states.append(parse_qs(urlsplit(block["notify_url"]).query)["app_state"][0])
        await notify(rs[0], block, ivr_block="gather", digits="2")
        voicemail = await next_block()
        await notify(rs[1], voicemail, ivr_block="record", record_url="https://rec.example/1.mp3")
        hangup = await next_block()

    assert states == ["main-menu:menu:1", "main-menu:menu:2", "main-menu:menu:3"]
    assert voicemail["endpoint"] == "ivr/middle/record"
    assert hangup["endpoint"] == "ivr/end/hangup"
    assert hangup["msg"] == "Thank you, we will call you back."
    assert len(fake.requests) == 5  # each block sent once, by whichever replica claimed it
    store = RedisStore(redis_url)
    await store.open()
    try:
        conversation = await store.get_conversation("hoiio:ivr:S-1")
    finally:
        await store.close()
    assert conversation is not None
    assert (conversation.status, conversation.outcome) == ("ended", "voicemail left")
    assert conversation.vars["recording"] == "https://rec.example/1.mp3"
    assert conversation.version == 5  # answer, two retries, voicemail, hangup: no write lost


async def test_each_event_delivered_three_times_to_three_replicas_is_answered_once(
    tmp_path: Path, shared_store: str
) -> None:
    redis_url = shared_store
    rules = write_rules(tmp_path / "rules", RULES)
    async with (
        FakeProvider("hoiio") as fake,
        replicas(3, rules, redis_url, environment(fake), tmp_path) as rs,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
    ):
        gate = asyncio.Semaphore(32)
        started = time.monotonic()

        async def deliver(n: int) -> None:
            form = {"txn_ref": f"AA-R-{n}", "from": contact(n), "to": "+6531234567", "msg": f"m{n}"}
            async with gate:
                bodies = await asyncio.gather(
                    *(post(http, f"{r.url}/webhooks/hoiio", form) for r in rs)
                )
            assert len(set(bodies)) == 1  # the same answer from every replica

        await asyncio.gather(*(deliver(n) for n in range(EVENTS)))
        intake = time.monotonic() - started
        await wait_for(lambda: len(fake.accepted) >= EVENTS, 60, "every reply")
        await asyncio.sleep(0.5)  # a late duplicate would have arrived by now
        elapsed = time.monotonic() - started

    stats = fake.stats()
    assert stats["accepted_twice"] == []
    assert stats["requests"] == EVENTS  # not one request more than replies
    assert sorted(r.params["dest"] for r in fake.requests) == sorted(
        contact(n) for n in range(EVENTS)
    )
    print(
        f"\nreplicas on {'a cluster' if 'cluster=yes' in redis_url else 'one Redis'}: "
        f"{EVENTS} events x 3 deliveries to 3 replicas -> {len(fake.accepted)} "
        f"replies, {stats['requests']} requests, duplicates 0; intake {intake:.1f}s "
        f"({3 * EVENTS / intake:.0f} webhooks/s), total {elapsed:.1f}s"
    )


COUNTER = """
compliance:
  loop_guard: {replies: 1000, within: 1s}
dialogues:
  - name: counter
    start: {on: sms.received, when: {text: {keyword: count}}}
    states:
      zero:
        set: {n: "0"}
        next: counting
      counting:
        say: "n={{ vars.n }}"
        on: [{otherwise: true, goto: counting, set: {n: "{{ vars.n | int + 1 }}"}}]
"""


async def test_messages_racing_on_three_replicas_lose_no_update(
    tmp_path: Path, redis_url: str
) -> None:
    rules = write_rules(tmp_path / "rules", COUNTER)
    async with (
        FakeProvider("textit") as fake,
        replicas(3, rules, redis_url, {"TEXTIT_API_URL": fake.url}, tmp_path) as rs,
        aiohttp.ClientSession() as http,
    ):

        async def sms(n: int, text: str, replica: ServeProcess) -> str:
            form = {"event": "mo_sms", "relayer": "1", "sms": str(n), "phone": CALLER}
            for _ in range(20):  # as TextIt does: a 503 is delivered again, unchanged
                async with http.post(
                    f"{replica.url}/webhooks/textit", data={**form, "text": text}
                ) as resp:
                    if resp.status == 200:
                        reply: str = (await resp.json())["text"]
                        return reply
                    assert resp.status == 503, await resp.text()
            raise AssertionError(f"message {n} never got through")

        assert await sms(0, "count", rs[0]) == "n=0"
        replies = await asyncio.gather(*(sms(n, "tick", rs[n % 3]) for n in range(1, 31)))

    # Each message saw the count the one before it left, across replicas: 1..30, once each.
    assert sorted(replies, key=lambda r: int(r.split("=")[1])) == [f"n={i}" for i in range(1, 31)]
    store = RedisStore(redis_url)
    await store.open()
    try:
        conversation = await store.get_conversation(f"textit:sms:{CALLER}")
    finally:
        await store.close()
    assert conversation is not None
    assert (conversation.vars["n"], conversation.version) == ("30", 31)


async def test_missed_calls_racing_on_three_replicas_get_one_reply_per_window(
    tmp_path: Path, redis_url: str
) -> None:
    async with (
        replicas(3, REPO / "examples" / "missed-call", redis_url, {}, tmp_path) as rs,
        aiohttp.ClientSession() as http,
    ):

        async def missed(n: int, replica: ServeProcess) -> bytes:
            form = {"event": "mo_miss", "call": str(n), "relayer": "5", "phone": CALLER}
            for _ in range(20):  # a 503 is delivered again, unchanged, as TextIt does
                async with http.post(f"{replica.url}/webhooks/textit", data=form) as resp:
                    if resp.status == 200:
                        return await resp.read()
                    assert resp.status == 503, await resp.text()
            raise AssertionError(f"missed call {n} never got through")

        # Twelve different missed calls of one caller at once, four on each replica.
        answers = await asyncio.gather(*(missed(n, rs[n % 3]) for n in range(12)))

    # `limit: {per_contact: 1, every: 6h}` holds across replicas: one reply, eleven silences.
    assert sum(1 for a in answers if a) == 1
    assert sum(1 for a in answers if not a) == 11


async def claimed_now(redis_url: str) -> set[str]:
    """Keys of the outbox items held under a lease right now (the layout redis_scripts names:
    an offered item's score is its due time, a claimed one's the end of its lease)."""
    store = RedisStore(redis_url)
    client = aioredis.Redis.from_url(store.url)
    try:
        members: list[bytes] = []
        for prio in (0, 1):
            members += await client.zrangebyscore(
                f"{store.base}ready:{prio}", f"({time.time()}", "+inf"
            )
        return {m[12:].decode() for m in members}
    finally:
        await client.aclose()


async def test_a_killed_replica_loses_none_of_its_claimed_calls(
    tmp_path: Path, redis_url: str
) -> None:
    rules = write_rules(tmp_path / "rules", RULES)
    count = 150
    slow = Behaviour(path_delays={"sms/send": 0.5}, idempotent=True)
    async with FakeProvider("hoiio", behaviour=slow) as fake:
        env = environment(fake, RESPONDER_DELIVERY_LEASE="2")
        async with aiohttp.ClientSession() as http:
            async with replicas(1, rules, redis_url, env, tmp_path, "doomed") as (doomed,):
                forms = [
                    {"txn_ref": f"AA-K-{n}", "from": contact(n), "to": "+65", "msg": f"m{n}"}
                    for n in range(count)
                ]
                await asyncio.gather(
                    *(post(http, f"{doomed.url}/webhooks/hoiio", f) for f in forms)
                )
                await wait_for(lambda: fake.in_flight >= 8, 10, "the replica sending")
                # It runs alone: every lease held now is its own.
                held = await claimed_now(redis_url)
                doomed.signal(signal.SIGKILL)
                assert await doomed.stop() == -signal.SIGKILL
                done_before = set(fake.accepted)
            async with replicas(2, rules, redis_url, env, tmp_path, "survivor"):
                await wait_for(lambda: len(fake.accepted) == count, 30, "every reply")

    stats = fake.stats()
    taken_over = held - done_before
    assert len(taken_over) >= 8
    assert held <= set(fake.accepted)  # none of the killed replica's claims was lost
    assert sorted(int(k.split(":AA-K-")[1].split(":")[0]) for k in fake.accepted) == list(
        range(count)
    )
    assert stats["accepted_twice"] == []
    print(
        f"\nkill: {count} replies; the killed replica held {len(held)} claimed calls, "
        f"{len(taken_over)} of them unfinished: all taken over after the lease and delivered "
        f"({stats['replays']} had reached the fake before the kill and were answered from "
        f"their key); {len(fake.accepted)}/{count} delivered, lost 0"
    )


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replicas inherit this process's environment: no stray settings from it."""
    for key in list(os.environ):
        if key.startswith(("RESPONDER_", "HOIIO_", "TEXTIT_")) and key != "RESPONDER_TEST_REDIS":
            monkeypatch.delenv(key)
