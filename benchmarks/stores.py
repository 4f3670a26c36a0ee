"""Benchmark: one ``responder serve`` replica on the Redis store against the SQLite store.

    python benchmarks/stores.py [--seconds 5] [--rounds 3] [--connections 32]

Starts four ``responder serve`` processes, each alone on its store: SQLite (a file in a
temporary directory) and Redis (127.0.0.1:6379, or ``RESPONDER_TEST_REDIS``, under a
fresh key prefix removed afterwards), each for two workloads:

- ``sms``: TextIt SMS webhooks answered by a keyword rule out of 10 (idempotency record
  and response written per request);
- ``ivr``: Hoiio IVR ``answer`` notifications on the IVR menu example (a conversation
  written, a ``gather`` block queued, claimed and sent to a fake Hoiio in its own process).

Every request body is unique. The load (wrk with a Lua script when installed, else an
aiohttp load generator: ``benchmarks/http_load.py``) keeps ``--connections`` requests in
flight for ``--seconds``, in rounds that visit the servers in turn so drift of the shared
machine hits all alike. Prints requests/s and p50/p99 latency (medians over the rounds)
per server and the Redis/SQLite ratio per workload.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import http_load
import http_setup

from responder.stores.redis_url import split_url
from responder.testing.process import ServeProcess, free_port
from responder.testing.redisdb import drop_prefix, require_server, scratch_url

_HERE = Path(__file__).resolve().parent
REPO = _HERE.parent


@dataclass
class Target:
    workload: str  # sms or ivr
    store: str  # sqlite or redis
    server: ServeProcess
    results: list[http_load.Result] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.workload}-{self.store}"

    def median(self, attribute: str) -> float:
        return statistics.median(getattr(r, attribute) for r in self.results)


async def load(target: Target, seconds: float, connections: int, use_wrk: bool, tag: str) -> None:
    hoiio = target.workload == "ivr"
    parts = http_setup.hoiio_parts() if hoiio else http_setup.textit_parts()
    path = f"/webhooks/{'hoiio' if hoiio else 'textit'}"
    url = f"{target.server.url}{path}"
    if use_wrk:
        script = http_load.lua_script(parts, path, hoiio)
        result = await asyncio.to_thread(http_load.run_wrk, url, script, tag, connections, seconds)
    else:

        def make(n: int) -> str:
            return http_setup.body(parts, f"{tag}n{n}", n % http_setup.CONTACTS, hoiio)

        result = await http_load.run_python(url, make, connections, seconds)
    if result.errors:
        raise SystemExit(
            f"{target.name}: {result.errors} failed requests\n{target.server.output()[-2000:]}"
        )
    target.results.append(result)


async def run(args: argparse.Namespace) -> list[Target]:
    require_server()
    use_wrk = args.load == "wrk" or (args.load == "auto" and http_load.have_wrk())
    tmp = Path(tempfile.mkdtemp(prefix="responder-store-bench-"))
    redis_url = scratch_url("bench")
    fake_port = free_port()
    fake = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "responder.testing.fakes",
        "hoiio",
        "--port",
        str(fake_port),
        stdout=asyncio.subprocess.DEVNULL,
    )
    targets: list[Target] = []
    try:
        sms_rules = http_setup.write_rules(tmp / "sms", 10)
        ivr_rules = tmp / "ivr"
        shutil.copytree(REPO / "examples" / "ivr-menu", ivr_rules)
        for test in ivr_rules.glob("*.test.yaml"):
            test.unlink()
        env = {
            "HOIIO_APP_ID": "bench",
            "HOIIO_ACCESS_TOKEN": "bench",
            "HOIIO_API_URL": f"http://127.0.0.1:{fake_port}/open",
            "RESPONDER_PUBLIC_URL": "http://127.0.0.1:9",
            "RESPONDER_LOG_LEVEL": "WARNING",
        }
        for workload, rules in (("sms", sms_rules), ("ivr", ivr_rules)):
            for store, url in (
                ("sqlite", f"sqlite:///{tmp / f'{workload}.db'}"),
                ("redis", redis_url.replace("prefix=", f"prefix={workload}-")),
            ):
                args_ = ["--rules", str(rules), "--store", url]
                server = ServeProcess(args_, env, tmp / f"{workload}-{store}.log")
                targets.append(Target(workload, store, server))
        await asyncio.gather(*(t.server.start() for t in targets))
        for t in targets:  # warm-up, not counted
            await load(t, 1, args.connections, use_wrk, f"w{t.name}")
            t.results.clear()
        for round_ in range(args.rounds):
            for t in targets:
                print(f"round {round_ + 1}/{args.rounds}: {t.name}", file=sys.stderr)
                await load(t, args.seconds, args.connections, use_wrk, f"r{round_}{t.name}")
        return targets
    finally:
        await asyncio.gather(*(t.server.stop() for t in targets))
        fake.terminate()
        await fake.wait()
        prefix = split_url(redis_url)[1]
        for workload in ("sms", "ivr"):
            drop_prefix(f"{workload}-{prefix}")
        shutil.rmtree(tmp, ignore_errors=True)


def table(targets: list[Target], args: argparse.Namespace) -> str:
    lines = [
        f"{args.rounds} rounds x {args.seconds:g}s, {args.connections} connections, "
        "medians over the rounds",
        f"{'server':<12} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}",
    ]
    for t in targets:
        lines.append(
            f"{t.name:<12} {t.median('rps'):>8.0f} {t.median('p50_ms'):>8.1f} "
            f"{t.median('p99_ms'):>8.1f}"
        )
    by_name = {t.name: t for t in targets}
    for workload in ("sms", "ivr"):
        redis, sqlite = by_name[f"{workload}-redis"], by_name[f"{workload}-sqlite"]
        lines.append(
            f"{workload}: redis/sqlite throughput {redis.median('rps') / sqlite.median('rps'):.2f}"
            f", p99 {redis.median('p99_ms') / sqlite.median('p99_ms'):.2f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--load", choices=["auto", "wrk", "python"], default="auto")
    args = parser.parse_args()
    print(table(asyncio.run(run(args)), args))


if __name__ == "__main__":
    main()
