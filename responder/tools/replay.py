"""``responder replay``: recorded webhooks against two rule sets, and how their answers differ.

Each rule set gets a world of its own: a memory store, a clock set to each record's time and
a fixed app_state key. Every record goes through what the server does (parse, key, decide,
commit), timers due by then fire first, and the outbound calls are captured from what is
committed — nothing is sent, nothing outside the process is touched.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Final

from responder.appstate import AppState, Signer
from responder.clients.sender import loggable_endpoint
from responder.dialogues.runner import Runner
from responder.errors import AppStateError, BadRequest, RulesError
from responder.events import Event
from responder.outbound import OutboundCall
from responder.printable import one_line
from responder.providers import PROVIDERS
from responder.providers.base import WebhookRequest
from responder.rules.loader import load_rules
from responder.rules.model import RuleSet
from responder.runtime.engine import Engine
from responder.runtime.handling import Handling
from responder.runtime.locks import KeyedLocks
from responder.runtime.timers import LEASE
from responder.stores.memory import MemoryStore
from responder.tools.progress import Progress
from responder.web.recording import Record, read_records

# Both worlds sign IVR state with this key, so notify_urls compare equal.
REPLAY_KEY: Final = b"responder-replay-key-0123456789ab"
PUBLIC_URL: Final = "https://responder.invalid"
TIMER_BATCH: Final = 100
MAX_PROBLEMS_SHOWN: Final = 20


@dataclass(frozen=True, slots=True)
class Effects:
    """What one record led to under one rule set."""

    status: int
    reply: str  # the answer body as text ("" for none)
    calls: tuple[str, ...]  # one line per outbound call, comparable and printable
    note: str = ""  # parse errors, refused state, a retried delivery


@dataclass(frozen=True, slots=True)
class Difference:
    index: int
    record: Record
    summary: str  # kind and contact of the event
    old: Effects
    new: Effects

    @property
    def reply_differs(self) -> bool:
        return (self.old.status, self.old.reply) != (self.new.status, self.new.reply)

    @property
    def calls_differ(self) -> bool:
        return self.old.calls != self.new.calls


def describe_call(call: OutboundCall) -> str:
    """A call as one line: provider, action, target and parameters (webhook URLs shortened)."""
    params = json.dumps(call.params, ensure_ascii=False, sort_keys=True, default=str)
    method = f"{call.method} " if call.provider == "http" else ""
    held = ""
    if call.not_before is not None:
        held = f" (held until {_iso(call.not_before)})"
    return f"{call.provider} {method}{loggable_endpoint(call)} {params}{held}"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class World:
    """One rule set's view of the recording: its own store, clock and engine."""

    def __init__(self, rules: RuleSet, hoiio_channel: str) -> None:
        self.clock = Clock()
        self.store = MemoryStore()
        runner = Runner(Signer(REPLAY_KEY), PUBLIC_URL, hoiio_channel)
        self.engine = Engine(rules, self.store, runner, self.clock)
        self.handling = Handling(self.engine, KeyedLocks(), clock=self.clock)

    async def play(self, record: Record) -> Effects:
        self.clock.now = max(self.clock.now, record.time)
        calls = [describe_call(c) for c in await self._fire_timers()]
        provider = PROVIDERS.get(record.provider)
        if provider is None:
            return Effects(404, "", (), f"unknown provider {record.provider!r}")
        query = tuple((k, v) for k, v in record.query if k not in ("secret", "password"))
        request = WebhookRequest(query, record.body, record.content_type, method=record.method)
        try:
            event = provider.parse(record.channel, request)
        except BadRequest as exc:
            return Effects(400, "", tuple(calls), f"bad request: {exc.reason}")
        try:
            app_state = _state(event)
        except AppStateError as exc:
            return Effects(403, "", tuple(calls), f"app_state refused: {exc}")
        key = provider.idempotency_key(event, request)
        handled = await self.handling.webhook(provider, event, key, app_state)
        stored, outcome = handled.response, handled.outcome
        if outcome is None:
            return Effects(stored.status, _text(stored.body), tuple(calls), "retried delivery")
        calls.extend(describe_call(c) for c in outcome.calls)
        note = "; ".join(outcome.errors)
        return Effects(stored.status, _text(stored.body), tuple(calls), note)

    async def _fire_timers(self) -> list[OutboundCall]:
        fired: list[OutboundCall] = []
        while timers := await self.store.claim_timers(self.clock.now, LEASE, TIMER_BATCH):
            for timer in timers:
                handled = await self.handling.timer(timer)
                if handled.fresh and handled.outcome is not None:
                    fired.extend(handled.outcome.calls)
            if len(timers) < TIMER_BATCH:
                break
        return fired


def _state(event: Event) -> AppState | None:
    """The recorded pass-on state, trusted as recorded: it was checked when it arrived, and
    its signature is not in the recording."""
    if event.provider != "hoiio" or not event.app_state:
        return None
    try:
        return AppState.decode(event.app_state)
    except AppStateError:
        if event.raw.get("sig"):
            raise
        return None  # another application's pass-on parameter


def _text(body: bytes) -> str:
    return body.decode("utf-8", "replace")


def _summary(record: Record) -> str:
    try:
        request = WebhookRequest(
            record.query, record.body, record.content_type, method=record.method
        )
        event = PROVIDERS[record.provider].parse(record.channel, request)
    except (BadRequest, KeyError):
        return f"{record.channel} (unreadable)"
    who = event.contact or event.session or "-"
    said = f' "{event.text[:60]}"' if event.text else ""
    keys = f" keys {event.digits}" if event.digits else ""
    return f"{record.channel} {event.kind} from {who}{said}{keys}"


@dataclass
class Report:
    events: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def reply_changes(self) -> int:
        return sum(1 for d in self.differences if d.reply_differs)

    @property
    def call_changes(self) -> int:
        return sum(1 for d in self.differences if d.calls_differ)


async def compare(
    records: Iterable[Record],
    old: RuleSet,
    new: RuleSet,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Play every record in both worlds; the records whose effects differ."""
    records = list(records)
    hoiio = next((r.channel for r in records if r.provider == "hoiio"), "hoiio")
    before, after = World(old, hoiio), World(new, hoiio)
    await before.store.open()
    await after.store.open()
    report = Report()
    for index, record in enumerate(records, start=1):
        a = await before.play(record)
        b = await after.play(record)
        report.events += 1
        if (a.status, a.reply, a.calls) != (b.status, b.reply, b.calls):
            report.differences.append(Difference(index, record, _summary(record), a, b))
        if progress is not None:
            progress(index)
    return report


def print_report(report: Report, out: IO[str], old_name: str, new_name: str) -> None:
    """Each difference, then a summary line."""
    for d in report.differences:
        out.write(f"#{d.index} {_iso(d.record.time)} {one_line(d.summary)}\n")
        if d.record.trace_id:
            out.write(f"  trace {one_line(d.record.trace_id)}\n")
        if d.reply_differs:
            out.write(f"  reply - {one_line(_answer(d.old))}\n")
            out.write(f"        + {one_line(_answer(d.new))}\n")
        if d.calls_differ:
            removed = [c for c in d.old.calls if c not in d.new.calls]
            added = [c for c in d.new.calls if c not in d.old.calls]
            if not removed and not added:
                out.write("  calls in another order:\n")
                removed, added = list(d.old.calls), list(d.new.calls)
            for line in removed:
                out.write(f"  call  - {one_line(line)}\n")
            for line in added:
                out.write(f"  call  + {one_line(line)}\n")
        for side, effects in (("-", d.old), ("+", d.new)):
            if effects.note:
                out.write(f"  note  {side} {one_line(effects.note)}\n")
    out.write(
        f"{report.events} event(s) replayed against {old_name} (-) and {new_name} (+): "
        f"{len(report.differences)} differ ({report.reply_changes} in their reply, "
        f"{report.call_changes} in their outbound calls)\n"
    )


def _answer(effects: Effects) -> str:
    body = effects.reply or "(empty)"
    return body if effects.status == 200 else f"HTTP {effects.status} {body}"


async def run(
    logs: list[str], new_paths: list[str], old_paths: list[str], out: IO[str], err: IO[str]
) -> int:
    """The whole command: 0 when nothing differs, 1 when something does, 2 when the rules or
    the recording cannot be read."""
    rule_sets: list[RuleSet] = []
    for paths in (old_paths, new_paths):
        try:
            rule_sets.append(load_rules(paths))
        except RulesError as exc:
            for problem in exc.problems:
                err.write(f"{problem}\n")
            err.write(f"responder: cannot replay against broken rules ({', '.join(paths)})\n")
            return 2
    try:
        records, problems = read_records(logs)
    except OSError as exc:
        err.write(f"responder: cannot read {exc.filename}: {exc.strerror}\n")
        return 2
    for line in problems[:MAX_PROBLEMS_SHOWN]:
        err.write(f"skipped {one_line(line)}\n")
    if len(problems) > MAX_PROBLEMS_SHOWN:
        err.write(f"skipped {len(problems) - MAX_PROBLEMS_SHOWN} more unreadable line(s)\n")
    if not records and problems:
        err.write("responder: no webhook records in the recording\n")
        return 2
    progress = Progress(len(records), err)
    try:
        report = await compare(records, rule_sets[0], rule_sets[1], progress)
    finally:
        progress.finish()
    print_report(report, out, ", ".join(old_paths), ", ".join(new_paths))
    return 1 if report.differences else 0
