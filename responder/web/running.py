"""Running the application until it is stopped: aiohttp's ``run_app``, with one repair.

aiohttp's shutdown closes the idle connections right after the port closes, but a connection
accepted in the last turns of the event loop before has not yet started waiting for its
request then: marked closed, it drops the request when it comes and waits for another until
the shutdown timeout (60 s), so the process takes a minute to exit. ``run`` lets such
connections start and closes them too (their request was never read: the sender gets a
closed connection and delivers again, as for one refused).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import Any, Final

from aiohttp import web

# Event-loop turns from a connection being accepted to its handler waiting for a request.
SETTLE_TURNS: Final = 5


class _Runner(web.AppRunner):
    """An AppRunner whose shutdown also closes connections accepted as the port closed."""

    async def shutdown(self) -> None:
        await super().shutdown()
        for _ in range(SETTLE_TURNS):
            await asyncio.sleep(0)
        if self.server is not None:
            for connection in self.server.connections:
                connection.close()  # idle: now; handling a request: once it is answered


def run(
    app: web.Application,
    *,
    host: str | None = None,
    port: int | None = None,
    sockets: list[socket.socket] | None = None,
    ready: Callable[[], None] = lambda: None,
    handle_signals: bool = True,
    options: Mapping[str, Any] | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` or on bound ``sockets`` until ``web.GracefulExit`` (or
    Ctrl-C); ``ready`` is called once it listens. As ``web.run_app``, without access log;
    ``options`` go to the runner (``server.runner_options``: timeouts)."""
    loop = asyncio.new_event_loop()
    main = loop.create_task(
        _serve(app, host, port, sockets or [], ready, handle_signals, dict(options or {}))
    )
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        try:
            if not main.done():
                main.cancel()
                with suppress(asyncio.CancelledError):
                    loop.run_until_complete(main)
        finally:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            asyncio.set_event_loop(None)


async def _serve(
    app: web.Application,
    host: str | None,
    port: int | None,
    sockets: list[socket.socket],
    ready: Callable[[], None],
    handle_signals: bool,
    options: dict[str, Any],
) -> None:
    options.setdefault("access_log", None)
    runner = _Runner(app, handle_signals=handle_signals, **options)
    await runner.setup()
    try:
        sites: list[web.BaseSite] = [web.SockSite(runner, sock) for sock in sockets]
        if not sockets:
            sites.append(web.TCPSite(runner, host, port))
        for site in sites:
            await site.start()
        ready()
        await asyncio.Event().wait()  # until cancelled
    finally:
        await runner.cleanup()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks left (a reload, say) and wait for them, as ``asyncio.run`` does."""
    tasks = asyncio.all_tasks(loop)
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
