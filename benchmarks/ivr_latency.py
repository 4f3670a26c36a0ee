"""Benchmark: the latency an IVR step adds, from a Hoiio notification to the next block.

    python benchmarks/ivr_latency.py [--calls 200] [--backlog 400] [--json]

Starts ``responder serve`` (SQLite store) on the IVR menu example with a fake Hoiio API in
this process, then for each call: posts the incoming call (``ivr.answer``) and times until the
fake receives the ``gather`` block; posts the caller's key (``ivr.gather``, with the signed
``app_state`` from that block's ``notify_url``) and times until the ``transfer`` block arrives.
The baseline, measured in the same run, is the round trip of a webhook that triggers nothing
(a Hoiio ``sms_status``). Reported as p50/p99 and as ratios to the baseline (the machine is
shared and noisy: compare ratios, not absolute times). Then the same again behind a backlog:
``--backlog`` SMS replies queued first, to a fake that takes 1 s per SMS, so the IVR blocks
have to overtake them (``--backlog 0`` skips this part).
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

from responder.testing.fakes import Behaviour, FakeProvider, Recorded

REPO = Path(__file__).resolve().parent.parent
SMS_DELAY = 1.0  # seconds the fake takes per SMS while there is a backlog
ACK = """
rules:
  - name: ack
    on: sms.received
    sms: {text: "Got it"}
"""


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


async def next_block(fake: FakeProvider, session: str, path: str) -> Recorded:
    """The block ``path`` for ``session`` as the fake received it (stamped on arrival, so
    polling here delays nothing measured)."""
    seen = 0
    while True:
        for request in fake.requests[seen:]:
            if request.path.endswith(path) and request.params.get("session") == session:
                return request
        seen = len(fake.requests)
        await asyncio.sleep(0.0002)


async def post(http: aiohttp.ClientSession, url: str, form: dict[str, str]) -> None:
    async with http.post(f"{url}/webhooks/hoiio", data=form) as resp:
        if resp.status != 200:
            raise SystemExit(f"webhook answered {resp.status}: {await resp.text()}")
        await resp.read()


async def measure(calls: int, backlog: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"baseline": [], "ivr_answer": [], "ivr_gather": []}
    behaviour = Behaviour(path_delays={"/sms/send": SMS_DELAY} if backlog else {})
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules"
        shutil.copytree(REPO / "examples" / "ivr-menu", rules)
        (rules / "ack.yaml").write_text(ACK)
        async with (
            FakeProvider("hoiio", behaviour=behaviour) as fake,
            aiohttp.ClientSession() as http,
        ):
            proc, url = await start_server(rules, Path(tmp) / "bench.db", fake, http)
            try:
                for n in range(backlog):
                    form = {"txn_ref": f"BL-{n}", "from": f"+6590{n:06d}", "to": "+6531234567"}
                    await post(http, url, {**form, "msg": "hi"})
                if backlog:
                    samples["backlog_left"] = [backlog - len(fake.calls("/sms/send"))]
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

    t0 = time.monotonic()
    await post(http, url, {**caller, "ivr_block": "answer", "txn_ref": f"AA-I-{i}"})
    gather = await next_block(fake, session, "/ivr/middle/gather")
    samples["ivr_answer"].append(gather.at - t0)
    state = parse_qs(urlsplit(gather.params["notify_url"]).query)

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
    transfer = await next_block(fake, session, "/ivr/end/transfer")
    samples["ivr_gather"].append(transfer.at - t0)


def ms(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


def summary(samples: dict[str, list[float]]) -> dict[str, float]:
    steps = samples["ivr_answer"] + samples["ivr_gather"]
    base = samples["baseline"]
    out = {
        "baseline_p50_ms": ms(base, 50),
        "baseline_p99_ms": ms(base, 99),
        "ivr_step_p50_ms": ms(steps, 50),
        "ivr_step_p99_ms": ms(steps, 99),
        "ivr_answer_p50_ms": ms(samples["ivr_answer"], 50),
        "ivr_gather_p50_ms": ms(samples["ivr_gather"], 50),
        "steps": len(steps),
    }
    out["p50_ratio"] = out["ivr_step_p50_ms"] / out["baseline_p50_ms"]
    out["p99_ratio"] = out["ivr_step_p99_ms"] / out["baseline_p99_ms"]
    if "backlog_left" in samples:
        out["backlog_waiting_at_start"] = samples["backlog_left"][0]
    return out


def report(title: str, r: dict[str, float]) -> None:
    print(title)
    print(
        f"  baseline (webhook round trip, nothing to do): p50 {r['baseline_p50_ms']:.2f} ms, "
        f"p99 {r['baseline_p99_ms']:.2f} ms"
    )
    print(
        f"  IVR step (notification sent -> next block at the fake), {r['steps']:.0f} steps: "
        f"p50 {r['ivr_step_p50_ms']:.2f} ms ({r['p50_ratio']:.2f}x baseline), "
        f"p99 {r['ivr_step_p99_ms']:.2f} ms ({r['p99_ratio']:.2f}x baseline)"
    )
    print(
        f"    answer -> gather p50 {r['ivr_answer_p50_ms']:.2f} ms; "
        f"key pressed -> transfer p50 {r['ivr_gather_p50_ms']:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--backlog", type=int, default=400, help="SMS queued for part two")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {"idle": summary(asyncio.run(measure(args.calls, 0)))}
    if args.backlog:
        results["backlog"] = summary(asyncio.run(measure(args.calls, args.backlog)))
    if args.json:
        print(json.dumps(results, indent=2))
        return
    report(f"nothing else queued ({args.calls} calls):", results["idle"])
    if args.backlog:
        left = results["backlog"]["backlog_waiting_at_start"]
        report(
            f"behind {args.backlog} queued SMS ({left:.0f} still waiting when the first call "
            f"came; the fake takes {SMS_DELAY:g}s per SMS):",
            results["backlog"],
        )


if __name__ == "__main__":
    main()
