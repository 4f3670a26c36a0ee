"""An open-loop load generator: requests sent on a fixed schedule, whatever the answers do.

A closed loop (wrk: N connections, each sending its next request when the last one is
answered) slows down with the server and so never measures the queueing a real sender meets:
its latencies look good exactly when the server falls behind. Here request ``i`` is due at
``start + i / rate``; it is sent then (over a pool of keep-alive connections, waiting for a
free one if need be) and its latency counts from when it was due, not from when it went out,
so every delay, the generator's own included, is in the figures (what wrk2 calls correcting
for coordinated omission).

The generator shares the machine's cores with the server, so it must cost little: each
connection is a bare asyncio protocol writing a request made once as bytes and reading back
the status line and ``Content-Length`` of the answer (HTTP/1.1, keep-alive, one request at a
time per connection), a fraction of what a full HTTP client spends on a request.
"""

from __future__ import annotations

import asyncio
import collections
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class OpenLoopResult:
    """Latencies in milliseconds of the requests answered, by when they were due."""

    rate: float
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    late_starts: int = 0  # requests the generator itself sent more than 1 ms after due

    def percentile(self, share: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    def summary(self) -> dict[str, float]:
        return {
            "offered_rps": self.rate,
            "answered": len(self.latencies),
            "errors": self.errors,
            "late_starts": self.late_starts,
            "p50_ms": self.percentile(0.50),
            "p99_ms": self.percentile(0.99),
            "p999_ms": self.percentile(0.999),
            "mean_ms": statistics.fmean(self.latencies) if self.latencies else float("nan"),
        }


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with one request at a time: ``send`` writes a
    request's bytes and gives a future of the answer's status."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[int] | None = None
        self.buffer = bytearray()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self, request: bytes) -> asyncio.Future[int]:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self.answer

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if len(self.buffer) < end + 4 + length:
            return
        del self.buffer[: end + 4 + length]
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(int(head[0].split()[1]))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionError("connection closed"))


async def open_loop(
    url: str,
    body: Callable[[int], str],
    rate: float,
    seconds: float,
    *,
    connections: int = 64,
    done: Callable[[int], asyncio.Future[float]] | None = None,
) -> OpenLoopResult:
    """Send ``rate`` requests a second for ``seconds`` to ``url``, request ``i`` with
    ``body(i)``. A request is done when it is answered, or, with ``done``, when the future
    ``done(i)`` gives (the loop time something else saw, such as a fake provider receiving
    the call the request led to)."""
    loop = asyncio.get_running_loop()
    result = OpenLoopResult(rate, seconds)
    total = int(rate * seconds)
    interval = 1.0 / rate
    tasks: set[asyncio.Task[None]] = set()
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    head = (
        f"POST {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    )
    free: collections.deque[Connection] = collections.deque()
    room = asyncio.Semaphore(connections)

    async def connection() -> Connection:
        while free:
            conn = free.popleft()
            if not conn.closed:
                return conn
        _, conn = await loop.create_connection(Connection, host, port)
        return conn

    async def one(i: int, due: float) -> None:
        waiting = done(i) if done is not None else None
        data = body(i).encode()
        request = f"{head}Content-Length: {len(data)}\r\n\r\n".encode() + data
        async with room:
            try:
                conn = await connection()
                status = await asyncio.wait_for(conn.send(request), 30)
            except (OSError, TimeoutError):
                result.errors += 1
                return
            free.append(conn)
        if status != 200:
            result.errors += 1
            return
        finished = await waiting if waiting is not None else loop.time()
        result.latencies.append((finished - due) * 1000.0)

    start = loop.time() + 0.05
    for i in range(total):
        due = start + i * interval
        wait = due - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        elif wait < -0.001:
            result.late_starts += 1
        task = asyncio.create_task(one(i, due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(tasks, timeout=max(30.0, seconds))
    for conn in free:
        if conn.transport is not None:
            conn.transport.close()
    return result
