"""Benchmark: what a webhook's trace line and metric updates cost, in process.

    python benchmarks/trace_line.py [--against DIR] [--rounds 7] [--webhooks 3000]

CPU microseconds per webhook (the median of the rounds), no HTTP:

- ``handler``: the whole webhook handler (``responder.server.webhook``) on a memory store
  with one rule that replies, called with a ready request, logging at INFO as text, at INFO
  as JSON, and at WARNING (no trace line at all);
- ``line``: the trace line of a retried delivery (``server._duplicate``, which also counts
  it) plus the metric updates of an answered webhook (``server._count``, the event counter
  and the latency histogram), as text and as JSON.

Logs go to a scratch file. ``--against DIR`` (a checkout of another commit, such as
``git worktree add /tmp/before HEAD~1``) runs every measure for that tree too, each in a
process of its own, alternating between the trees, and prints both side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from handler_request import Request

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent
RULES = """
rules:
  - name: hours
    on: sms.received
    when: {text: {keyword: hours}}
    reply: {text: "We are open 9-18, {{ contact }}."}
"""
MEASURES = (
    ("handler", "INFO", "text"),
    ("handler", "INFO", "json"),
    ("handler", "WARNING", "text"),
    ("line", "INFO", "text"),
    ("line", "INFO", "json"),
)


def _body(n: int) -> bytes:
    return f"event=mo_sms&sms={n}&phone=%2B659{n % 10_000_000:07d}&text=hours+please".encode()


async def _measure(kind: str, level: str, fmt: str, webhooks: int, work: Path) -> float:
    """CPU microseconds per webhook, in this process, for the code it imports."""
    from aiohttp import web

    from responder.runtime.outcome import Outcome
    from responder.settings import Settings
    from responder.web import server
    from responder.web.logs import TRACE_ID, setup_logging

    (work / "rules.yaml").write_text(RULES)
    with (work / "out.log").open("w") as out:
        setup_logging(level, fmt, out)
        settings = Settings.from_env({}, rules=(str(work / "rules.yaml"),), store="memory://")
        app = server.create_app(settings)
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            if kind == "handler":
                for n in range(300):  # warm-up: templates compiled, children made
                    await server.webhook(Request(app, _body(10_000_000 + n), "textit"))  # type: ignore[arg-type]
                begun = time.process_time()
                for n in range(webhooks):
                    await server.webhook(Request(app, _body(n), "textit"))  # type: ignore[arg-type]
                    if n % 32 == 31:
                        await asyncio.sleep(0)  # a turn of the loop, as under load
                return (time.process_time() - begun) / webhooks * 1e6
            provider = server.PROVIDERS["textit"]
            event = provider.parse(
                "textit",
                server.WebhookRequest((), _body(1), "application/x-www-form-urlencoded", {}),
            )
            outcome = Outcome(reply_text="We are open 9-18, +6590000001.", matched=("hours",))
            metrics = app[server.METRICS]
            TRACE_ID.set("6f1c2a9e0b7d4c11")
            begun = time.process_time()
            for n in range(webhooks):
                started = time.perf_counter()
                metrics.events.labels(event.provider, "textit", event.kind).inc()
                server._count(metrics, event, outcome, True)
                server._duplicate(app, event, "textit:textit:mo_sms::1", started)
                metrics.webhook_seconds.labels("textit").observe(time.perf_counter() - started)
                if n % 32 == 31:
                    await asyncio.sleep(0)
            return (time.process_time() - begun) / webhooks * 1e6
        finally:
            await runner.cleanup()


def _child(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as work:
        result = asyncio.run(_measure(args.kind, args.level, args.fmt, args.webhooks, Path(work)))
    print(json.dumps(result))


def _run(tree: Path, kind: str, level: str, fmt: str, webhooks: int) -> float:
    """One measure in a process of its own that imports responder from ``tree``."""
    done = subprocess.run(  # noqa: S603
        [sys.executable, str(HERE), "--child", kind, level, fmt, "--webhooks", str(webhooks)],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", type=Path, help="another checkout to compare with")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--webhooks", type=int, default=3000)
    parser.add_argument("--child", nargs=3, metavar=("KIND", "LEVEL", "FORMAT"))
    args = parser.parse_args()
    if args.child:
        args.kind, args.level, args.fmt = args.child
        _child(args)
        return
    trees = {"this": REPO}
    if args.against:
        trees = {"against": args.against.resolve(), **trees}
    figures: dict[tuple[str, str, str, str], list[float]] = {}
    for round_ in range(args.rounds):
        order = list(trees.items())
        if round_ % 2:
            order.reverse()  # every other round the other tree first
        for measure in MEASURES:
            for name, tree in order:
                value = _run(tree, *measure, args.webhooks)
                figures.setdefault((name, *measure), []).append(value)
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr)
    header = f"{'measure':<26}" + "".join(f"{name:>10}" for name in trees)
    print(f"CPU us per webhook, median of {args.rounds} rounds of {args.webhooks} webhooks")
    print(header)
    for measure in MEASURES:
        row = f"{' '.join(measure):<26}"
        for name in trees:
            row += f"{statistics.median(figures[(name, *measure)]):>10.1f}"
        print(row)


if __name__ == "__main__":
    main()
