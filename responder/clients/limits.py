"""Provider limits: concurrent requests and requests per window, shared through the store."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Final

from responder.errors import StoreError
from responder.outbound import OutboundCall, is_ivr_step
from responder.policy import RATE_MARGIN, DeliverySettings
from responder.stores.base import Slot, Store

log = logging.getLogger("responder.delivery")

# While another process holds every concurrency slot, look again this often.
SLOT_POLL: Final = 0.05


class Postponed(Exception):
    """A limit will not let the call go before its lease would need it back."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"limit reached; next slot in {wait:.1f}s")
        self.wait = wait


@dataclass(slots=True)
class Held:
    """What ``Limits.hold`` holds for a call: its concurrency slot, if its provider has a
    limit. A caller that gives the slot back itself (with the call's outcome, in one store
    write) sets ``slot`` to None, and the hold does not free it again."""

    slot: Slot | None = None


class Gate:
    """A semaphore whose waiters go in by priority (higher first), then in arrival order."""

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    async def acquire(self, priority: int = 0) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (-priority, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # handed over just as the waiter gave up: pass it on
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
                return
        self._free += 1

    @contextlib.asynccontextmanager
    async def hold(self, priority: int = 0) -> AsyncIterator[None]:
        await self.acquire(priority)
        try:
            yield
        finally:
            self.release()


class Limits:
    """Holds a call until its provider's concurrency and rate limits let it go.

    Concurrency is a slot per request in flight (freed when the answer is in, or when its
    time is up if this process died); a rate is a slot per request that is never freed, so
    at most ``count`` requests fall in any window of ``per`` seconds. The slots live in the
    store, so every process sharing it shares the limits; a local semaphore keeps this
    process's own waiters in line without polling, IVR blocks first.
    """

    def __init__(
        self, store: Store, settings: DeliverySettings, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self._id = uuid.uuid4().hex[:12]
        self._local: dict[str, Gate] = {}

    def _gate(self, provider: str, limit: int) -> Gate:
        gate = self._local.get(provider)
        if gate is None:
            gate = self._local[provider] = Gate(limit)
        return gate

    @contextlib.asynccontextmanager
    async def hold(self, call: OutboundCall, deadline: float) -> AsyncIterator[Held]:
        """Wait for the limits of ``call.provider``; raises Postponed when the wait would
        last past ``deadline``."""
        provider = call.provider
        limit = self.settings.max_concurrent(call)
        if limit is None:
            await self._rate(provider, deadline)
            yield Held()
            return
        async with self._gate(provider, limit).hold(int(is_ivr_step(call))):
            name, holder = f"busy:{provider}", f"{self._id}:{call.key}"
            hold_for = self.settings.call_timeout(call.timeout) + self.settings.lease / 4
            while True:
                now = self.clock()
                wait = await self.store.take_slot(name, limit, holder, now + hold_for, now)
                if wait <= 0:
                    break
                if now + min(wait, SLOT_POLL) > deadline:
                    raise Postponed(wait)
                await asyncio.sleep(min(wait, SLOT_POLL))
            held = Held((name, holder))
            try:
                await self._rate(provider, deadline)
                yield held
            finally:
                try:
                    if held.slot is not None:
                        await self.store.free_slot(name, holder)
                except StoreError as exc:  # the slot frees itself when its time is up
                    log.warning("could not free %s slot: %s", provider, exc)

    async def _rate(self, provider: str, deadline: float) -> None:
        rate = self.settings.rate(provider)
        if rate is None:
            return
        name = f"rate:{provider}"
        while True:
            now = self.clock()
            token = uuid.uuid4().hex
            wait = await self.store.take_slot(
                name, rate.count, token, now + rate.per + RATE_MARGIN, now
            )
            if wait <= 0:
                return
            if now + wait > deadline:
                raise Postponed(wait)
            await asyncio.sleep(wait)
