"""One webhook's reads: fetched together up front, the rest read from the store when asked."""

from __future__ import annotations

from responder.conversations import Conversation
from responder.outbound import StoredResponse
from responder.stores.base import Snapshot, Store, Wanted


class Prefetched:
    """A ``Reader`` answering from one ``Store.snapshot`` what it holds, else from the store.

    Made for one decision at ``now``: after a conflict the webhook is decided again from a
    new one (``take``), so nothing is answered from a moment older than that decision.
    """

    __slots__ = ("_counts", "_store", "now", "snapshot", "wanted")

    def __init__(self, store: Store, wanted: Wanted, snapshot: Snapshot, now: float) -> None:
        self._store = store
        self.wanted = wanted
        self.snapshot = snapshot
        self.now = now
        self._counts = dict(zip(wanted.hits, snapshot.hits, strict=True))

    @classmethod
    async def take(cls, store: Store, wanted: Wanted, now: float) -> Prefetched:
        """Read ``wanted`` in one store call."""
        return cls(store, wanted, await store.snapshot(wanted), now)

    @property
    def response(self) -> StoredResponse | None:
        """The response stored for the webhook's idempotency key, if any."""
        return self.snapshot.response

    async def get_conversation(self, key: str) -> Conversation | None:
        if key == self.wanted.conversation:
            return self.snapshot.conversation
        return await self._store.get_conversation(key)

    async def opted_out(self, keys: list[str]) -> set[str]:
        contact = self.wanted.contact
        if contact is None or contact not in keys:
            return await self._store.opted_out(keys)
        others = [key for key in keys if key != contact]
        found = await self._store.opted_out(others) if others else set()
        if self.snapshot.opted_out:
            found.add(contact)
        return found

    async def count_hits(self, key: str, since: float) -> int:
        count = self._counts.get((key, since))
        return await self._store.count_hits(key, since) if count is None else count
