"""The Redis store's shared connection: replies in order, scripts loaded, connections replaced."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from responder.stores.redis_mux import Multiplexer, Script
from responder.testing.process import free_port
from responder.testing.redisdb import SERVER, require_server


@pytest.fixture
async def mux() -> AsyncIterator[Multiplexer]:
    require_server()
    pool = ConnectionPool.from_url(SERVER)
    made = Multiplexer(pool)
    yield made
    await made.close()
    await pool.aclose()


async def test_concurrent_calls_get_their_own_replies(mux: Multiplexer) -> None:
    calls = [mux.call("ECHO", f"m{n}") for n in range(300)]
    # An error reply in the middle is that call's error; the others still line up.
    calls.insert(150, mux.call("NO-SUCH-COMMAND"))
    replies = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(replies.pop(150), ResponseError)
    assert replies == [f"m{n}".encode() for n in range(300)]


async def test_a_caller_that_gives_up_leaves_the_others_in_line(mux: Multiplexer) -> None:
    await mux.call("PING")
    slow = asyncio.ensure_future(mux.call("ECHO", "dropped"))
    await asyncio.sleep(0)
    slow.cancel()
    assert await mux.call("ECHO", "next") == b"next"


async def test_a_script_redis_does_not_know_is_loaded_and_run(mux: Multiplexer) -> None:
    script = Script(f"return ARGV[1] .. KEYS[1] -- {secrets.token_hex(8)}")
    assert await mux.run(script, "k", ["v"]) == b"vk"
    assert await mux.run(script, "k", ["w"]) == b"wk"


async def test_a_killed_connection_is_replaced(mux: Multiplexer) -> None:
    first = await mux.call("CLIENT", "ID")
    admin = aioredis.Redis.from_url(SERVER)
    try:
        await admin.client_kill_filter(_id=first)
    finally:
        await admin.aclose()
    # A call made before the reader saw the connection go fails; the next one reconnects.
    with contextlib.suppress(RedisConnectionError):
        await mux.call("PING")
    second = await mux.call("CLIENT", "ID")
    assert second != first
    assert await mux.call("ECHO", "back") == b"back"


def test_a_script_call_is_packed_as_redis_py_packs_it() -> None:
    script = Script("return 1")
    args: list[str | bytes | int] = ["", "héllo wörld", b"\x00bytes\r\n", 0, -7, 2**40, "1.5e-07"]
    packed = Connection().pack_command("EVALSHA", script.sha, 1, "{p}:", *args)
    assert script.pack("{p}:", args) == b"".join(packed)


async def test_callers_waiting_for_a_connection_share_one_attempt() -> None:
    pool = ConnectionPool.from_url(f"redis://127.0.0.1:{free_port()}/0")
    mux = Multiplexer(pool)
    made = []
    real = pool.connection_class

    def counting(**kwargs: object) -> Connection:
        made.append(kwargs)
        return real(**kwargs)  # type: ignore[arg-type]

    pool.connection_class = counting  # type: ignore[assignment]
    try:
        failures = await asyncio.gather(
            *(mux.call("PING") for _ in range(20)), return_exceptions=True
        )
        assert all(isinstance(f, RedisConnectionError) for f in failures)
        assert len(made) == 1
        # The next call tries again.
        with pytest.raises(RedisConnectionError):
            await mux.call("PING")
        assert len(made) == 2
    finally:
        await mux.close()
        await pool.aclose()


async def test_a_call_still_waiting_when_the_connection_closes_fails_plainly(
    mux: Multiplexer,
) -> None:
    await mux.call("PING")
    # Blocks on the server for a while: still waiting when the connection closes.
    waiting = asyncio.ensure_future(mux.call("BLPOP", f"nothing-{secrets.token_hex(4)}", 5))
    await asyncio.sleep(0.05)
    await mux.close()
    with pytest.raises(RedisConnectionError):
        await waiting
