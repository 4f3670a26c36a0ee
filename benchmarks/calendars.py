"""Benchmark: what calendars cost per event.

    python benchmarks/calendars.py [--rounds 20000]

Prints, as ratios to a baseline timed in the same run (the machine is shared and noisy:
compare ratios, not absolute times):
- an ``open:`` condition next to the ``time:`` condition it generalises;
- ``next_open`` of an ordinary calendar, and of one closed for a year of holidays (the
  worst case: the search walks every day), next to one ``open:`` test;
- a whole out-of-hours answer through the engine (``closed:`` + a template that reads
  ``next_open``) next to a plain keyword reply.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from responder.appstate import Signer
from responder.dialogues.runner import Runner
from responder.events import Event
from responder.matching.calendars import Calendar
from responder.matching.conditions import CalendarCondition, Scope, TimeCondition
from responder.rules.loader import load_rules
from responder.runtime.engine import Engine
from responder.stores.memory import MemoryStore

RULES = """
calendars:
  office:
    timezone: Asia/Singapore
    hours: {mon-fri: "09:00-12:00, 13:00-18:00", sat: "10:00-14:00", sun: closed}
    holidays: [2026-12-25, {date: 2027-01-01, name: New Year's Day}]
rules:
  - name: hours
    on: sms.received
    when: {text: {keyword: [hours]}}
    reply: {text: "We are open 9-18."}
  - name: after-hours
    on: sms.received
    when: {closed: office}
    reply:
      text: "Closed. We open {{ calendars.office.next_open.strftime('%A %H:%M') }}."
"""
SATURDAY_EVENING = datetime(2026, 3, 14, 11, 0, tzinfo=UTC)  # 19:00 in Singapore


def per_call(fn: Callable[[], object], rounds: int) -> float:
    """Best of three runs, in microseconds per call."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = min(best, time.perf_counter() - start)
    return best / rounds * 1e6


def conditions(rules_dir: Path, rounds: int) -> dict[str, float]:
    office = load_rules([rules_dir]).calendars["office"]
    event = Event(provider="textit", channel="textit", kind="sms.received", contact="+65")
    scope = Scope(now=SATURDAY_EVENING, context=dict, calendars={"office": office})
    time_condition = TimeCondition(office.zone, frozenset(range(5)), *office.week[0][0])
    shut = Calendar(
        "shut",
        office.zone,
        office.week,
        {date(2026, 3, 14) + timedelta(days=n): "" for n in range(366)},
        {},
    )
    time_us = per_call(lambda: time_condition.test(event, scope), rounds)
    is_open = CalendarCondition("office", want_open=True)
    open_us = per_call(lambda: is_open.test(event, scope), rounds)
    next_us = per_call(lambda: office.next_open(SATURDAY_EVENING), rounds)
    worst_us = per_call(lambda: shut.next_open(SATURDAY_EVENING), max(rounds // 100, 10))
    return {
        "time_condition_us": round(time_us, 2),
        "open_condition_us": round(open_us, 2),
        "open_vs_time": round(open_us / time_us, 2),
        "next_open_us": round(next_us, 2),
        "next_open_vs_open": round(next_us / open_us, 2),
        "next_open_after_366_holidays_us": round(worst_us, 2),
        "next_open_worst_vs_open": round(worst_us / open_us, 2),
    }


async def engine(rules_dir: Path, rounds: int) -> dict[str, float]:
    rules = load_rules([rules_dir])
    eng = Engine(
        rules, MemoryStore(), Runner(Signer(b"k" * 32), None), clock=SATURDAY_EVENING.timestamp
    )

    def sms(text: str) -> Event:
        return Event(
            provider="textit", channel="textit", kind="sms.received", contact="+65", text=text
        )

    async def timed(text: str) -> float:
        event = sms(text)
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for n in range(rounds):
                outcome = await eng.handle(event, f"k{n}")
            best = min(best, time.perf_counter() - start)
        assert outcome.reply_text is not None
        return best / rounds * 1e6

    keyword_us = await timed("hours")
    closed_us = await timed("hello")
    return {
        "keyword_reply_us": round(keyword_us, 1),
        "out_of_hours_reply_us": round(closed_us, 1),
        "out_of_hours_vs_keyword": round(closed_us / keyword_us, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rules_dir = Path(tmp)
        (rules_dir / "rules.yaml").write_text(textwrap.dedent(RULES))
        results = conditions(rules_dir, args.rounds)
        results.update(asyncio.run(engine(rules_dir, max(args.rounds // 10, 100))))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
