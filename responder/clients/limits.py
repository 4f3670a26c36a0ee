"""Provider limits: concurrent requests and requests per window, shared through the store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Final

from responder.errors import StoreError
from responder.outbound import OutboundCall
from responder.stores.base import Store

from .policy import RATE_MARGIN, DeliverySettings

log = logging.getLogger("responder.delivery")

# While another process holds every concurrency slot, look again this often.
SLOT_POLL: Final = 0.05


class Postponed(Exception):
    """A limit will not let the call go before its lease would need it back."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"limit reached; next slot in {wait:.1f}s")
        self.wait = wait


class Limits:
    """Holds a call until its provider's concurrency and rate limits let it go.

    Concurrency is a slot per request in flight (freed when the answer is in, or when its
    time is up if this process died); a rate is a slot per request that is never freed, so
    at most ``count`` requests fall in any window of ``per`` seconds. The slots live in the
    store, so every process sharing it shares the limits; a local semaphore keeps this
    process's own waiters in line without polling.
    """

    def __init__(
        self, store: Store, settings: DeliverySettings, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self._id = uuid.uuid4().hex[:12]
        self._local: dict[str, asyncio.Semaphore] = {}

    def _semaphore(self, provider: str, limit: int) -> asyncio.Semaphore:
        sem = self._local.get(provider)
        if sem is None:
            sem = self._local[provider] = asyncio.Semaphore(limit)
        return sem

    @contextlib.asynccontextmanager
    async def hold(self, call: OutboundCall, deadline: float) -> AsyncIterator[None]:
        """Wait for the limits of ``call.provider``; raises Postponed when the wait would
        last past ``deadline``."""
        provider = call.provider
        limit = self.settings.max_concurrent(provider)
        if limit is None:
            await self._rate(provider, deadline)
            yield
            return
        async with self._semaphore(provider, limit):
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
            try:
                await self._rate(provider, deadline)
                yield
            finally:
                try:
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
