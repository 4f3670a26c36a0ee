"""An open-loop load generator: requests sent on a fixed schedule, whatever the answers do.

A closed loop (wrk: N connections, each sending its next request when the last one is
answered) slows down with the server and so never measures the queueing a real sender meets:
its latencies look good exactly when the server falls behind. Here request ``i`` is due at
``start + i / rate``; it is sent then (over a pool of keep-alive connections, waiting for a
free one if need be) and its latency counts from when it was due, not from when it went out,
so every delay, the generator's own included, is in the figures (what wrk2 calls correcting
for coordinated omission).
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


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
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one(i: int, due: float) -> None:
            waiting = done(i) if done is not None else None
            try:
                async with http.post(url, data=body(i), headers=FORM) as response:
                    await response.read()
                    if response.status != 200:
                        result.errors += 1
                        return
                finished = await waiting if waiting is not None else loop.time()
            except (aiohttp.ClientError, TimeoutError):
                result.errors += 1
                return
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
    return result
