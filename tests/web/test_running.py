"""running.run: the shutdown does not wait for a connection accepted as the port closed."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web

from responder.web.running import _Runner
from tests.conftest import wait_for


def later(turns: int, callback: object) -> None:
    """Call ``callback`` that many turns of the event loop from now."""
    assert callable(callback)
    loop = asyncio.get_running_loop()
    if turns == 0:
        callback()
    else:
        loop.call_soon(later, turns - 1, callback)


async def shutdown_seconds(runner: web.AppRunner) -> float:
    """Seconds the runner's shutdown takes with one connection in the state aiohttp leaves a
    connection accepted in the last turns before the port closed: it begins to wait for its
    request only after the idle connections were closed, marked closed itself, so it drops
    the request and waits for another."""
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    _, writer = await asyncio.open_connection("127.0.0.1", runner.addresses[0][1])
    server = runner.server
    assert server is not None

    def waiting() -> bool:
        return bool(server.connections) and server.connections[0]._waiter is not None

    await wait_for(waiting, 5, "the connection waiting for its request")
    connection = server.connections[0]
    # As if it were not waiting yet when the idle ones are closed (one turn into the
    # shutdown), and began to wait two turns later.
    waiter, connection._waiter = connection._waiter, None
    later(3, lambda: setattr(connection, "_waiter", waiter))
    started = time.monotonic()
    await runner.cleanup()
    writer.close()
    return time.monotonic() - started


@pytest.mark.parametrize("ours", [True, False])
async def test_a_connection_that_waits_after_the_idle_ones_closed_does_not_hold_the_shutdown(
    ours: bool,
) -> None:
    runner = (_Runner if ours else web.AppRunner)(web.Application(), shutdown_timeout=2.0)
    took = await shutdown_seconds(runner)
    if ours:
        assert took < 1.0
    else:  # aiohttp's own runner waits for the whole shutdown timeout
        assert took >= 2.0
