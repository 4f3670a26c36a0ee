"""Benchmark: machine instructions per webhook, counted by valgrind (callgrind).

    python benchmarks/instructions.py [--webhooks 500] [--rules 1000] [--against DIR]
                                      [--store redis]

Starts ``responder serve`` under ``valgrind --tool=callgrind`` on a generated rule set (the
one ``http_bench.py`` uses; SQLite store, or with ``--store redis`` the Redis at
RESPONDER_TEST_REDIS under a fresh key prefix, deleted afterwards, whose own instructions
are not counted), sends 300 TextIt ``mo_sms`` webhooks to warm it up, zeroes the counters,
sends ``--webhooks`` more (8 in flight, every one a new message that gets the templated
reply) and prints the instructions the server process executed per webhook, all
threads together. The count does not depend on what else the machine is doing, so two runs of
the same code agree to a fraction of a percent where timings on a shared machine drift by 10 to
20 %; it does not see time spent waiting (system calls, the disk, locks). ``--against DIR``
(a checkout of other code: ``git worktree add DIR COMMIT``) counts that code too and prints
the ratio. ``--console`` counts this code a second time with the web console on
(``RESPONDER_CONSOLE_TOKEN`` set) and prints that ratio too. ``--floor`` counts the floor
(``http_floor.py``) too: the ratio floor / this is the share of the floor's throughput this
code could reach if throughput followed instructions. Needs valgrind (Debian package
``valgrind``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import http_bench
import http_setup

from responder.testing.process import free_port
from responder.testing.redisdb import drop_prefix, require_server, scratch_url

REPO = Path(__file__).resolve().parent.parent
WARM_UP = 300
CONSOLE_ON = {"RESPONDER_CONSOLE_TOKEN": "benchmark-console-token-0123"}


async def _send(url: str, first: int, count: int) -> None:
    parts = http_setup.textit_parts()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    numbers = iter(range(first, first + count))
    async with aiohttp.ClientSession() as http:

        async def sender() -> None:
            for n in numbers:
                data = http_setup.body(parts, f"i{n}", n % http_setup.CONTACTS, False)
                async with http.post(url, data=data, headers=headers) as resp:
                    text = await resp.text()
                    if resp.status != 200 or http_setup.REPLY_PREFIX not in text:
                        raise SystemExit(f"unexpected answer {resp.status}: {text[:200]}")

        await asyncio.gather(*(sender() for _ in range(8)))


START_WITHIN = 300.0  # seconds: Python runs some 50 times slower under valgrind


async def _ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_WITHIN
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"responder exited with {proc.returncode}")
            try:
                async with http.get(f"{url}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit(f"responder under valgrind did not answer within {START_WITHIN:.0f} s")


def count(
    tree: Path,
    rules: Path,
    webhooks: int,
    work: Path,
    env: dict[str, str] | None = None,
    store: str = "sqlite",
) -> float:
    """Instructions per webhook of the responder in ``tree`` (``env`` added to its own)."""
    if store == "redis":
        url = scratch_url("bench-instructions")
        try:
            return _count(tree, rules, webhooks, work, env, url)
        finally:
            drop_prefix(url.rsplit("prefix=", 1)[1])
    return _count(tree, rules, webhooks, work, env, f"sqlite:///{work / f'{free_port()}.db'}")


def _count(
    tree: Path, rules: Path, webhooks: int, work: Path, env: dict[str, str] | None, store: str
) -> float:
    def serve(port: int) -> list[str]:
        return [arg.replace("PORT", str(port)) for arg in http_bench.serve_args(rules, store)]

    return _count_server(tree, serve, webhooks, work, env)


def count_floor(webhooks: int, work: Path) -> float:
    """Instructions per webhook of the floor (``http_floor.py``): the same templated answer,
    its idempotency record committed to SQLite, and nothing else."""
    floor = str(Path(__file__).resolve().parent / "http_floor.py")
    return _count_server(
        REPO, lambda port: [floor, str(port), str(work / f"floor-{port}.db")], webhooks, work, None
    )


def _count_server(
    tree: Path,
    server: Callable[[int], list[str]],
    webhooks: int,
    work: Path,
    env: dict[str, str] | None,
) -> float:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    out = work / f"callgrind-{port}.out"
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        *server(port),
    ]
    with (work / f"{port}.log").open("wb") as log:
        # From ``tree``: ``python -m responder`` imports the responder found there.
        proc = subprocess.Popen(  # noqa: S603
            command,
            cwd=tree,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    try:
        asyncio.run(_ready(url, proc))
        asyncio.run(_send(f"{url}/webhooks/textit", 10_000_000, WARM_UP))
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)  # noqa: S603, S607
        asyncio.run(_send(f"{url}/webhooks/textit", 0, webhooks))
        subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)  # noqa: S603, S607
    finally:
        proc.terminate()
        proc.wait(60)
    return per_webhook(sorted(work.glob(f"callgrind-{port}.out.*")), webhooks)


def per_webhook(dumps: list[Path], webhooks: int) -> float:
    """Instructions per webhook in the first of callgrind's ``dumps`` (all threads)."""
    if not dumps:
        raise SystemExit("callgrind wrote no dump")
    total = 0
    for line in dumps[0].read_text().splitlines():
        if line.startswith("summary:"):
            total += int(line.split()[1])
    return total / webhooks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--webhooks", type=int, default=500)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--against", type=lambda text: Path(text).resolve())
    parser.add_argument("--console", action="store_true", help="also with the web console on")
    parser.add_argument("--store", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--floor", action="store_true", help="also the floor (http_floor.py)")
    args = parser.parse_args()
    if args.store == "redis":
        require_server()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("needs valgrind and callgrind_control (Debian package valgrind)")
    with tempfile.TemporaryDirectory(prefix="responder-instructions-") as scratch:
        work = Path(scratch)
        rules = http_setup.write_rules(work / "rules", args.rules)
        trees = {"this": REPO, **({"against": args.against} if args.against else {})}
        figures = {
            name: count(tree, rules, args.webhooks, work, store=args.store)
            for name, tree in trees.items()
        }
        if args.console:
            trees["console"] = REPO
            figures["console"] = count(REPO, rules, args.webhooks, work, CONSOLE_ON, args.store)
        if args.floor:
            figures["floor"] = count_floor(args.webhooks, work)
    for name, tree in trees.items():
        print(f"{name:<8} {figures[name] / 1e6:7.3f} M instructions per webhook  ({tree})")
    if args.floor:
        print(f"floor    {figures['floor'] / 1e6:7.3f} M instructions per webhook  (http_floor.py)")
        print(f"floor / this: {figures['floor'] / figures['this']:.3f}")
    if args.against:
        print(f"this / against: {figures['this'] / figures['against']:.3f}")
    if args.console:
        print(f"console on / off: {figures['console'] / figures['this']:.3f}")


if __name__ == "__main__":
    main()
