"""The delivery worker: drains the outbox, retrying what may succeed later."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Final

from responder.errors import DeliveryError, StoreError
from responder.outbound import OutboxItem
from responder.stores.base import Store

from .sender import Sender, loggable_endpoint

log = logging.getLogger("responder.delivery")

MAX_ATTEMPTS: Final = 8
BASE_BACKOFF: Final = 2.0
MAX_BACKOFF: Final = 600.0
LEASE: Final = 60.0  # a claimed item is re-offered after this if its sender died
BATCH: Final = 32
IDLE_POLL: Final = 1.0


def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter; ``Retry-After`` is a floor."""
    delay = random.uniform(0, min(MAX_BACKOFF, BASE_BACKOFF * 2**attempt))  # noqa: S311
    return max(delay, retry_after or 0.0)


class Delivery:
    """Claims due outbox items and sends them; ``wake()`` after a commit skips the poll wait."""

    def __init__(
        self,
        store: Store,
        sender: Sender,
        *,
        concurrency: int = 8,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.sender = sender
        self.clock = clock
        self._wake = asyncio.Event()
        self._limit = asyncio.Semaphore(concurrency)
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            try:
                sent = await self.drain_once()
            except StoreError as exc:
                log.error("outbox unavailable: %s", exc)
                sent = 0
            if sent == 0 and not self._stopping:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), IDLE_POLL)

    async def drain_once(self) -> int:
        """Send every item due now; returns how many were attempted."""
        items = await self.store.claim_outbox(self.clock(), LEASE, BATCH)
        # Calls to one contact go out in the order they were made (hang up, then SMS);
        # different contacts proceed in parallel.
        lanes: dict[str, list[OutboxItem]] = {}
        for item in items:
            lanes.setdefault(item.call.contact or item.call.key, []).append(item)
        if lanes:
            await asyncio.gather(*(self._lane(lane) for lane in lanes.values()))
        return len(items)

    async def _lane(self, items: list[OutboxItem]) -> None:
        for item in items:
            await self._deliver(item)

    async def _deliver(self, item: OutboxItem) -> None:
        call = item.call
        async with self._limit:
            try:
                result = await self.sender.send(call)
            except DeliveryError as exc:
                attempts = item.attempts + 1
                if exc.retry and attempts < MAX_ATTEMPTS:
                    delay = backoff(attempts, exc.retry_after)
                    log.warning(
                        "delivery %s failed (attempt %d), retrying in %.1fs: %s",
                        call.key,
                        attempts,
                        delay,
                        exc,
                    )
                    await self.store.retry_outbox(call.key, self.clock() + delay, str(exc))
                else:
                    log.error(
                        "delivery %s failed for good after %d attempt(s): %s",
                        call.key,
                        attempts,
                        exc,
                    )
                    await self.store.finish_outbox(call.key, "dead", str(exc), self.clock())
                return
            except Exception as exc:  # a bug must not kill the worker or lose the item
                log.exception("delivery %s crashed", call.key)
                await self.store.retry_outbox(
                    call.key,
                    self.clock() + backoff(item.attempts + 1),
                    f"{type(exc).__name__}: {exc}",
                )
                return
        log.info(
            "delivered %s via %s %s (%s, rule %s)",
            call.key,
            call.provider,
            loggable_endpoint(call),
            result,
            call.rule,
        )
        await self.store.finish_outbox(call.key, result, None, self.clock())
