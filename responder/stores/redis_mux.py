"""One Redis connection shared by every webhook: scripts are written together, answered in order.

Redis answers the requests of a connection in the order they came, so concurrent webhooks
need no connection each: their script calls made in one turn of the event loop go out in one
write, and one reader hands the replies back in order. Against a connection taken from the
pool and given back for every call, this saves the pool, the client's retry and timing layers
and a system call or two per request, on this process and on redis-server alike.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from collections.abc import Coroutine, Sequence
from typing import Any

from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.typing import EncodableT

Arg = str | bytes | int  # what the store passes to its scripts


class Script:
    """A Lua script known by its SHA1, loaded into Redis when Redis does not know it."""

    __slots__ = ("head", "sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
        # What every EVALSHA of it with one key starts with, after the count of parts.
        self.head = b"$7\r\nEVALSHA\r\n$40\r\n%b\r\n$1\r\n1\r\n" % self.sha.encode()

    def pack(self, key: str, args: Sequence[Arg]) -> bytes:
        """EVALSHA of this script with ``key`` and ``args`` in the protocol's own terms.

        The arguments of a store's scripts are only text, bytes and integers: written here
        directly instead of through redis-py's encoder, which costs 3 times as much."""
        out = [b"*%d\r\n" % (4 + len(args)), self.head]
        add = out.append
        for arg in (key, *args):
            data = arg if type(arg) is bytes else str(arg).encode()
            add(b"$%d\r\n%b\r\n" % (len(data), data))
        return b"".join(out)


class Multiplexer:
    """Requests from any number of coroutines over one connection made by ``pool``."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._conn: AbstractConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._opening: asyncio.Task[AbstractConnection] | None = None
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._batch: list[bytes] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, script: Script, key: str, args: Sequence[Arg]) -> Any:
        """EVALSHA ``script`` with one key; loads it first when Redis says NOSCRIPT."""
        packed = script.pack(key, args)
        try:
            return await self._send([packed])
        except NoScriptError:
            # Redis restarted or its scripts were flushed: a script that never ran did no harm.
            await self.call("SCRIPT", "LOAD", script.source)
            return await self._send([packed])

    async def call(self, *args: EncodableT) -> Any:
        """Send one command and wait for its reply (an error reply is raised)."""
        conn = self._conn if self._conn is not None else await self._connect()
        return await self._send(conn.pack_command(*args), conn)

    async def _send(self, packed: list[bytes], conn: AbstractConnection | None = None) -> Any:
        if conn is None:
            conn = self._conn if self._conn is not None else await self._connect()
        if not self._batch:
            # The first request of this turn: what the others add before it runs goes too.
            self._track(self._write(conn))
        self._batch += packed
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        return await future

    def _track(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, conn: AbstractConnection) -> None:
        if self._conn is not conn:  # lost meanwhile: its batch was dropped
            return
        batch, self._batch = self._batch, []
        try:
            await conn.send_packed_command(batch, check_health=False)
        except Exception as exc:
            self._fail(conn, exc)

    async def _connect(self) -> AbstractConnection:
        # One attempt for every caller waiting meanwhile: they share its connection or its
        # error (and none of them waits for the others' attempts to time out one by one).
        if self._opening is None:
            self._opening = asyncio.get_running_loop().create_task(self._open())
        return await asyncio.shield(self._opening)

    async def _open(self) -> AbstractConnection:
        try:
            conn = self._pool.connection_class(**self._pool.connection_kwargs)
            await conn.connect()  # type: ignore[no-untyped-call]  # untyped in redis-py
            self._conn = conn
            self._reader = asyncio.get_running_loop().create_task(self._read(conn))
            return conn
        finally:
            self._opening = None

    async def _read(self, conn: AbstractConnection) -> None:
        try:
            while True:
                try:
                    reply: Any = await conn.read_response()
                except ResponseError as exc:  # an error reply: the connection is fine
                    future = self._waiting.popleft()
                    if not future.done():
                        future.set_exception(exc)
                    continue
                future = self._waiting.popleft()
                if not future.done():
                    future.set_result(reply)
        except Exception as exc:
            self._fail(conn, exc)

    def _fail(self, conn: AbstractConnection, exc: Exception) -> None:
        """The connection is lost: its unanswered requests fail, the next call reconnects."""
        if self._conn is not conn:
            return
        self._conn = None
        if self._reader is not None and self._reader is not asyncio.current_task():
            self._reader.cancel()
        self._reader = None
        lost = RedisConnectionError(f"connection to Redis lost: {exc}")
        # Whatever was written and not answered, and whatever was about to be written.
        self._batch = []
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(lost)
        self._track(conn.disconnect(nowait=True))

    async def close(self) -> None:
        if self._opening is not None:
            self._opening.cancel()
            await asyncio.gather(self._opening, return_exceptions=True)
        conn, reader = self._conn, self._reader
        self._conn = self._reader = None
        if reader is not None:
            reader.cancel()
        await asyncio.gather(*self._tasks, *(reader,) if reader else (), return_exceptions=True)
        if conn is not None:
            await conn.disconnect()
        closed = RedisConnectionError("connection to Redis closed")
        for future in self._waiting:
            if not future.done():
                future.set_exception(closed)
        self._waiting.clear()
