"""The one handling pipeline: lock -> prepare (one store read) -> decide -> guard -> commit,
decided again on a conflict -> answer. The HTTP handler, the timer worker, ``responder test``,
``responder replay`` and ``responder simulate`` all handle events through it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, NamedTuple, Protocol

from responder.appstate import AppState
from responder.conversations import Timer
from responder.conversations import conversation_key as conversation_key_of
from responder.errors import ConflictError, StoreError
from responder.events import Event
from responder.outbound import Commit, OutboundCall, StoredResponse, is_ivr_step
from responder.providers.base import Provider
from responder.runtime.engine import Engine
from responder.runtime.locks import KeyedLocks
from responder.runtime.outcome import Outcome
from responder.stores.base import CALLER, Store

log = logging.getLogger("responder.handling")

CONFLICT_RETRIES: Final = 5
# What a timer's firing stores as its answer: it has no webhook to answer.
NO_RESPONSE: Final = StoredResponse(200, "text/plain", b"")
DEFAULT_TTL: Final = 7 * 86400.0


def conversation_key(event: Event) -> str:
    """Events of one conversation are handled one after the other."""
    if event.session:
        return conversation_key_of(event.channel, None, event.session)
    return conversation_key_of(event.channel, event.contact or event.contact_uuid, None)


class Handled(NamedTuple):
    """What handling one event came to (a named tuple: one is made for every webhook, and a
    frozen dataclass costs a call per field to make).

    ``outcome`` and ``commit`` are None when the event had been handled before (its stored
    ``response`` is given again) or, for a timer, when its firing lost a race. ``fresh`` is
    whether this handling's commit was the one that counted. The times are
    ``time.perf_counter()`` readings: when the decision began, when it was made, and when
    it was committed.
    """

    response: StoredResponse
    outcome: Outcome | None = None
    commit: Commit | None = None
    fresh: bool = False
    begun: float = 0.0
    decided: float = 0.0
    committed: float = 0.0


class Dispatch(Protocol):
    """Where the outbound calls of a fresh commit go (the delivery worker)."""

    @property
    def hold_for(self) -> float:
        """Seconds an IVR step written claimed for its committer stays claimed."""
        ...

    def wake(self, ivr_steps: int) -> None:
        """Calls were queued for a claim; ``ivr_steps`` of them are IVR blocks."""
        ...

    def send_now(self, calls: Sequence[OutboundCall], now: float) -> asyncio.Future[Any] | None:
        """Send calls the store wrote claimed for this process; done when all are."""
        ...

    async def pace(self, sending: asyncio.Future[Any]) -> None:
        """Hold a webhook's answer while IVR steps are sent more slowly than they come."""
        ...


class Handling:
    """Handles events with one engine on one store; ``dispatch`` is told of every commit
    that queued outbound calls, and sends the IVR steps written claimed for it at once."""

    def __init__(
        self,
        engine: Engine,
        locks: KeyedLocks,
        *,
        clock: Callable[[], float] = time.time,
        ttl: float = DEFAULT_TTL,
        dispatch: Dispatch | None = None,
    ) -> None:
        self.engine = engine
        self.locks = locks
        self.clock = clock
        self.ttl = ttl
        self.dispatch = dispatch

    @property
    def store(self) -> Store:
        return self.engine.store

    async def webhook(
        self, provider: Provider, event: Event, key: str, app_state: AppState | None = None
    ) -> Handled:
        """Handle a webhook's event once: a copy arriving while the first is handled waits
        for its stored response, and every later copy gets that response again."""
        CALLER.set("webhook")  # this request's own task: its store round trips
        handled, sending = await self._webhook(provider, event, key, app_state)
        if sending is not None and self.dispatch is not None:
            await self.dispatch.pace(sending)  # outside the lock: the next step may begin
        return handled

    async def _webhook(
        self, provider: Provider, event: Event, key: str, app_state: AppState | None
    ) -> tuple[Handled, asyncio.Future[Any] | None]:
        async with self.locks.hold(conversation_key(event)):
            begun = time.perf_counter()
            prepared = await self.engine.prepare(event, key, app_state)
            if prepared.reads.response is not None:
                return Handled(prepared.reads.response, begun=begun), None
            for attempt in range(1, CONFLICT_RETRIES + 1):
                if attempt > 1:  # decided again from what the store holds now
                    begun = time.perf_counter()
                    prepared = await self.engine.prepare(event, key, app_state)
                outcome = await self.engine.handle(event, key, app_state, prepared)
                decided = time.perf_counter()
                reply = provider.reply(event, outcome.reply_text, outcome.variables)
                response = StoredResponse(reply.status, reply.content_type, reply.body)
                commit = self._commit(key, response, outcome)
                try:
                    stored, fresh, held = await self.engine.store.commit(commit)
                except ConflictError as exc:
                    # Another process moved the conversation on, or used up a limit this
                    # decision counted on: decide again from the new state.
                    log.info("conflict on %s (attempt %d): %s", key, attempt, exc)
                    continue
                sending = self._dispatch(commit, held) if fresh and outcome.calls else None
                handled = Handled(
                    stored, outcome, commit, fresh, begun, decided, time.perf_counter()
                )
                return handled, sending
        raise StoreError(f"conversation kept changing under {key}; gave up")

    async def timer(self, timer: Timer) -> Handled:
        """Fire a due timer. A firing that races a message is left for later: its timer is
        still in the store and is offered again when its lease runs out."""
        CALLER.set("timer")
        async with self.locks.hold(timer.key):
            begun = time.perf_counter()
            outcome, key = await self.engine.handle_timer(timer)
            decided = time.perf_counter()
            commit = self._commit(key, NO_RESPONSE, outcome)
            try:
                stored, fresh, held = await self.engine.store.commit(commit)
            except ConflictError as exc:
                log.info("timer %s raced a message; offered again later: %s", timer.key, exc)
                return Handled(NO_RESPONSE, begun=begun, decided=decided)
        if fresh and outcome.calls:
            self._dispatch(commit, held)
        return Handled(stored, outcome, commit, fresh, begun, decided, time.perf_counter())

    def _commit(self, key: str, response: StoredResponse, outcome: Outcome) -> Commit:
        """Everything an outcome changes, to be written with the event's idempotency record;
        its IVR steps are written claimed for this process when it has a dispatch."""
        now = self.clock()
        dispatch = self.dispatch
        return Commit(
            key=key,
            response=response,
            calls=outcome.calls,
            hits=outcome.hits,
            now=now,
            ttl=self.ttl,
            conversation=outcome.conversation,
            expected_version=outcome.expected_version,
            timer=outcome.timer,
            opt_outs=outcome.opt_outs,
            limits=outcome.limits,
            hold_until=now + dispatch.hold_for if dispatch is not None and outcome.calls else 0.0,
        )

    def _dispatch(self, commit: Commit, held: tuple[str, ...]) -> asyncio.Future[Any] | None:
        """Send the calls written claimed for this process; wake the worker for the rest."""
        if self.dispatch is None:
            return None
        ours = [call for call in commit.calls if call.key in held] if held else []
        ivr_steps = sum(is_ivr_step(call) for call in commit.calls) - len(ours)
        if len(ours) < len(commit.calls):
            self.dispatch.wake(ivr_steps)
        return self.dispatch.send_now(ours, commit.now) if ours else None
