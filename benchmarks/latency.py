"""Benchmark: latency below saturation, open loop, for TextIt SMS and a Hoiio IVR step.

    python benchmarks/latency.py [--share 0.5] [--seconds 10] [--saturation-seconds 3]

For each server (``responder serve`` on 1,000 generated rules with a templated TextIt reply,
and on the IVR menu example, on SQLite and, when a Redis answers, on Redis) it first measures
the server's own saturation throughput (closed loop, as ``http_bench.py`` loads it), then
offers ``--share`` of that rate at a constant rate (``open_loop.py``: each request due on a
schedule, its latency counted from when it was due) and prints p50 / p99 / p99.9. For TextIt
a request is done when it is answered; for Hoiio the step is done when the fake Hoiio API
(in this process) receives the ``gather`` block the ``answer`` notification leads to. The
targets: p99 <= 5 ms for TextIt on SQLite, <= 8 ms for the IVR step on SQLite, <= 10 ms on
Redis; each is printed met or not met. ``--json`` prints the figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import http_bench
import http_load
import http_setup
from open_loop import OpenLoopResult, open_loop

from responder.testing.fakes import FakeProvider

TARGETS_MS = {"textit-sqlite": 5.0, "ivr-sqlite": 8.0, "textit-redis": 10.0, "ivr-redis": 10.0}


class WatchedHoiio(FakeProvider):
    """The fake Hoiio API, telling when the first block of each IVR session arrives."""

    def __init__(self) -> None:
        super().__init__("hoiio")
        self.waiting: dict[str, asyncio.Future[float]] = {}

    def expect(self, session: str) -> asyncio.Future[float]:
        future = asyncio.get_running_loop().create_future()
        self.waiting[session] = future
        return future

    async def _answer(self, request: Any) -> Any:
        answer = await super()._answer(request)
        session = self.requests[-1].params.get("session")
        future = self.waiting.pop(session or "", None)
        if future is not None and not future.done():
            future.set_result(asyncio.get_running_loop().time())
        return answer


def saturation(url: str, hoiio: bool, seconds: float, tag: str) -> float:
    """Requests per second the server answers with 32 requests always in flight."""
    target = http_bench.Target(tag, "hoiio" if hoiio else "textit", url=url)
    http_bench.load(target, seconds, 32, http_load.have_wrk(), tag)
    return target.results[-1].rps


async def offered(
    url: str, hoiio: bool, rate: float, seconds: float, tag: str, fake: WatchedHoiio | None
) -> OpenLoopResult:
    parts = http_setup.hoiio_parts() if hoiio else http_setup.textit_parts()

    def body(i: int) -> str:
        return http_setup.body(parts, f"{tag}{i}", i % http_setup.CONTACTS, hoiio)

    if not hoiio:
        return await open_loop(f"{url}/webhooks/textit", body, rate, seconds)
    assert fake is not None
    return await open_loop(
        f"{url}/webhooks/hoiio",
        body,
        rate,
        seconds,
        done=lambda i: fake.expect(f"S-{tag}{i}"),
    )


async def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    procs: list[subprocess.Popen[bytes]] = []
    redis = http_bench.redis_url()
    stores = {"sqlite": "sqlite:///{db}"} | ({"redis": redis} if redis else {})
    rules = http_setup.write_rules(tmp / "rules-1000", 1000)
    ivr_rules = tmp / "ivr"
    shutil.copytree(http_bench.REPO / "examples" / "ivr-menu", ivr_rules)
    for test in ivr_rules.glob("*.test.yaml"):
        test.unlink()
    fake = WatchedHoiio()
    await fake.start()
    ivr_env = {
        "HOIIO_APP_ID": "bench",
        "HOIIO_ACCESS_TOKEN": "bench",
        "HOIIO_API_URL": fake.url,
        "RESPONDER_PUBLIC_URL": "http://127.0.0.1:9",
    }
    out: dict[str, Any] = {}
    try:
        for store_name, store in stores.items():
            for kind, rule_dir, env in (("textit", rules, {}), ("ivr", ivr_rules, ivr_env)):
                name = f"{kind}-{store_name}"
                db = store.format(db=tmp / f"{name}.db")
                proc, url = http_bench.spawn(
                    http_bench.serve_args(rule_dir, db), env, tmp / f"{name}.log"
                )
                procs.append(proc)
                await asyncio.to_thread(http_bench._wait_ready, url, proc)
                hoiio = kind == "ivr"
                await asyncio.to_thread(saturation, url, hoiio, 1.0, f"w{name}")  # warm-up
                peak = await asyncio.to_thread(
                    saturation, url, hoiio, args.saturation_seconds, f"s{name}"
                )
                rate = max(1.0, peak * args.share)
                result = await offered(url, hoiio, rate, args.seconds, f"o{name}", fake)
                figures = result.summary()
                figures["saturation_rps"] = peak
                figures["target_p99_ms"] = TARGETS_MS[name]
                figures["met"] = figures["p99_ms"] <= TARGETS_MS[name] and not result.errors
                out[name] = figures
                print(f"{name}: {json.dumps(figures)}", file=sys.stderr)
                proc.terminate()
                proc.wait(15)
    finally:
        await fake.stop()
        if redis is not None:
            from responder.testing.redisdb import drop_prefix

            drop_prefix(redis.rsplit("prefix=", 1)[1])
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return out


def table(figures: dict[str, Any], share: float) -> str:
    lines = [
        f"open loop at {share:.0%} of each server's own saturation throughput",
        f"{'server':<16}{'saturation':>12}{'offered':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'p99.9 ms':>10}{'errors':>8}  target",
    ]
    for name, f in figures.items():
        verdict = "met" if f["met"] else "not met"
        lines.append(
            f"{name:<16}{f['saturation_rps']:>12,.0f}{f['offered_rps']:>10,.0f}"
            f"{f['p50_ms']:>9.2f}{f['p99_ms']:>9.2f}{f['p999_ms']:>10.2f}{f['errors']:>8}"
            f"  p99 <= {f['target_p99_ms']:g} ms: {verdict}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--share", type=float, default=0.5, help="of the saturation rate")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--saturation-seconds", type=float, default=3.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="responder-latency-"))
    try:
        figures = asyncio.run(measure(args, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(figures, indent=2) if args.json else table(figures, args.share))


if __name__ == "__main__":
    main()
