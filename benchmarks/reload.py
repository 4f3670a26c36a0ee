"""Benchmark: rule reloads under load, against a real ``responder serve`` process.

    python benchmarks/reload.py [--rules 100] [--clients 8] [--seconds 20] [--reloads 20]

A load generator posts TextIt SMS webhooks (each from a new contact, half of them matching
one of the keyword rules) with ``--clients`` requests in flight, first for ``--seconds``
without reloads (the baseline), then for as long as ``--reloads`` SIGHUP reloads take,
spread over at least ``--seconds``; every third reload is of broken rules (a YAML error, an
unknown event kind, a misspelt template variable), the others change every reply. It prints
requests sent, failed requests (anything but a 200 with a reply of a rule set that was
loaded), the latency percentiles of both phases and their ratio (the machine is shared and
noisy: compare the ratios, not absolute times), and the reload counts the server reports.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from responder.testing.process import ServeProcess

BROKEN = [
    "rules:\n  - name: x\n    on: [sms.received\n",
    "rules:\n  - name: x\n    on: sms.recieved\n    reply: {text: hi}\n",
    "rules:\n  - name: x\n    on: sms.received\n    reply: {text: '{{ contcat }}'}\n",
]


def rules_text(count: int, version: int) -> str:
    lines = ["rules:"]
    for n in range(count):
        lines += [
            f"  - name: keyword-{n}",
            "    on: sms.received",
            f"    when: {{text: {{keyword: [word{n}, alias{n}]}}}}",
            f'    reply: {{text: "v{version} rule {n} for {{{{ contact }}}}"}}',
        ]
    lines += [
        "  - name: fallback",
        "    on: sms.received",
        f'    reply: {{text: "v{version} fallback"}}',
    ]
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> None:
    path.write_text(text)


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0

    @property
    def sent(self) -> int:
        return len(self.latencies) + len(self.failures)


class Load:
    """``clients`` loops posting webhooks; replies must come from a loaded version."""

    def __init__(self, url: str, clients: int, rules: int) -> None:
        self.url = url
        self.clients = clients
        self.rules = rules
        self.ids = itertools.count(1)
        self.valid_versions: set[int] = {0}

    async def run(self, phase: Phase, until: asyncio.Event) -> None:
        phase.started = time.perf_counter()
        connector = aiohttp.TCPConnector(limit=self.clients)
        async with aiohttp.ClientSession(connector=connector) as http:
            await asyncio.gather(*(self._client(http, phase, until) for _ in range(self.clients)))
        phase.ended = time.perf_counter()

    async def _client(
        self, http: aiohttp.ClientSession, phase: Phase, until: asyncio.Event
    ) -> None:
        while not until.is_set():
            n = next(self.ids)
            text = f"word{n % self.rules} please" if n % 2 else "something else"
            data = {"event": "mo_sms", "sms": str(n), "phone": f"+659{n:07d}", "text": text}
            began = time.perf_counter()
            try:
                async with http.post(f"{self.url}/webhooks/textit", data=data) as resp:
                    body = await resp.json() if resp.status == 200 else await resp.text()
                elapsed = time.perf_counter() - began
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                phase.failures.append(f"{type(exc).__name__}: {exc}")
                continue
            if resp.status != 200 or not isinstance(body, dict):
                phase.failures.append(f"HTTP {resp.status}: {str(body)[:200]}")
                continue
            version = str(body.get("text", "")).split(" ", 1)[0]
            if not version.startswith("v") or int(version[1:]) not in self.valid_versions:
                phase.failures.append(f"reply from no loaded rule set: {body}")
                continue
            phase.latencies.append(elapsed)


async def reload_count(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with http.get(f"{url}/metrics") as resp:
        text = await resp.text()
    out = {"ok": 0.0, "failed": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "responder_reloads_total":
                out[sample.labels["result"]] = float(sample.value)
    return out


async def reloads(
    server: ServeProcess, rules_file: Path, load: Load, args: argparse.Namespace
) -> tuple[list[float], dict[str, float]]:
    """``args.reloads`` SIGHUPs, each waited for; returns how long each took to show."""
    took: list[float] = []
    spacing = args.seconds / args.reloads
    async with aiohttp.ClientSession() as http:
        for n in range(1, args.reloads + 1):
            broken = n % 3 == 0
            if broken:
                write(rules_file, BROKEN[(n // 3) % len(BROKEN)])
            else:
                load.valid_versions.add(n)  # its replies are valid from the moment it may load
                write(rules_file, rules_text(args.rules, n))
            before = await reload_count(http, server.url)
            result = "failed" if broken else "ok"
            began = time.perf_counter()
            server.signal(signal.SIGHUP)
            while (await reload_count(http, server.url))[result] <= before[result]:
                if time.perf_counter() - began > 60:
                    raise RuntimeError(f"reload {n} did not happen within 60 s")
                await asyncio.sleep(0.01)
            took.append(time.perf_counter() - began)
            await asyncio.sleep(max(0.0, spacing - took[-1]))
        return took, await reload_count(http, server.url)


def ms(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def row(phase: Phase) -> list[float]:
    lat = phase.latencies
    return [
        ms(lat, 0.5),
        ms(lat, 0.95),
        ms(lat, 0.99),
        1000 * max(lat, default=float("nan")),
        1000 * statistics.fmean(lat) if lat else float("nan"),
        phase.sent / max(1e-9, phase.ended - phase.started),
    ]


async def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="responder-reload-") as tmp:
        base = Path(tmp)
        rules_dir = base / "rules"
        rules_dir.mkdir()
        rules_file = rules_dir / "rules.yaml"
        rules_file.write_text(rules_text(args.rules, 0))
        serve_args = ["--rules", str(rules_dir), "--store", f"sqlite:///{base / 'bench.db'}"]
        env = {"RESPONDER_LOG_LEVEL": "WARNING"}
        async with ServeProcess(serve_args, env, base / "serve.log") as server:
            load = Load(server.url, args.clients, args.rules)
            # Warm up (connections, SQLite pages), then the baseline, then the reloads.
            warm, stop = Phase("warm-up"), asyncio.Event()
            asyncio.get_running_loop().call_later(2, stop.set)
            await load.run(warm, stop)
            baseline, stop = Phase("without reloads"), asyncio.Event()
            asyncio.get_running_loop().call_later(args.seconds, stop.set)
            await load.run(baseline, stop)
            during, stop = Phase(f"during {args.reloads} reloads"), asyncio.Event()
            running = asyncio.create_task(load.run(during, stop))
            took, counts = await reloads(server, rules_file, load, args)
            stop.set()
            await running
            log = server.output()
    print(
        f"reload under load: {args.rules + 1} rules, {args.clients} requests in flight, "
        f"real `responder serve` on SQLite"
    )
    head = f"{'':22}{'requests':>9}{'failed':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
    print(head + f"{'max ms':>9}{'mean ms':>9}{'req/s':>8}")
    for phase in (baseline, during):
        p50, p95, p99, top, mean, rate = row(phase)
        print(
            f"{phase.name:22}{phase.sent:9d}{len(phase.failures):8d}{p50:9.2f}{p95:9.2f}"
            f"{p99:9.2f}{top:9.2f}{mean:9.2f}{rate:8.0f}"
        )
    a, b = row(baseline), row(during)
    print(
        f"{'ratio (reloads/none)':22}{'':17}{b[0] / a[0]:9.2f}{b[1] / a[1]:9.2f}"
        f"{b[2] / a[2]:9.2f}{b[3] / a[3]:9.2f}{b[4] / a[4]:9.2f}{b[5] / a[5]:8.2f}"
    )
    print(
        f"reloads: {int(counts['ok'])} ok, {int(counts['failed'])} refused (broken rules); "
        f"SIGHUP to reload counted: median {1000 * statistics.median(took):.0f} ms, "
        f"max {1000 * max(took):.0f} ms"
    )
    failures = baseline.failures + during.failures
    for failure in failures[:10]:
        print(f"failed: {failure}")
    if "Traceback" in log:
        print("the server logged a traceback:\n" + log[-3000:])
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rules", type=int, default=100, help="keyword rules (default 100)")
    parser.add_argument("--clients", type=int, default=8, help="requests in flight (default 8)")
    parser.add_argument("--seconds", type=float, default=20.0, help="per phase (default 20)")
    parser.add_argument("--reloads", type=int, default=20, help="reloads (default 20)")
    sys.exit(asyncio.run(main(parser.parse_args())))
