"""Plays one transcript test against the real engine and a real store, on a fake clock.

Each step becomes the webhook a provider would send; it is parsed by the provider adapter,
keyed, and handled by the same pipeline as the server's (``responder.runtime.handling``). The
outbound calls are captured from what is committed and never sent. Hoiio IVR notifications
go to the ``notify_url`` of the pending block, signed ``app_state`` and all.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit
from zoneinfo import ZoneInfo

from responder.appstate import AppState, Signer, looks_like_ours
from responder.conversations import Conversation, conversation_key
from responder.dialogues.runner import Runner
from responder.errors import AppStateError
from responder.events import Event
from responder.outbound import OutboundCall
from responder.providers import PROVIDERS
from responder.providers.base import WebhookRequest
from responder.providers.hoiio import HOIIO_TZ
from responder.rules.model import RuleSet
from responder.runtime.engine import Engine
from responder.runtime.handling import Handling
from responder.runtime.locks import KeyedLocks
from responder.runtime.outcome import Outcome
from responder.runtime.timers import LEASE
from responder.stores.memory import MemoryStore

PUBLIC_URL: Final = "https://responder.test"
DEFAULT_CONTACT: Final = "+6591234567"
DEFAULT_NUMBER: Final = "+6531234567"
DEFAULT_START: Final = datetime(2026, 1, 5, 10, 0)  # a Monday morning
MAX_TIMER_FIRINGS: Final = 1000  # per clock move: more is a dialogue that never settles


class StepFailed(Exception):
    """The step cannot be played as written (no call in progress, no pending gather...)."""


@dataclass(frozen=True, slots=True)
class Setup:
    provider: str
    channel: str
    contact: str
    contact_name: str | None
    number: str
    start: datetime  # aware
    zone: ZoneInfo


@dataclass(slots=True)
class Observation:
    """What one step led to."""

    reply: str | None = None
    body: Any = None
    calls: list[OutboundCall] = field(default_factory=list)
    held: list[OutboundCall] = field(default_factory=list)
    matched: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    visited: set[tuple[str, str]] = field(default_factory=set)  # (dialogue, state)
    moves: set[tuple[str, str, str, str]] = field(default_factory=set)  # dialogue, src, trig, dst


@dataclass(slots=True)
class _Call:
    """The call in progress, as Hoiio sees it."""

    session: str | None
    txn_ref: str
    contact: str
    block: str | None = None  # endpoint of the pending block
    notify: str | None = None


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class Harness:
    """One test's world: a fresh store, an engine on the rules, a clock and a caller."""

    def __init__(self, rules: RuleSet, setup: Setup) -> None:
        self.setup = setup
        self.clock = FakeClock(setup.start.timestamp())
        self.store = MemoryStore()
        hoiio_channel = setup.channel if setup.provider == "hoiio" else "hoiio"
        self.signer = Signer(secrets.token_bytes(32))
        runner = Runner(self.signer, PUBLIC_URL, hoiio_channel)
        self.engine = Engine(rules, self.store, runner, self.clock)
        self.handling = Handling(self.engine, KeyedLocks(), clock=self.clock)
        self.timers: dict[str, float] = {}
        self.held: list[OutboundCall] = []
        self.call: _Call | None = None
        self.conversation: str | None = None
        self.last: tuple[str, WebhookRequest] | None = None
        self._ids = 0

    async def open(self) -> None:
        await self.store.open()

    async def close(self) -> None:
        await self.store.close()

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    # -- what the contact does -----------------------------------------------------------

    async def sms(self, text: str, sender: str, name: str | None) -> Observation:
        s = self.setup
        if s.provider == "textit":
            data = {
                "event": "mo_sms",
                "sms": str(self._next_id()),
                "phone": sender,
                "relayer": "1",
                "relayer_phone": s.number,
                "text": text,
                "time": self._iso(),
            }
            if name:
                data["contact_name"] = name
        else:
            data = {
                "txn_ref": f"AA-S-{self._next_id()}",
                "msg": text,
                "from": sender,
                "to": s.number,
                "date": self._hoiio_date(),
            }
        return await self._post(s.channel, data)

    async def incoming_call(self, missed: bool, sender: str, name: str | None) -> Observation:
        s = self.setup
        if s.provider == "textit":
            data = {
                "event": "mo_miss" if missed else "mo_call",
                "call": str(self._next_id()),
                "phone": sender,
                "relayer": "1",
                "relayer_phone": s.number,
                "duration": "0",
                "time": self._iso(),
            }
            if name:
                data["contact_name"] = name
            return await self._post(s.channel, data)
        if missed:
            raise StepFailed("Hoiio reports no missed calls: use 'call: incoming'")
        n = self._next_id()
        self.call = _Call(f"S-{n}", f"AA-C-{n}", sender)
        data = {"ivr_block": "answer", "call_state": "ringing", **self._call_params()}
        return await self._post(s.channel, data)

    async def ivr_result(self, block: str, fields: Mapping[str, str]) -> Observation:
        """Hoiio's notification that the pending ``block`` finished with ``fields``."""
        call = self.call
        if call is None or call.notify is None:
            raise StepFailed(f"no IVR block is waiting for a {block} result")
        if not (call.block or "").endswith(f"/{block}"):
            raise StepFailed(f"the pending IVR block is {call.block}, not {block}")
        if block == "dial" and call.session is None:
            n = self._next_id()
            call.session, call.txn_ref = f"S-{n}", f"AA-D-{n}"
        data = {"ivr_block": block, **self._call_params(), **fields}
        if block == "dial":
            data["dest"], data["from"] = call.contact, self.setup.number
        return await self._post_to(call.notify, data)

    async def hangup(self) -> Observation:
        call = self.call
        if call is None or call.session is None:
            raise StepFailed("no call in progress to hang up")
        data = {"call_state": "ended", **self._call_params()}
        if call.notify:
            return await self._post_to(call.notify, data)
        return await self._post(self.setup.channel, data)

    async def flow(self, spec: Mapping[str, Any], sender: str, name: str | None) -> Observation:
        if self.setup.provider != "textit":
            raise StepFailed("flow steps come from TextIt: set 'provider: textit'")
        results = {}
        for label, value in (spec.get("values") or {}).items():
            item = value if isinstance(value, dict) else {"value": value}
            key = "".join(ch if ch.isalnum() else "_" for ch in label.strip().lower()).strip("_")
            results[key] = {
                "name": label,
                "value": item["value"],
                "category": item.get("category") or "All Responses",
                "input": item.get("text") or item["value"],
            }
        doc: dict[str, Any] = {
            "contact": {"uuid": f"contact-{sender}", "urn": f"tel:{sender}", "name": name or ""},
            "flow": {"uuid": spec.get("uuid") or "flow-1", "name": spec.get("name") or ""},
            "run": {"uuid": f"run-{self._next_id()}"},
            "results": results,
            "channel": {"address": self.setup.number},
        }
        if spec.get("step"):
            doc["path"] = [{"node_uuid": spec["step"]}]
        if spec.get("text") is not None:
            doc["input"] = {"text": spec["text"], "type": "msg"}
        request = WebhookRequest((), json.dumps(doc).encode(), "application/json")
        return await self._deliver(self.setup.channel, request)

    async def webhook(self, params: Mapping[str, str]) -> Observation:
        return await self._post(self.setup.channel, dict(params))

    async def repeat(self) -> Observation:
        if self.last is None:
            raise StepFailed("no webhook to repeat yet")
        channel, request = self.last
        return await self._deliver(channel, request)

    # -- the clock -----------------------------------------------------------------------

    async def advance(self, to: float) -> Observation:
        """Move the clock on to ``to``, firing timers and releasing held calls on the way,
        each at its own due time."""
        if to < self.clock.now:
            raise StepFailed("the clock cannot go back")
        seen = Observation()
        for _ in range(MAX_TIMER_FIRINGS):
            due = [t for t in self.timers.values() if t <= to]
            due += [c.not_before for c in self.held if c.not_before is not None]
            moment = min([t for t in due if t <= to], default=None)
            if moment is None:
                break
            self.clock.now = max(self.clock.now, moment)
            self._release(seen)
            if not await self._fire(seen):
                # A timer the store already cleared: forget it.
                self.timers = {k: t for k, t in self.timers.items() if t > self.clock.now}
        else:
            raise StepFailed(f"more than {MAX_TIMER_FIRINGS} timers fired in one move")
        self.clock.now = to
        self._release(seen)
        await self._fire(seen)
        return seen

    def local_timestamp(self, local: datetime) -> float:
        return local.replace(tzinfo=self.setup.zone).timestamp()

    async def _fire(self, seen: Observation) -> bool:
        timers = await self.store.claim_timers(self.clock.now, LEASE, 32)
        for timer in timers:
            handled = await self.handling.timer(timer)
            if handled.fresh and handled.outcome is not None:
                self._record(handled.outcome, seen)
        return bool(timers)

    def _release(self, seen: Observation) -> None:
        due = [c for c in self.held if (c.not_before or 0) <= self.clock.now]
        self.held = [c for c in self.held if c not in due]
        seen.calls.extend(due)

    # -- plumbing ------------------------------------------------------------------------

    async def conversation_now(self) -> Conversation | None:
        key = self.conversation
        if key is None and self.setup.contact:
            key = conversation_key(self.setup.channel, self.setup.contact, None)
        return await self.store.get_conversation(key) if key else None

    def _call_params(self) -> dict[str, str]:
        assert self.call is not None
        params = {
            "txn_ref": self.call.txn_ref,
            "from": self.call.contact,
            "to": self.setup.number,
            "date": self._hoiio_date(),
        }
        if self.call.session:
            params["session"] = self.call.session
        return params

    async def _post(self, channel: str, data: Mapping[str, str]) -> Observation:
        request = WebhookRequest((), urlencode(data).encode(), "application/x-www-form-urlencoded")
        return await self._deliver(channel, request)

    async def _post_to(self, url: str, data: Mapping[str, str]) -> Observation:
        parts = urlsplit(url)
        channel = parts.path.rstrip("/").rsplit("/", 1)[-1]
        request = WebhookRequest(
            tuple(parse_qsl(parts.query, keep_blank_values=True)),
            urlencode(data).encode(),
            "application/x-www-form-urlencoded",
        )
        return await self._deliver(channel, request)

    async def _deliver(self, channel: str, request: WebhookRequest) -> Observation:
        """What the server's webhook handler does, minus HTTP: parse, key, decide, commit."""
        self.last = (channel, request)
        provider = PROVIDERS[self.setup.provider if channel == self.setup.channel else "hoiio"]
        event = provider.parse(channel, request)
        app_state = self._verified(event)
        key = provider.idempotency_key(event, request)
        seen = Observation()
        handled = await self.handling.webhook(provider, event, key, app_state)
        stored = handled.response
        if handled.fresh and handled.outcome is not None:
            self._record(handled.outcome, seen)
        if stored.body and stored.content_type == "application/json":
            seen.body = json.loads(stored.body)
            if isinstance(seen.body, dict) and isinstance(seen.body.get("text"), str):
                seen.reply = seen.body["text"]
        self._release(seen)
        return seen

    def _verified(self, event: Event) -> AppState | None:
        if event.provider != "hoiio" or event.app_state is None:
            return None
        if not event.raw.get("sig") and not looks_like_ours(event.app_state):
            return None
        try:
            return self.signer.verify(event.session, event.app_state, event.raw.get("sig"))
        except AppStateError as exc:
            raise StepFailed(f"the server would refuse this notification (403): {exc}") from None

    def _record(self, outcome: Outcome, seen: Observation) -> None:
        seen.matched.extend(outcome.matched)
        seen.errors.extend(outcome.errors)
        seen.moves.update(outcome.moves)
        if outcome.conversation is not None:
            self.conversation = outcome.conversation.key
            name = outcome.conversation.dialogue
            seen.visited.update((name, state) for state in outcome.conversation.visits)
        if outcome.timer is not None:
            if outcome.timer.due is None:
                self.timers.pop(outcome.timer.key, None)
            else:
                self.timers[outcome.timer.key] = outcome.timer.due
        for call in outcome.calls:
            if call.not_before is not None and call.not_before > self.clock.now:
                self.held.append(call)
                seen.held.append(call)
            else:
                seen.calls.append(call)
            self._follow(call)

    def _follow(self, call: OutboundCall) -> None:
        """Keep track of the IVR call the way Hoiio would."""
        if call.provider != "hoiio" or not call.endpoint.startswith("ivr/"):
            return
        notify = call.params.get("notify_url")
        if call.endpoint == "ivr/start/dial":
            n = self._next_id()
            self.call = _Call(None, f"AA-D-{n}", str(call.params.get("dest", "")))
        if self.call is None:
            return
        self.call.block = call.endpoint
        self.call.notify = str(notify) if notify else None

    def _iso(self) -> str:
        return datetime.fromtimestamp(self.clock.now, UTC).isoformat().replace("+00:00", "Z")

    def _hoiio_date(self) -> str:
        moment = datetime.fromtimestamp(self.clock.now, HOIIO_TZ)
        return moment.strftime("%Y-%m-%d %H:%M:%S")
