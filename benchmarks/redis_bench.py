"""Benchmark: TextIt on Redis against the same on SQLite, and where the CPU goes.

    python benchmarks/redis_bench.py [--against DIR] [--rounds 6] [--seconds 4]

Starts ``responder serve`` on the 1,000-rule set of ``http_bench.py`` (TextIt ``mo_sms`` with
the templated reply) twice, on SQLite and on Redis (the one at RESPONDER_TEST_REDIS, a fresh
key prefix each, deleted afterwards), and with ``--against DIR`` the same two for the code
checked out in DIR. wrk keeps ``--connections`` requests in flight against one server at a
time, the servers in turn (every other round backwards), and each round reads from /proc the
CPU seconds of the server process and of redis-server (its pid from ``INFO server``) before
and after. Prints, as medians over the rounds: req/s, the server's and redis-server's CPU
per webhook (and of the latter, the time INFO commandstats counts in EVALSHA: the scripts
themselves), and each Redis server's req/s over the SQLite one of its own code in the same
round (the goal: 0.80 or more). On a machine with 2 cores redis-server, the server and wrk
share them, so redis-server's CPU per webhook counts as much as the server's.

Each server is started with ``PYTHONPATH`` set to its own tree; anything already in
``PYTHONPATH`` (say a directory holding hiredis) is kept for this tree only, so the two trees
can run with different installed extras in one run.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import http_bench
import http_load
import http_setup
import redis

from responder.testing.redisdb import SERVER, drop_prefix, require_server, scratch_url

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Server:
    """One server under load, with its per-round figures."""

    name: str
    tree: Path
    store: str
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""
    rps: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # the server's CPU s per webhook
    redis_cpu: list[float] = field(default_factory=list)  # redis-server's CPU s per webhook
    scripts: list[float] = field(default_factory=list)  # of which running scripts (EVALSHA)


def _redis_pid() -> int:
    client = redis.Redis.from_url(SERVER)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


def _script_seconds() -> float:
    """The time redis-server has spent running EVALSHA calls (``INFO commandstats``)."""
    client = redis.Redis.from_url(SERVER)
    try:
        stats = client.info("commandstats").get("cmdstat_evalsha", {})
        return float(stats.get("usec", 0)) / 1e6
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", type=lambda text: Path(text).resolve())
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if not http_load.have_wrk():
        raise SystemExit("needs wrk (Debian package wrk)")
    require_server()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    redis_pid = _redis_pid()
    inherited = os.environ.get("PYTHONPATH", "")
    trees = {"this": REPO, **({"against": args.against} if args.against else {})}
    tmp = Path(tempfile.mkdtemp(prefix="responder-redis-bench-"))
    rules = http_setup.write_rules(tmp / "rules", 1000)
    prefixes: list[str] = []
    servers: list[Server] = []
    try:
        for label, tree in trees.items():
            path = str(tree) + (f":{inherited}" if label == "this" and inherited else "")
            for kind in ("sqlite", "redis"):
                if kind == "redis":
                    store = scratch_url("bench-redis")
                    prefixes.append(store.rsplit("prefix=", 1)[1])
                else:
                    store = f"sqlite:///{tmp / f'{label}.db'}"
                server = Server(f"{label}-{kind}", tree, store)
                server.proc, server.url = http_bench.spawn(
                    http_bench.serve_args(rules, store),
                    {"PYTHONPATH": path},
                    tmp / f"{server.name}.log",
                    tree,
                )
                servers.append(server)
        for server in servers:
            assert server.proc is not None
            http_bench._wait_ready(server.url, server.proc)
        parts = http_setup.textit_parts()
        script = http_load.lua_script(parts, "/webhooks/textit", False)
        for server in servers:  # warm-up, not counted
            http_load.run_wrk(f"{server.url}/webhooks/textit", script, "w", args.connections, 1)
        for round_ in range(args.rounds):
            for server in servers if round_ % 2 == 0 else servers[::-1]:
                assert server.proc is not None
                print(f"round {round_ + 1}/{args.rounds}: {server.name}", file=sys.stderr)
                before = http_bench._cpu_seconds(server.proc.pid)
                redis_before = http_bench._cpu_seconds(redis_pid)
                scripts_before = _script_seconds()
                result = http_load.run_wrk(
                    f"{server.url}/webhooks/textit",
                    script,
                    f"r{round_}{server.name}",
                    args.connections,
                    args.seconds,
                )
                used = http_bench._cpu_seconds(server.proc.pid) - before
                redis_used = http_bench._cpu_seconds(redis_pid) - redis_before
                scripts = _script_seconds() - scripts_before
                server.rps.append(result.rps)
                server.cpu.append(http_bench.ratio(used, result.requests))
                server.redis_cpu.append(http_bench.ratio(redis_used, result.requests))
                server.scripts.append(http_bench.ratio(scripts, result.requests))
    finally:
        for server in servers:
            if server.proc is not None:
                server.proc.terminate()
        for server in servers:
            if server.proc is not None:
                server.proc.wait(30)
        for prefix in prefixes:
            drop_prefix(prefix)
    print(
        f"{args.rounds} rounds of {args.seconds:g} s, {args.connections} connections, "
        "medians; CPU in ms per webhook"
    )
    print(f"{'server':<16}{'req/s':>8}{'server CPU':>12}{'redis CPU':>11}{'scripts':>9}{'sum':>8}")
    by_name = {server.name: server for server in servers}
    for server in servers:
        cpu = statistics.median(server.cpu) * 1000
        rcpu = statistics.median(server.redis_cpu) * 1000
        scripts = statistics.median(server.scripts) * 1000
        print(
            f"{server.name:<16}{statistics.median(server.rps):>8.0f}{cpu:>12.3f}"
            f"{rcpu:>11.3f}{scripts:>9.3f}{cpu + rcpu:>8.3f}"
        )
    for label in trees:
        redis_rps, sqlite_rps = by_name[f"{label}-redis"].rps, by_name[f"{label}-sqlite"].rps
        ratios = [r / s for r, s in zip(redis_rps, sqlite_rps, strict=True)]
        print(
            f"{label}: Redis / SQLite {statistics.median(ratios):.2f} (per round: "
            + ", ".join(f"{r:.2f}" for r in ratios)
            + ")"
        )
    if args.against:
        this, other = by_name["this-redis"].rps, by_name["against-redis"].rps
        ratios = [a / b for a, b in zip(this, other, strict=True)]
        print(f"this-redis / against-redis: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
