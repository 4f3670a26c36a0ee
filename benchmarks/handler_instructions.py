"""Benchmark: machine instructions per webhook of the handler in process, one at a time.

    python benchmarks/handler_instructions.py [--against DIR] [--webhooks 300] [--rules 1000]

``instructions.py`` counts the whole server over HTTP with 8 webhooks in flight: how they
share the event loop's turns and the SQLite group commits depends on timing, so the same code
reads up to 1 or 2 % apart between runs. This runs the webhook handler (the error middleware
included) in a process of its own under callgrind, on SQLite with the generated rule set, text
logs at INFO to a file, the collector's start-up objects frozen as ``serve`` freezes them, and
hands it one TextIt ``mo_sms`` webhook at a time (every one a new message that gets the
templated reply; 300 to warm up, then ``--webhooks``): the same code reads within 0.1 %.
No HTTP: aiohttp's own parsing and writing are left out. ``--against DIR`` counts the code
checked out in DIR too (both at once, one process each) and prints the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import http_setup
from handler_request import Request
from instructions import per_webhook

HERE = Path(__file__).resolve()
REPO = HERE.parent.parent
WARM_UP = 300


async def _handle(rules: Path, work: Path, webhooks: int) -> None:
    """In the child, under callgrind: warm up, zero the counters, handle, dump."""
    from aiohttp import web

    from responder.settings import Settings
    from responder.web import server
    from responder.web.logs import setup_logging

    with (work / "out.log").open("w") as out:
        setup_logging("INFO", "text", out)
        store = f"sqlite:///{work / 'responder.db'}"
        settings = Settings.from_env({}, rules=(str(rules),), store=store)
        app = server.create_app(settings)
        runner = web.AppRunner(app)
        await runner.setup()
        gc.freeze()  # as ``serve`` does once it is ready
        parts = http_setup.textit_parts()

        async def send(first: int, count: int) -> None:
            for n in range(first, first + count):
                body = http_setup.body(parts, f"i{n}", n % http_setup.CONTACTS, False).encode()
                request = Request(app, body, "textit")
                resp = await server.error_middleware(request, server.webhook)  # type: ignore[arg-type]
                if resp.status != 200 or http_setup.REPLY_PREFIX.encode() not in resp.body:
                    raise SystemExit(f"unexpected answer {resp.status}: {resp.body!r}")

        try:
            await send(10_000_000, WARM_UP)
            _callgrind("-z")
            await send(0, webhooks)
            _callgrind("-d")
        finally:
            await runner.cleanup()


def _callgrind(option: str) -> None:
    subprocess.run(["callgrind_control", option, str(os.getpid())], check=True, capture_output=True)  # noqa: S603, S607


def count(tree: Path, rules: Path, webhooks: int, work: Path) -> float:
    """Instructions per webhook of the handler of the responder in ``tree``."""
    scratch = Path(tempfile.mkdtemp(dir=work))
    out = scratch / "callgrind.out"
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        str(HERE),
        "--child",
        str(rules),
        str(scratch),
        "--webhooks",
        str(webhooks),
    ]
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}
    subprocess.run(command, cwd=tree, env=env, check=True, capture_output=True)  # noqa: S603
    return per_webhook(sorted(scratch.glob("callgrind.out.*")), webhooks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--webhooks", type=int, default=300)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--against", type=lambda text: Path(text).resolve())
    parser.add_argument("--child", nargs=2, metavar=("RULES", "SCRATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        rules, scratch = (Path(part) for part in args.child)
        asyncio.run(_handle(rules, scratch, args.webhooks))
        return
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("needs valgrind and callgrind_control (Debian package valgrind)")
    with tempfile.TemporaryDirectory(prefix="responder-handler-instructions-") as scratch:
        work = Path(scratch)
        rules = http_setup.write_rules(work / "rules", args.rules)
        trees = {"this": REPO, **({"against": args.against} if args.against else {})}
        with ThreadPoolExecutor(len(trees)) as pool:
            counted = pool.map(lambda tree: count(tree, rules, args.webhooks, work), trees.values())
            figures = dict(zip(trees, counted, strict=True))
    for name, tree in trees.items():
        print(f"{name:<8} {figures[name] / 1e3:8.1f} K instructions per webhook  ({tree})")
    if args.against:
        print(f"this / against: {figures['this'] / figures['against']:.3f}")


if __name__ == "__main__":
    main()
