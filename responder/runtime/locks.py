"""Per-key asyncio locks that disappear when nobody holds or waits for them.

Taking a free key costs two dictionary operations (no ``asyncio.Lock``, no generator): almost
every webhook takes its conversation's key uncontended. Waiters queue in arrival order; the
holder leaving hands the key to the first waiter still waiting.
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType


class KeyedLocks:
    def __init__(self) -> None:
        # A held key -> the futures of its waiters, first come first served.
        self._held: dict[str, deque[asyncio.Future[None]]] = {}

    def hold(self, key: str) -> _Hold:
        """``async with locks.hold(key):`` -- one holder per key at a time."""
        return _Hold(self, key)

    def __len__(self) -> int:
        return len(self._held)

    async def _acquire(self, key: str) -> None:
        waiters = self._held.get(key)
        if waiters is None:
            self._held[key] = deque()
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release(key)  # handed the key just as it was cancelled: pass it on
            elif turn in waiters:  # not yet passed over by a release
                waiters.remove(turn)
            raise

    def _release(self, key: str) -> None:
        waiters = self._held[key]
        while waiters:
            turn = waiters.popleft()
            if not turn.done():
                turn.set_result(None)  # the key passes to this waiter
                return
        del self._held[key]


class _Hold:
    __slots__ = ("_key", "_locks")

    def __init__(self, locks: KeyedLocks, key: str) -> None:
        self._locks = locks
        self._key = key

    async def __aenter__(self) -> None:
        await self._locks._acquire(self._key)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._locks._release(self._key)
