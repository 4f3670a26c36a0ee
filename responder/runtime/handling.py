"""The one handling pipeline: lock -> prepare (one store read) -> decide -> guard -> commit,
decided again on a conflict -> answer. The HTTP handler, the timer worker, ``responder test``,
``responder replay`` and ``responder simulate`` all handle events through it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final, NamedTuple

from responder.appstate import AppState
from responder.conversations import Timer
from responder.conversations import conversation_key as conversation_key_of
from responder.errors import ConflictError, StoreError
from responder.events import Event
from responder.outbound import Commit, StoredResponse, is_ivr_step
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


class Handling:
    """Handles events with one engine on one store; ``wake(ivr_steps)`` is told of every
    commit that queued outbound calls (the delivery worker's wake-up)."""

    def __init__(
        self,
        engine: Engine,
        locks: KeyedLocks,
        *,
        clock: Callable[[], float] = time.time,
        ttl: float = DEFAULT_TTL,
        wake: Callable[[int], None] | None = None,
    ) -> None:
        self.engine = engine
        self.locks = locks
        self.clock = clock
        self.ttl = ttl
        self.wake = wake

    @property
    def store(self) -> Store:
        return self.engine.store

    async def webhook(
        self, provider: Provider, event: Event, key: str, app_state: AppState | None = None
    ) -> Handled:
        """Handle a webhook's event once: a copy arriving while the first is handled waits
        for its stored response, and every later copy gets that response again."""
        CALLER.set("webhook")  # this request's own task: its store round trips
        async with self.locks.hold(conversation_key(event)):
            begun = time.perf_counter()
            prepared = await self.engine.prepare(event, key, app_state)
            if prepared.reads.response is not None:
                return Handled(prepared.reads.response, begun=begun)
            for attempt in range(1, CONFLICT_RETRIES + 1):
                if attempt > 1:  # decided again from what the store holds now
                    begun = time.perf_counter()
                    prepared = await self.engine.prepare(event, key, app_state)
                outcome = await self.engine.handle(event, key, app_state, prepared)
                decided = time.perf_counter()
                reply = provider.reply(event, outcome.reply_text, outcome.variables)
                response = StoredResponse(reply.status, reply.content_type, reply.body)
                commit = _commit(key, response, outcome, self.clock(), self.ttl)
                try:
                    stored, fresh = await self.engine.store.commit(commit)
                except ConflictError as exc:
                    # Another process moved the conversation on, or used up a limit this
                    # decision counted on: decide again from the new state.
                    log.info("conflict on %s (attempt %d): %s", key, attempt, exc)
                    continue
                if fresh and outcome.calls:
                    self._wake(outcome)
                return Handled(stored, outcome, commit, fresh, begun, decided, time.perf_counter())
        raise StoreError(f"conversation kept changing under {key}; gave up")

    async def timer(self, timer: Timer) -> Handled:
        """Fire a due timer. A firing that races a message is left for later: its timer is
        still in the store and is offered again when its lease runs out."""
        CALLER.set("timer")
        async with self.locks.hold(timer.key):
            begun = time.perf_counter()
            outcome, key = await self.engine.handle_timer(timer)
            decided = time.perf_counter()
            commit = _commit(key, NO_RESPONSE, outcome, self.clock(), self.ttl)
            try:
                stored, fresh = await self.engine.store.commit(commit)
            except ConflictError as exc:
                log.info("timer %s raced a message; offered again later: %s", timer.key, exc)
                return Handled(NO_RESPONSE, begun=begun, decided=decided)
        if fresh and outcome.calls:
            self._wake(outcome)
        return Handled(stored, outcome, commit, fresh, begun, decided, time.perf_counter())

    def _wake(self, outcome: Outcome) -> None:
        """Tell the delivery worker of calls a fresh commit queued."""
        if self.wake is not None:
            self.wake(sum(is_ivr_step(call) for call in outcome.calls))


def _commit(key: str, response: StoredResponse, outcome: Outcome, now: float, ttl: float) -> Commit:
    """Everything an outcome changes, to be written with the event's idempotency record."""
    return Commit(
        key=key,
        response=response,
        calls=outcome.calls,
        hits=outcome.hits,
        now=now,
        ttl=ttl,
        conversation=outcome.conversation,
        expected_version=outcome.expected_version,
        timer=outcome.timer,
        opt_outs=outcome.opt_outs,
        limits=outcome.limits,
    )
