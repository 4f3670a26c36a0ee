"""The timer worker: fires due dialogue timers (reminders, give-ups) from the store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Final

from responder.clients.delivery import Delivery
from responder.conversations import ConflictError, Timer
from responder.engine import Engine
from responder.errors import StoreError
from responder.locks import KeyedLocks
from responder.outbound import Commit, StoredResponse

log = logging.getLogger("responder.timers")

LEASE: Final = 60.0  # a claimed timer is offered again after this if its firing did not commit
BATCH: Final = 32
POLL: Final = 1.0
NO_RESPONSE: Final = StoredResponse(200, "text/plain", b"")


class TimerWorker:
    """Claims due timers and steps their conversations; durable across restarts because the
    timers live in the store, not in this process."""

    def __init__(
        self,
        store: object,
        engine: Engine,
        locks: KeyedLocks,
        delivery: Delivery,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.store = engine.store
        self.locks = locks
        self.delivery = delivery
        self.clock = clock
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                fired = await self.fire_due()
            except StoreError as exc:
                log.error("timers unavailable: %s", exc)
                fired = 0
            if fired == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), POLL)

    async def fire_due(self) -> int:
        """Fire every timer due now; returns how many were claimed."""
        timers = await self.store.claim_timers(self.clock(), LEASE, BATCH)
        for timer in timers:
            await self._fire(timer)
        return len(timers)

    async def _fire(self, timer: Timer) -> None:
        async with self.locks.hold(timer.key):
            try:
                outcome, key = await self.engine.handle_timer(timer)
                commit = Commit(
                    key,
                    NO_RESPONSE,
                    outcome.calls,
                    outcome.hits,
                    self.clock(),
                    conversation=outcome.conversation,
                    expected_version=outcome.expected_version,
                    timer=outcome.timer,
                    limits=outcome.limits,
                )
                _, fresh = await self.store.commit(commit)
            except ConflictError as exc:
                log.info("timer %s raced a message; offered again later: %s", timer.key, exc)
                return
        log.info("timer fired for %s (step %d)", timer.key, timer.seq)
        if fresh and outcome.calls:
            self.delivery.wake()
