"""The timer worker: fires due dialogue timers (reminders, give-ups) from the store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Final

from responder.conversations import Timer
from responder.errors import StoreError
from responder.runtime.handling import Handled, Handling

log = logging.getLogger("responder.timers")

LEASE: Final = 60.0  # a claimed timer is offered again after this if its firing did not commit
BATCH: Final = 32
POLL: Final = 1.0


class TimerWorker:
    """Claims due timers and fires them through the handling pipeline; durable across
    restarts because the timers live in the store, not in this process."""

    def __init__(
        self,
        handling: Handling,
        *,
        clock: Callable[[], float] = time.time,
        fired: Callable[[Timer, Handled], None] | None = None,
    ) -> None:
        self.handling = handling
        self.store = handling.store
        self.clock = clock
        self.fired = fired  # told of every firing that committed
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
            handled = await self.handling.timer(timer)
            if handled.commit is not None:
                log.info("timer fired for %s (step %d)", timer.key, timer.seq)
                if self.fired is not None:
                    self.fired(timer, handled)
        return len(timers)
