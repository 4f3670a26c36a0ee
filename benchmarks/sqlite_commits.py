"""Benchmark: the latency of SQLite commits at a steady rate, with the log checkpointed by a
thread of its own (as responder does) and by the writer at 1,000 pages (SQLite's default).

    python benchmarks/sqlite_commits.py [--rate 2000] [--seconds 6] [--rounds 3]

Commits a webhook's idempotency record and one hit, ``--rate`` a second on a schedule, through
``SqliteStore`` in this process, and counts each commit's latency from when it was due. Each
round runs both ways, one after the other, on fresh files; prints p50 / p99 / p99.9 / max of
each round. A checkpoint made by the writer holds up every webhook of its transaction while it
waits for the disk: it shows in the p99.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from responder.outbound import Commit, StoredResponse
from responder.stores.sqlite import SqliteStore

ANSWER = StoredResponse(200, "application/json", b'{"messages":[{"text":"Hello"}]}' * 4)


async def measure(path: Path, rate: float, seconds: float, writer_checkpoints: bool) -> list[float]:
    store = SqliteStore(str(path))
    await store.open()
    if writer_checkpoints:  # SQLite's own way: the writer checkpoints at 1,000 pages
        assert store._checkpointer is not None
        await store._checkpointer.stop()
        store._checkpointer = None
        await store._run(lambda: store._db.execute("PRAGMA wal_autocheckpoint=1000").fetchone())
    loop = asyncio.get_running_loop()
    latencies: list[float] = []

    async def one(n: int, due: float) -> None:
        await store.commit(
            Commit(f"textit:mo_sms:{n:012d}", ANSWER, hits=(f"h{n}",), now=time.time())
        )
        latencies.append((loop.time() - due) * 1000.0)

    tasks = []
    start = loop.time() + 0.05
    for n in range(int(rate * seconds)):
        due = start + n / rate
        if (wait := due - loop.time()) > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one(n, due)))
    await asyncio.gather(*tasks)
    await store.close()
    return latencies


def describe(latencies: list[float]) -> str:
    q = statistics.quantiles(latencies, n=1000)
    return (
        f"p50 {q[499]:6.2f}  p99 {q[989]:6.2f}  p99.9 {q[998]:6.2f}  max {max(latencies):6.2f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="responder-commits-") as scratch:
        for round_ in range(args.rounds):
            for writer in (False, True):
                path = Path(scratch) / f"{round_}-{writer}.db"
                latencies = await measure(path, args.rate, args.seconds, writer)
                name = "writer at 1,000 pages" if writer else "own thread (responder)"
                print(f"round {round_ + 1}  {name:<24} {describe(latencies)}")


if __name__ == "__main__":
    asyncio.run(main())
