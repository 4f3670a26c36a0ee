"""Benchmark: the latency an IVR step adds, from a Hoiio notification to the next block.

    python benchmarks/ivr_latency.py [--calls 200] [--json]

Starts ``responder serve`` (SQLite store) on the IVR menu example with a fake Hoiio API in
this process, then for each call: posts the incoming call (``ivr.answer``) and times until the
fake receives the ``gather`` block; posts the caller's key (``ivr.gather``, with the signed
``app_state`` from that block's ``notify_url``) and times until the ``transfer`` block arrives.
The baseline, measured in the same run, is the round trip of a webhook that triggers nothing
(a Hoiio ``sms_status``). Reported as p50/p99 and as ratios to the baseline (the machine is
shared and noisy: compare ratios, not absolute times).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp

from responder.testing.fakes import FakeProvider

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_server(
    rules: Path, db: Path, fake: FakeProvider, http: aiohttp.ClientSession
) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RESPONDER_", "HOIIO_"))},
        "HOIIO_APP_ID": "app-1",
        "HOIIO_ACCESS_TOKEN": "token-1",
        "HOIIO_API_URL": fake.url,
        "RESPONDER_PUBLIC_URL": url,
        "RESPONDER_LOG_LEVEL": "WARNING",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "responder",
        "serve",
        "--rules",
        str(rules),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--store",
        f"sqlite:///{db}",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    for _ in range(600):
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(f"{url}/healthz") as resp:
                if resp.status == 200:
                    return proc, url
        await asyncio.sleep(0.05)
    proc.kill()
    raise SystemExit("responder did not come up")


async def next_block(fake: FakeProvider, seen: int) -> float:
    """When the fake received request number ``seen`` (monotonic seconds)."""
    # The fake stamps each request as it arrives: polling here delays nothing measured.
    while len(fake.requests) <= seen:  # noqa: ASYNC110
        await asyncio.sleep(0.0002)
    return fake.requests[seen].at


async def post(http: aiohttp.ClientSession, url: str, form: dict[str, str]) -> None:
    async with http.post(f"{url}/webhooks/hoiio", data=form) as resp:
        if resp.status != 200:
            raise SystemExit(f"webhook answered {resp.status}: {await resp.text()}")
        await resp.read()


async def measure(calls: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"baseline": [], "ivr_answer": [], "ivr_gather": []}
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules"
        shutil.copytree(REPO / "examples" / "ivr-menu", rules)
        async with FakeProvider("hoiio") as fake, aiohttp.ClientSession() as http:
            proc, url = await start_server(rules, Path(tmp) / "bench.db", fake, http)
            try:
                for i in range(calls):
                    await one_call(http, url, fake, i, samples)
            finally:
                proc.terminate()
                await proc.wait()
    return samples


async def one_call(
    http: aiohttp.ClientSession,
    url: str,
    fake: FakeProvider,
    i: int,
    samples: dict[str, list[float]],
) -> None:
    session = f"S-{i}"
    caller = {"session": session, "from": "+6591234567", "to": "+6531234567"}
    t0 = time.monotonic()
    status = {"txn_ref": f"AA-S-{i}", "sms_status": "delivered", "dest": "+6591234567"}
    await post(http, url, status)  # the baseline: a notification that triggers nothing
    samples["baseline"].append(time.monotonic() - t0)

    seen = len(fake.requests)
    t0 = time.monotonic()
    await post(http, url, {**caller, "ivr_block": "answer", "txn_ref": f"AA-I-{i}"})
    arrived = await next_block(fake, seen)
    samples["ivr_answer"].append(arrived - t0)
    gather = fake.requests[seen]
    assert gather.path.endswith("/ivr/middle/gather"), gather.path
    state = parse_qs(urlsplit(gather.params["notify_url"]).query)

    seen = len(fake.requests)
    t0 = time.monotonic()
    form = {
        **caller,
        "ivr_block": "gather",
        "digits": "1",
        "txn_ref": f"AA-I-{i}",
        "app_state": state["app_state"][0],
        "sig": state["sig"][0],
    }
    await post(http, url, form)
    arrived = await next_block(fake, seen)
    samples["ivr_gather"].append(arrived - t0)
    assert fake.requests[seen].path.endswith("/ivr/end/transfer"), fake.requests[seen].path


def ms(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    samples = asyncio.run(measure(args.calls))
    steps = samples["ivr_answer"] + samples["ivr_gather"]
    base = samples["baseline"]
    results = {
        "calls": args.calls,
        "baseline_p50_ms": ms(base, 50),
        "baseline_p99_ms": ms(base, 99),
        "ivr_step_p50_ms": ms(steps, 50),
        "ivr_step_p99_ms": ms(steps, 99),
        "ivr_answer_p50_ms": ms(samples["ivr_answer"], 50),
        "ivr_gather_p50_ms": ms(samples["ivr_gather"], 50),
    }
    results["p50_ratio"] = results["ivr_step_p50_ms"] / results["baseline_p50_ms"]
    results["p99_ratio"] = results["ivr_step_p99_ms"] / results["baseline_p99_ms"]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"baseline (webhook round trip, nothing to do): p50 {results['baseline_p50_ms']:.2f} ms, "
        f"p99 {results['baseline_p99_ms']:.2f} ms"
    )
    print(
        f"IVR step (notification sent -> next block at the fake), {len(steps)} steps: "
        f"p50 {results['ivr_step_p50_ms']:.2f} ms ({results['p50_ratio']:.2f}x baseline), "
        f"p99 {results['ivr_step_p99_ms']:.2f} ms ({results['p99_ratio']:.2f}x baseline)"
    )
    print(
        f"  answer -> gather p50 {results['ivr_answer_p50_ms']:.2f} ms; "
        f"key pressed -> transfer p50 {results['ivr_gather_p50_ms']:.2f} ms"
    )


if __name__ == "__main__":
    main()
