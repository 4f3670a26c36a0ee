"""Benchmark: the CPU of one IVR dialogue step through the webhook handler, in process.

    python benchmarks/ivr_handler.py [--against DIR] [--rounds 7] [--webhooks 2000]

CPU microseconds per webhook (the median of the rounds), no HTTP: the webhook handler
(``responder.web.server.webhook``) on a SQLite store with the ivr-menu example, called with a
Hoiio ``answer`` notification of a new session each time, as ``benchmarks/http.py`` sends
them. The dialogue starts and its first state sends a ``gather`` block; the delivery worker
is stopped, so the blocks stay in the outbox. ``loop`` is the CPU of the event loop's thread
alone, ``process`` adds the SQLite writer thread.

``--against DIR`` (a checkout of another commit, such as ``git worktree add /tmp/before
HEAD~1``) runs the same for that tree too, each round in processes of their own,
alternating between the trees, and prints both side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from handler_request import Request

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent
ENV = {
    "HOIIO_APP_ID": "bench",
    "HOIIO_ACCESS_TOKEN": "bench",
    "HOIIO_API_URL": "http://127.0.0.1:9",
    "RESPONDER_PUBLIC_URL": "http://127.0.0.1:9",
}


def _body(n: int) -> bytes:
    return (
        f"ivr_block=answer&to=%2B6531234567&txn_ref=AA-I-{n}&from=%2B659{n % 10_000_000:07d}"
        f"&session=S-{n}"
    ).encode()


async def _measure(webhooks: int, work: Path) -> tuple[float, float]:
    """CPU microseconds per webhook (loop thread, whole process) for the code it imports."""
    from aiohttp import web

    from responder.settings import Settings
    from responder.web import server
    from responder.web.logs import setup_logging

    rules = work / "ivr"
    shutil.copytree(REPO / "examples" / "ivr-menu", rules)
    for test in rules.glob("*.test.yaml"):
        test.unlink()
    with (work / "out.log").open("w") as out:
        setup_logging("INFO", "text", out)
        settings = Settings.from_env(ENV, rules=(str(rules),), store=f"sqlite:///{work / 'ivr.db'}")
        app = server.create_app(settings)
        runner = web.AppRunner(app)
        await runner.setup()
        app[server.DELIVERY].stop()
        try:
            for n in range(300):  # warm-up: templates compiled, children made
                await server.webhook(Request(app, _body(10_000_000 + n), "hoiio"))  # type: ignore[arg-type]
            begun, begun_loop = time.process_time(), time.thread_time()
            for n in range(webhooks):
                await server.webhook(Request(app, _body(n), "hoiio"))  # type: ignore[arg-type]
            loop = time.thread_time() - begun_loop
            return loop / webhooks * 1e6, (time.process_time() - begun) / webhooks * 1e6
        finally:
            await runner.cleanup()


def _child(webhooks: int) -> None:
    with tempfile.TemporaryDirectory() as work:
        print(json.dumps(asyncio.run(_measure(webhooks, Path(work)))))


def _run(tree: Path, webhooks: int) -> tuple[float, float]:
    """One measure in a process of its own that imports responder from ``tree``."""
    done = subprocess.run(  # noqa: S603
        [sys.executable, str(HERE), "--child", "--webhooks", str(webhooks)],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=True,
    )
    loop, process = json.loads(done.stdout.strip().splitlines()[-1])
    return float(loop), float(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", type=Path, help="another checkout to compare with")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--webhooks", type=int, default=2000)
    parser.add_argument("--child", action="store_true")
    args = parser.parse_args()
    if args.child:
        _child(args.webhooks)
        return
    trees = {"this": REPO}
    if args.against:
        trees = {"against": args.against.resolve(), **trees}
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
    for round_ in range(args.rounds):
        order = list(trees.items())
        if round_ % 2:
            order.reverse()  # every other round the other tree first
        for name, tree in order:
            figures[name].append(_run(tree, args.webhooks))
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    print(f"CPU us per IVR answer webhook, median of {args.rounds} rounds of {args.webhooks}")
    print(f"{'tree':<10}{'loop':>10}{'process':>10}")
    for name, values in figures.items():
        loop = statistics.median(v[0] for v in values)
        process = statistics.median(v[1] for v in values)
        print(f"{name:<10}{loop:>10.1f}{process:>10.1f}")


if __name__ == "__main__":
    main()
