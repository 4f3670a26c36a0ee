"""Benchmark: what a backlog costs the delivery worker's claim on the SQLite outbox.

    python benchmarks/outbox_claim.py [--backlog 50000] [--claims 200]

Times ``claim_outbox`` (16 items, the worker's default) with 100 calls pending (the
baseline, measured in the same run) and with ``--backlog`` calls pending: one call to each of
many contacts, then the same with one contact owning a long queue (a fifth of the backlog, the
oldest), whose waiting calls the claim has to step over. Reported as p50/p99 and as ratios to
the baseline (the machine is shared and noisy: compare ratios, not absolute times).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from responder.outbound import Commit, OutboundCall, StoredResponse
from responder.stores.sqlite import SqliteStore

OK = StoredResponse(200, "text/plain", b"")
BATCH = 500


def sms(key: str, contact: str) -> OutboundCall:
    return OutboundCall(key, "hoiio", "sms/send", {"dest": contact, "msg": "hi"}, contact=contact)


async def fill(store: SqliteStore, prefix: str, count: int, contact: str | None, at: float) -> None:
    for b in range(0, count, BATCH):
        calls = tuple(
            sms(f"{prefix}{b}#{i}", contact or f"+65{b + i:08d}")
            for i in range(min(BATCH, count - b))
        )
        await store.commit(Commit(f"{prefix}{b}", OK, calls, now=at))


async def claims(store: SqliteStore, count: int) -> list[float]:
    """Claim times in seconds; each claim's lease is given back so the next sees the same."""
    out = []
    for _ in range(count):
        now = time.time()
        started = time.perf_counter()
        items = await store.claim_outbox(now, 60.0, 16)
        out.append(time.perf_counter() - started)
        assert len(items) == 16
        for item in items:
            await store.release_outbox(item.call.key, now)
    return out


def ms(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


async def run(backlog: int, count: int) -> dict[str, list[float]]:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(str(Path(tmp) / "bench.db"))
        await store.open()
        now = time.time()
        await fill(store, "base", 100, None, now)
        results["baseline"] = await claims(store, count)
        await fill(store, "wide", backlog - 100, None, now)
        results["many contacts"] = await claims(store, count)
        await fill(store, "long", backlog // 5, "+6590000000", now - 60)
        results["one long queue"] = await claims(store, count)
        await store.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backlog", type=int, default=50_000)
    parser.add_argument("--claims", type=int, default=200)
    args = parser.parse_args()
    results = asyncio.run(run(args.backlog, args.claims))
    base = statistics.median(results["baseline"])
    for name, values in results.items():
        print(
            f"{name:>15}: claim of 16 p50 {ms(values, 50):.2f} ms, p99 {ms(values, 99):.2f} ms "
            f"({statistics.median(values) / base:.1f}x the baseline of 100 pending)"
        )
    print(f"(backlog {args.backlog:,} pending; one long queue adds {args.backlog // 5:,})")


if __name__ == "__main__":
    main()
