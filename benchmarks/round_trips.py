"""Benchmark: Redis round trips per webhook and per delivered call.

    python benchmarks/round_trips.py [--webhooks 500]

Starts ``responder serve`` on a fresh key prefix of the Redis at RESPONDER_TEST_REDIS
(default 127.0.0.1:6379/0) twice: on 1,000 generated rules answering TextIt messages with a
templated reply, and on the IVR menu example with a fake Hoiio API taking its ``gather``
blocks. It sends ``--webhooks`` webhooks to each (8 in flight), waits until every call has
gone out, and reads ``responder_store_round_trips`` from /metrics: the requests made to Redis
by the webhooks, by the delivery worker and by anything else, divided by the webhooks answered
and the calls delivered. Targets: one read and one commit a webhook (2), at most 2 a call.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

import aiohttp
import http_bench
import http_setup
from prometheus_client.parser import text_string_to_metric_families

from responder.testing.fakes import FakeProvider
from responder.testing.redisdb import drop_prefix


async def metrics(url: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as response:
        text = await response.text()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "responder_store_round_trips":
                out[f"trips:{sample.labels['caller']}"] = sample.value
            elif sample.name == "responder_events_total":
                out["webhooks"] = out.get("webhooks", 0.0) + sample.value
            elif (
                sample.name == "responder_outbound_calls_total"
                and sample.labels.get("outcome") == "sent"
            ):
                out["delivered"] = out.get("delivered", 0.0) + sample.value
    return out


async def send(url: str, hoiio: bool, count: int, tag: str) -> None:
    parts = http_setup.hoiio_parts() if hoiio else http_setup.textit_parts()
    path = "/webhooks/hoiio" if hoiio else "/webhooks/textit"
    numbers = iter(range(count))
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with aiohttp.ClientSession() as http:

        async def sender() -> None:
            for n in numbers:
                body = http_setup.body(parts, f"{tag}{n}", n, hoiio)
                async with http.post(f"{url}{path}", data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise SystemExit(f"answered {response.status}")

        await asyncio.gather(*(sender() for _ in range(8)))


async def measure(args: argparse.Namespace, tmp: Path) -> dict[str, dict[str, float]]:
    redis = http_bench.redis_url()
    if redis is None:
        raise SystemExit("no Redis answers at RESPONDER_TEST_REDIS (default 127.0.0.1:6379)")
    rules = http_setup.write_rules(tmp / "rules", 1000)
    ivr = tmp / "ivr"
    shutil.copytree(http_bench.REPO / "examples" / "ivr-menu", ivr)
    for test in ivr.glob("*.test.yaml"):
        test.unlink()
    out: dict[str, dict[str, float]] = {}
    async with FakeProvider("hoiio") as fake:
        env = {
            "HOIIO_APP_ID": "bench",
            "HOIIO_ACCESS_TOKEN": "bench",
            "HOIIO_API_URL": fake.url,
            "RESPONDER_PUBLIC_URL": "http://127.0.0.1:9",
        }
        try:
            for name, rule_dir, hoiio in (("textit", rules, False), ("ivr", ivr, True)):
                proc, url = http_bench.spawn(
                    http_bench.serve_args(rule_dir, redis), env, tmp / f"{name}.log"
                )
                try:
                    await asyncio.to_thread(http_bench._wait_ready, url, proc)
                    start = await metrics(url)
                    await send(url, hoiio, args.webhooks, name)
                    want = args.webhooks if hoiio else 0
                    for _ in range(600):  # until every call went out
                        end = await metrics(url)
                        if end.get("delivered", 0) - start.get("delivered", 0) >= want:
                            break
                        await asyncio.sleep(0.05)

                    def delta(
                        key: str, end: dict[str, float] = end, start: dict[str, float] = start
                    ) -> float:
                        return end.get(key, 0.0) - start.get(key, 0.0)

                    webhooks, delivered = delta("webhooks"), delta("delivered")
                    out[name] = {
                        "webhooks": webhooks,
                        "delivered": delivered,
                        "per_webhook": delta("trips:webhook") / max(webhooks, 1),
                        "per_delivered_call": delta("trips:delivery") / max(delivered, 1),
                        "other": delta("trips:other") + delta("trips:timer"),
                    }
                finally:
                    proc.terminate()
                    proc.wait(15)
        finally:
            drop_prefix(redis.rsplit("prefix=", 1)[1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--webhooks", type=int, default=500)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="responder-round-trips-"))
    try:
        figures = asyncio.run(measure(args, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'server':<8}{'webhooks':>10}{'calls':>8}{'per webhook':>13}{'per call':>10}  targets")
    for name, f in figures.items():
        webhook_ok = "met" if f["per_webhook"] <= 2.0 else "not met"
        call_ok = "met" if f["per_delivered_call"] <= 2.0 or not f["delivered"] else "not met"
        print(
            f"{name:<8}{f['webhooks']:>10.0f}{f['delivered']:>8.0f}{f['per_webhook']:>13.2f}"
            f"{f['per_delivered_call']:>10.2f}  webhook <= 2: {webhook_ok}; call <= 2: {call_ok}",
            file=sys.stdout,
        )


if __name__ == "__main__":
    main()
