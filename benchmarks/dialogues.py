"""Benchmark: memory held by live conversations, and the cost of one dialogue step.

    python benchmarks/dialogues.py [--conversations 100000] [--steps 2000]

Prints the RSS added by N live conversations on the SQLite store (the default) and on the
memory store, and the time of one IVR dialogue step (engine decision + commit) next to a
plain keyword rule handled in the same run, as a ratio (the machine is shared and noisy:
compare ratios, not absolute times).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import tempfile
import textwrap
import time
from pathlib import Path

from responder.appstate import AppState, Signer
from responder.conversations import Conversation
from responder.dialogues.runner import Runner
from responder.events import Event
from responder.outbound import Commit, StoredResponse
from responder.rules.loader import load_rules
from responder.runtime.engine import Engine
from responder.stores import open_store
from responder.stores.base import Store

RULES = """
rules:
  - name: hours
    on: sms.received
    when: {text: {keyword: [hours]}}
    reply: {text: "We are open 9-18, {{ contact }}."}
dialogues:
  - name: menu
    start: {on: ivr.answer}
    states:
      menu:
        gather: {say: "Press 1 or 2.", max_digits: 1}
        on:
          - {digits: "1", goto: menu}
          - {otherwise: true, goto: bye}
      bye:
        hangup: {say: "Bye."}
"""
EMPTY = StoredResponse(200, "text/plain", b"")


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def fill(store: Store, count: int) -> int:
    """RSS added by ``count`` live IVR conversations written through the normal commit."""
    gc.collect()
    before = rss_bytes()
    now = time.time()
    for i in range(count):
        conversation = Conversation(
            key=f"hoiio:ivr:S-{i}",
            dialogue="menu",
            state="menu",
            channel="hoiio",
            provider="hoiio",
            contact=f"+659{i:07d}",
            session=f"S-{i}",
            vars={"recording": ""},
            visits={"menu": 1},
            seq=1,
            started=now,
            updated=now,
            expires=now + 86400,
        )
        await store.commit(Commit(f"bench:{i}", EMPTY, now=now, conversation=conversation))
    gc.collect()
    assert await store.count_conversations() == count
    return rss_bytes() - before


async def step_times(store: Store, steps: int) -> tuple[list[float], list[float]]:
    rules = load_rules([_rules_dir()])
    signer = Signer(b"k" * 32)
    engine = Engine(rules, store, runner=Runner(signer, "https://bench.example"))
    ivr, plain = [], []
    for i in range(steps):
        session = f"B-{i}"
        answer = Event(
            provider="hoiio",
            channel="hoiio",
            kind="ivr.answer",
            contact="+6590000000",
            session=session,
        )
        outcome = await engine.handle(answer, f"a{i}")
        await store.commit(
            Commit(
                f"a{i}",
                EMPTY,
                outcome.calls,
                now=time.time(),
                conversation=outcome.conversation,
                expected_version=outcome.expected_version,
            )
        )
        gather = Event(
            provider="hoiio",
            channel="hoiio",
            kind="ivr.gather",
            contact="+6590000000",
            session=session,
            digits="1",
            app_state="menu:menu:1",
        )
        t0 = time.perf_counter()
        outcome = await engine.handle(gather, f"g{i}", AppState("menu", "menu", 1))
        await store.commit(
            Commit(
                f"g{i}",
                EMPTY,
                outcome.calls,
                now=time.time(),
                conversation=outcome.conversation,
                expected_version=outcome.expected_version,
            )
        )
        ivr.append(time.perf_counter() - t0)
        sms = Event(
            provider="textit",
            channel="textit",
            kind="sms.received",
            contact=f"+1555{i:07d}",
            text="hours?",
        )
        t0 = time.perf_counter()
        outcome = await engine.handle(sms, f"s{i}")
        await store.commit(Commit(f"s{i}", EMPTY, outcome.calls, now=time.time()))
        plain.append(time.perf_counter() - t0)
    return ivr, plain


_DIR: list[Path] = []


def _rules_dir() -> Path:
    if not _DIR:
        path = Path(tempfile.mkdtemp()) / "rules.yaml"
        path.write_text(textwrap.dedent(RULES))
        _DIR.append(path.parent)
    return _DIR[0]


def _ms(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, url in (("sqlite", f"sqlite:///{tmp}/bench.db"), ("memory", "memory://")):
            store = open_store(url)
            await store.open()
            results[f"rss_mb_{name}"] = await fill(store, args.conversations) / 2**20
            ivr, plain = await step_times(store, args.steps)
            results[f"ivr_step_p50_ms_{name}"] = _ms(ivr, 50)
            results[f"ivr_step_p99_ms_{name}"] = _ms(ivr, 99)
            results[f"rule_p50_ms_{name}"] = _ms(plain, 50)
            results[f"ivr_step_vs_rule_{name}"] = statistics.median(ivr) / statistics.median(plain)
            await store.close()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    n = args.conversations
    for name in ("sqlite", "memory"):
        print(
            f"{name:>6}: RSS added by {n:,} live conversations: {results[f'rss_mb_{name}']:.1f} MB"
        )
        print(
            f"{name:>6}: IVR dialogue step (decide + commit): "
            f"p50 {results[f'ivr_step_p50_ms_{name}']:.3f} ms, "
            f"p99 {results[f'ivr_step_p99_ms_{name}']:.3f} ms; "
            f"{results[f'ivr_step_vs_rule_{name}']:.2f}x a plain keyword rule "
            f"(p50 {results[f'rule_p50_ms_{name}']:.3f} ms)"
        )


if __name__ == "__main__":
    asyncio.run(main())
