"""The Store protocol every backend implements, and the contract its tests hold it to."""

from __future__ import annotations

from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final, Protocol

from responder.conversations import Conversation, Timer
from responder.outbound import Commit, Committed, OutboxItem, StoredResponse
from responder.retention import DEFAULT_RETENTION, Retention

# A concurrency slot as ``take_slot`` took it: (slot name, holder).
Slot = tuple[str, str]
# Who is using the store: "webhook", "delivery", "timer" or "other". A networked backend
# counts its round trips by it (``round_trips``), so a benchmark can tell what one webhook
# and one delivered call cost.
CALLER: Final[ContextVar[str]] = ContextVar("store_caller", default="other")


def round_trips() -> Counter[str]:
    """A fresh round-trip count by caller (empty for a backend that makes none)."""
    return Counter()


@dataclass(frozen=True, slots=True)
class Depth:
    """How much work is waiting in a store (for metrics)."""

    outbox_pending: int = 0
    outbox_dead: int = 0
    timers: int = 0
    conversations: int = 0  # active ones


@dataclass(frozen=True, slots=True)
class Wanted:
    """What a webhook will most likely read, fetched together by ``Store.snapshot``."""

    key: str  # an idempotency key: its stored response
    conversation: str | None = None  # a conversation key
    contact: str | None = None  # a contact key: whether it has opted out
    hits: tuple[tuple[str, float], ...] = ()  # (hit key, since): hits counted since then


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What ``Store.snapshot`` read for a ``Wanted``, all at one moment."""

    response: StoredResponse | None = None
    conversation: Conversation | None = None
    opted_out: bool = False  # the contact's mark (False when no contact was asked for)
    hits: tuple[int, ...] = ()  # one count per ``Wanted.hits``, in order


class Reader(Protocol):
    """The reads the engine and the compliance guard make while deciding."""

    async def get_conversation(self, key: str) -> Conversation | None: ...

    async def opted_out(self, keys: list[str]) -> set[str]:
        """Which of these contact keys have opted out."""
        ...

    async def count_hits(self, key: str, since: float) -> int: ...


class Store(Protocol):
    """Durable state: idempotency records, the outbox and rate-limit hits.

    ``commit`` is the only write of a webhook and is atomic: when the key is already
    recorded it writes nothing and returns the response stored first.
    """

    round_trips: Counter[str]  # requests over the network, by CALLER

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def get_response(self, key: str) -> StoredResponse | None: ...

    async def snapshot(self, wanted: Wanted) -> Snapshot:
        """Everything ``wanted`` names, in one read of the store (one consistent moment)."""
        ...

    async def commit(self, commit: Commit) -> Committed:
        """Write ``commit``; returns the stored response, whether this call wrote it and the
        IVR steps it wrote claimed for the caller (``Commit.hold_until``)."""
        ...

    async def count_hits(self, key: str, since: float) -> int: ...

    async def secret(self, name: str) -> bytes:
        """A random 32-byte secret created once and shared by every process on this store."""
        ...

    async def opted_out(self, keys: list[str]) -> set[str]:
        """Which of these contact keys have opted out."""
        ...

    async def get_conversation(self, key: str) -> Conversation | None: ...

    async def claim_timers(self, now: float, lease: float, limit: int) -> list[Timer]:
        """Timers due by ``now``, leased for ``lease`` seconds (fired once unless the lease
        runs out before the firing commits)."""
        ...

    async def count_conversations(self, status: str = "active") -> int: ...

    async def find_conversations(
        self, contact: str | None = None, limit: int = 50
    ) -> list[Conversation]:
        """Conversations for inspection, the last updated first; only ``contact``'s when given.

        Not on any webhook's path: a backend may scan (and bound the scan) rather than keep
        an index that every commit would have to write.
        """
        ...

    async def get_timer(self, key: str) -> Timer | None:
        """The timer a conversation has pending, if any (for inspection)."""
        ...

    async def depth(self) -> Depth:
        """Pending and dead outbox items, pending timers and active conversations."""
        ...

    async def claim_outbox(self, now: float, lease: float, limit: int) -> list[OutboxItem]:
        """Pending items due by ``now``, leased for ``lease`` seconds so no one else takes them.

        Only the head of each lane (``lane_of``) is offered: an item waits while an item of
        its lane enqueued before it is still pending (leased, or waiting for a retry). IVR
        steps (``is_ivr_step``) come first, then by due time and commit order.
        """
        ...

    async def finish_outbox(
        self, key: str, status: str, detail: str | None, now: float, slot: Slot | None = None
    ) -> None:
        """Mark an item done: ``sent``, ``dry_run`` or ``dead`` (a permanent failure); with
        ``slot``, give that slot back in the same write (as ``free_slot`` would)."""
        ...

    async def retry_outbox(self, key: str, next_at: float, error: str) -> None:
        """Count a failed attempt and make the item due again at ``next_at``."""
        ...

    async def release_outbox(self, key: str, next_at: float) -> None:
        """Give a claimed item back, due at ``next_at``, without counting an attempt."""
        ...

    async def requeue_outbox(self, key: str, now: float) -> bool:
        """Make a dead item pending again (attempts from zero, enqueued ``now``); False when
        there is no dead item with this key."""
        ...

    async def outbox(self, status: str | None = None, limit: int = 100) -> list[OutboxItem]:
        """Items for inspection, newest first."""
        ...

    async def take_slot(self, key: str, limit: int, holder: str, until: float, now: float) -> float:
        """Take one of ``limit`` slots named ``key`` for ``holder`` until ``until`` (or until
        ``free_slot``). Returns 0.0 when taken, else the seconds until a slot frees.

        A rate limit is slots that are never freed (``until = now + period``); a concurrency
        limit frees its slot when the call is done. Shared by every process on the store.
        """
        ...

    async def free_slot(self, key: str, holder: str) -> None:
        """Give a slot back before its time is up."""
        ...

    async def purge(self, now: float, retention: Retention = DEFAULT_RETENTION) -> int:
        """Drop what is done with: expired idempotency records, finished outbox items, hits,
        conversations (those without a timer), opt-in marks and slots, each after its time in
        ``retention``; returns how many records went."""
        ...
