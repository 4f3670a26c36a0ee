"""The delivery worker: drains the outbox, retrying what may succeed later."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from responder.errors import DeliveryError, StoreError
from responder.outbound import OutboundCall, OutboxItem, is_ivr_step
from responder.policy import IVR_MAX_AGE, IVR_PACE_AFTER, IVR_PACE_WAIT, DeliverySettings
from responder.printable import one_line
from responder.stores.base import CALLER, Store

from .limits import Held, Limits, Postponed
from .sender import Sender, loggable_endpoint

log = logging.getLogger("responder.delivery")

IDLE_POLL: Final = 1.0  # look for due retries this often when nothing wakes the worker
# IVR blocks may be in flight beyond the worker's bound by this many: a caller is waiting.
IVR_RESERVE: Final = 8
STORE_PAUSE: Final = 1.0  # after a store error, wait this long before claiming again


class Delivery:
    """Claims due outbox items and sends them; ``wake()`` after a commit skips the poll wait.

    At most ``settings.concurrency`` items are in flight (claimed and not finished), plus
    up to IVR_RESERVE IVR blocks when a commit brings some while the worker is full; the
    store offers one item per lane at a time, so calls to one contact keep their order even
    while the first of them waits for a retry.

    An IVR step that a webhook's commit wrote already claimed for this process (first in
    its lane: ``Commit.hold_until``) skips the claim: ``send_now`` sends it at once, within
    the provider's limits like any other. While more than IVR_PACE_AFTER of them are in
    flight, ``pace`` holds each webhook's answer until its own step is out (IVR_PACE_WAIT
    at most), so a sender cannot queue steps faster than they go out.
    """

    def __init__(
        self,
        store: Store,
        sender: Sender,
        *,
        settings: DeliverySettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.sender = sender
        self.settings = settings or DeliverySettings()
        self.clock = clock
        self.limits = Limits(store, self.settings, clock)
        self._wake = asyncio.Event()
        self._accepting = True
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._urgent = 0
        self._sending_now = 0  # steps sent by send_now, not finished yet

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    @property
    def hold_for(self) -> float:
        """An IVR step written claimed for this process stays claimed for a lease."""
        return self.settings.lease

    def send_now(self, calls: Sequence[OutboundCall], now: float) -> asyncio.Future[Any] | None:
        """Send calls the store wrote claimed for this process (their commit ran at ``now``);
        the returned future is done when every one of them is finished with."""
        tasks = []
        for call in calls:
            if call.key in self._inflight:
                continue
            self._sending_now += 1
            tasks.append(self._start(OutboxItem(call, 0, "pending", None, now, now), True))
        if not tasks:
            return None
        return asyncio.gather(*tasks)

    async def pace(self, sending: asyncio.Future[Any]) -> None:
        """Wait for ``sending`` (IVR_PACE_WAIT seconds at most) when more than
        IVR_PACE_AFTER steps sent at once are still in flight; else return at once."""
        if self._sending_now <= IVR_PACE_AFTER or sending.done():
            return
        await asyncio.wait([sending], timeout=IVR_PACE_WAIT)

    def wake(self, ivr_steps: int = 0) -> None:
        """New calls were committed; ``ivr_steps`` of them are IVR blocks for a live call."""
        self._urgent += ivr_steps
        self._wake.set()

    def stop(self) -> None:
        """Claim nothing more; calls in flight go on (see ``shutdown``)."""
        self._accepting = False
        self._wake.set()

    async def run(self) -> None:
        CALLER.set("delivery")  # run is a task of its own: its claims count as delivery
        while self._accepting:
            self._wake.clear()
            try:
                claimed = await self._claim()
            except StoreError as exc:
                log.error("outbox unavailable: %s", exc)
                await asyncio.sleep(STORE_PAUSE)
                continue
            if claimed == 0 and self._accepting:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), IDLE_POLL)

    async def shutdown(self, grace: float | None = None) -> int:
        """Stop claiming, give calls in flight ``grace`` seconds to finish, then cancel the
        rest (their items stay in the outbox); returns how many were cancelled."""
        self.stop()
        grace = self.settings.shutdown_grace if grace is None else grace
        tasks = list(self._inflight.values())
        if not tasks:
            return 0
        _, late = await asyncio.wait(tasks, timeout=grace)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
            log.warning(
                "%d call(s) still in flight after %.0fs; they stay in the outbox", len(late), grace
            )
        return len(late)

    async def _claim(self) -> int:
        room = self.settings.concurrency - len(self._inflight)
        urgent, self._urgent = self._urgent, 0
        ivr_only = room <= 0
        if ivr_only:
            room = min(urgent, self.settings.concurrency + IVR_RESERVE - len(self._inflight))
            if room <= 0:
                return 0
        now = self.clock()
        items = await self.store.claim_outbox(now, self.settings.lease, room)
        for item in items:
            key = item.call.key
            if key in self._inflight:  # its lease ran out while it was still being sent
                continue
            if ivr_only and not is_ivr_step(item.call):
                await self.store.release_outbox(key, now)  # it waits for a free place
                continue
            self._start(item)
        return len(items)

    def _start(self, item: OutboxItem, sent_now: bool = False) -> asyncio.Task[None]:
        """Deliver ``item`` in a task of its own, counted in flight until it is done."""
        key = item.call.key
        task = asyncio.create_task(self._deliver(item), name=f"deliver {key}")
        self._inflight[key] = task
        task.add_done_callback(lambda _: self._finished(key, sent_now))
        return task

    def _finished(self, key: str, sent_now: bool = False) -> None:
        self._inflight.pop(key, None)
        if sent_now:
            self._sending_now -= 1
        self._wake.set()  # room for another item, and maybe the next one of this lane

    async def drain_once(self) -> int:
        """Send every item due now, lane after lane; returns how many were attempted."""
        total = 0
        while True:
            items = await self.store.claim_outbox(
                self.clock(), self.settings.lease, self.settings.concurrency
            )
            if not items:
                return total
            await asyncio.gather(*(self._deliver(item) for item in items))
            total += len(items)

    async def _deliver(self, item: OutboxItem) -> None:
        CALLER.set("delivery")  # a task of its own (or drain_once's, all delivery)
        call = item.call
        claimed = self.clock()
        max_age = IVR_MAX_AGE if is_ivr_step(call) else self.settings.max_age
        if claimed - item.enqueued > max_age:
            await self._dead(item, f"not sent within {max_age:g}s of its commit", item.attempts)
            return
        try:
            async with self.limits.hold(call, claimed + self.settings.lease / 4) as held:
                result = await self._attempt(item, max_age)
                if result is not None:
                    await self._sent(call, result, held)
        except Postponed as wait:
            log.info("delivery %s waits %.1fs for the %s limit", call.key, wait.wait, call.provider)
            await self._store(self.store.release_outbox(call.key, self.clock() + wait.wait))
        except StoreError as exc:
            log.error("delivery %s: store unavailable, offered again later: %s", call.key, exc)
        except Exception as exc:  # a bug must not kill the worker or lose the item
            await self._crashed(item, exc)

    async def _attempt(self, item: OutboxItem, max_age: float) -> str | None:
        """Send the call: its outcome, or None when it failed (the failure recorded)."""
        call = item.call
        try:
            return await self.sender.send(call, self.settings.call_timeout(call.timeout))
        except DeliveryError as exc:
            await self._failed(item, exc, max_age)
        except StoreError:
            raise
        except Exception as exc:  # a bug must not kill the worker or lose the item
            await self._crashed(item, exc)
        return None

    async def _crashed(self, item: OutboxItem, exc: Exception) -> None:
        """A fault of our own while delivering: tried again like a transient failure, within
        the same try limit, so that no fault can hold a contact's lane for long."""
        log.exception("delivery %s crashed", one_line(item.call.key))
        attempts = item.attempts + 1
        error = one_line(f"{type(exc).__name__}: {exc}", 300)
        if attempts >= self.settings.max_attempts:
            await self._dead(item, f"{error} (gave up after {attempts} tries)")
            return
        delay = self.settings.backoff(attempts)
        await self._store(self.store.retry_outbox(item.call.key, self.clock() + delay, error))

    async def _sent(self, call: OutboundCall, result: str, held: Held) -> None:
        """Record a call that went out, giving its slot back in the same store write."""
        log.info(
            "delivered %s via %s %s (%s, rule %s)",
            call.key,
            call.provider,
            loggable_endpoint(call),
            result,
            call.rule,
        )
        write = self.store.finish_outbox(call.key, result, None, self.clock(), held.slot)
        if await self._store(write):
            held.slot = None  # given back with the outcome

    async def _failed(self, item: OutboxItem, exc: DeliveryError, max_age: float) -> None:
        call = item.call
        attempts = item.attempts + 1
        if not exc.retry:
            await self._dead(item, str(exc))
            return
        if attempts >= self.settings.max_attempts:
            await self._dead(item, f"{exc} (gave up after {attempts} tries)")
            return
        delay = self.settings.backoff(attempts, exc.retry_after)
        next_at = self.clock() + delay
        if next_at - item.enqueued > max_age:
            await self._dead(item, f"{exc} (a retry would be later than {max_age:g}s)")
            return
        log.warning(
            "delivery %s failed (try %d), retrying in %.1fs: %s", call.key, attempts, delay, exc
        )
        if await self._store(self.store.retry_outbox(call.key, next_at, str(exc))) and (
            delay < IDLE_POLL
        ):
            # Due before the next look: wake the worker then rather than at the next poll.
            asyncio.get_running_loop().call_later(delay, self._wake.set)

    async def _dead(self, item: OutboxItem, reason: str, tries: int | None = None) -> None:
        call = item.call
        tries = item.attempts + 1 if tries is None else tries
        log.error(
            "delivery %s (%s %s, rule %s) is dead after %d tr%s: %s",
            call.key,
            call.provider,
            loggable_endpoint(call),
            call.rule,
            tries,
            "y" if tries == 1 else "ies",
            reason,
        )
        await self._store(self.store.finish_outbox(call.key, "dead", reason, self.clock()))

    async def _store(self, write: Awaitable[None]) -> bool:
        """Record an outcome; False when the store failed: the lease runs out and the item is
        offered again (a call that went out may then go out twice: logged as such)."""
        try:
            await write
        except StoreError as exc:
            log.error("could not record a delivery outcome (offered again later): %s", exc)
            return False
        return True
