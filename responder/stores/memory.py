"""An in-process store for tests and experiments; nothing survives a restart."""

from __future__ import annotations

import bisect
import secrets
from dataclasses import dataclass

from responder.conversations import Conversation, Timer
from responder.errors import ConflictError
from responder.outbound import (
    Commit,
    Committed,
    OutboundCall,
    OutboxItem,
    StoredResponse,
    holdable,
    is_ivr_step,
    lane_of,
)
from responder.retention import DEFAULT_RETENTION, Retention
from responder.stores.base import Depth, Slot, Snapshot, Wanted, round_trips

HIT_HORIZON = DEFAULT_RETENTION.hits  # by default, hits older than this are dropped


@dataclass(slots=True)
class _Row:
    call: OutboundCall
    created: float
    next_at: float
    seq: int
    enqueued: float
    attempts: int = 0
    status: str = "pending"
    last_error: str | None = None

    def item(self) -> OutboxItem:
        return OutboxItem(
            self.call, self.attempts, self.status, self.last_error, self.created, self.enqueued
        )


class MemoryStore:
    def __init__(self) -> None:
        self.round_trips = round_trips()  # none: it lives in this process
        self._responses: dict[str, tuple[StoredResponse, float]] = {}
        self._outbox: dict[str, _Row] = {}
        self._hits: dict[str, list[float]] = {}
        self._conversations: dict[str, Conversation] = {}
        self._timers: dict[str, list[float]] = {}
        self._secrets: dict[str, bytes] = {}
        self._opt_outs: dict[str, bool] = {}  # key -> [due, seq, next offer]
        self._slots: dict[str, dict[str, float]] = {}  # key -> holder -> until
        self._seq = 0

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def get_response(self, key: str) -> StoredResponse | None:
        found = self._responses.get(key)
        return found[0] if found else None

    async def snapshot(self, wanted: Wanted) -> Snapshot:
        found = self._responses.get(wanted.key)
        conv = wanted.conversation
        return Snapshot(
            found[0] if found else None,
            None if conv is None else self._conversations.get(conv),
            wanted.contact is not None and self._opt_outs.get(wanted.contact, False),
            tuple(self._hits_since(key, since) for key, since in wanted.hits),
        )

    async def commit(self, commit: Commit) -> Committed:
        # No await inside: the check and the writes happen as one step of the event loop.
        existing = self._responses.get(commit.key)
        if existing is not None:
            return Committed(existing[0], False)
        # Store what a durable backend would read back, and fail (writing nothing) on a call
        # it could not store: serialise every call before the first write.
        calls = [OutboundCall.from_json(call.to_json()) for call in commit.calls]
        conversation = None
        if commit.conversation is not None:
            key = commit.conversation.key
            stored = self._conversations.get(key)
            version = stored.version if stored else 0
            if version != commit.expected_version:
                raise ConflictError(
                    f"conversation {key!r} is at version {version}, "
                    f"expected {commit.expected_version}"
                )
            conversation = Conversation.from_json(
                commit.conversation.with_version(version + 1).to_json()
            )
        over = commit.over_limit(self._hits_since)
        if over is not None:
            raise ConflictError(f"limit {over.key!r} reached meanwhile (at most {over.most})")
        self._responses[commit.key] = (commit.response, commit.now + commit.ttl)
        hold = holdable(commit)
        busy = self._busy_lanes(set(hold.values())) if hold else set()
        held: list[str] = []
        for call in calls:
            if call.key not in self._outbox:
                due = max(commit.now, call.not_before or 0.0)
                lane = hold.get(call.key)
                if lane is not None and lane not in busy:
                    due = commit.hold_until
                    held.append(call.key)
                self._seq += 1
                self._outbox[call.key] = _Row(call, commit.now, due, self._seq, commit.now)
        for contact, opted_out in commit.opt_outs:
            if opted_out:
                self._opt_outs[contact] = True
            else:
                self._opt_outs.pop(contact, None)  # no mark reads as opted in
        for key in commit.hits:
            bisect.insort(self._hits.setdefault(key, []), commit.now)
        if conversation is not None:
            self._conversations[conversation.key] = conversation
        if commit.timer is not None:
            if commit.timer.due is None:
                self._timers.pop(commit.timer.key, None)
            else:
                self._timers[commit.timer.key] = [
                    commit.timer.due,
                    commit.timer.seq,
                    commit.timer.due,
                ]
        return Committed(commit.response, True, tuple(held))

    def _busy_lanes(self, lanes: set[str]) -> set[str]:
        """Which of these lanes have an item pending."""
        return {
            lane
            for row in self._outbox.values()
            if row.status == "pending" and (lane := lane_of(row.call)) in lanes
        }

    async def secret(self, name: str) -> bytes:
        return self._secrets.setdefault(name, secrets.token_bytes(32))

    async def opted_out(self, keys: list[str]) -> set[str]:
        return {k for k in keys if self._opt_outs.get(k)}

    async def get_conversation(self, key: str) -> Conversation | None:
        return self._conversations.get(key)

    async def claim_timers(self, now: float, lease: float, limit: int) -> list[Timer]:
        due = sorted((t[2], k) for k, t in self._timers.items() if t[2] <= now)[:limit]
        out = []
        for _, key in due:
            timer = self._timers[key]
            timer[2] = now + lease
            out.append(Timer(key, timer[0], int(timer[1])))
        return out

    async def count_conversations(self, status: str = "active") -> int:
        return sum(1 for c in self._conversations.values() if c.status == status)

    async def find_conversations(
        self, contact: str | None = None, limit: int = 50
    ) -> list[Conversation]:
        found = [c for c in self._conversations.values() if contact is None or c.contact == contact]
        found.sort(key=lambda c: c.updated, reverse=True)
        return found[:limit]

    async def get_timer(self, key: str) -> Timer | None:
        timer = self._timers.get(key)
        return None if timer is None else Timer(key, timer[0], int(timer[1]))

    async def depth(self) -> Depth:
        statuses = [r.status for r in self._outbox.values()]
        return Depth(
            outbox_pending=statuses.count("pending"),
            outbox_dead=statuses.count("dead"),
            timers=len(self._timers),
            conversations=await self.count_conversations(),
        )

    async def count_hits(self, key: str, since: float) -> int:
        return self._hits_since(key, since)

    def _hits_since(self, key: str, since: float) -> int:
        times = self._hits.get(key, [])
        return len(times) - bisect.bisect_left(times, since)

    async def claim_outbox(self, now: float, lease: float, limit: int) -> list[OutboxItem]:
        heads: dict[str, _Row] = {}
        for row in self._outbox.values():
            if row.status != "pending":
                continue
            lane = lane_of(row.call)
            head = heads.get(lane)
            if head is None or (row.enqueued, row.seq) < (head.enqueued, head.seq):
                heads[lane] = row
        due = sorted(
            (r for r in heads.values() if r.next_at <= now),
            key=lambda r: (-int(is_ivr_step(r.call)), r.next_at, r.enqueued, r.seq),
        )[:limit]
        for row in due:
            row.next_at = now + lease
        return [r.item() for r in due]

    async def finish_outbox(
        self, key: str, status: str, detail: str | None, now: float, slot: Slot | None = None
    ) -> None:
        if slot is not None:
            await self.free_slot(*slot)
        row = self._outbox.get(key)
        if row is not None:
            row.status = status
            row.next_at = now  # when it finished: what its retention counts from
            row.last_error = detail if status == "dead" else row.last_error

    async def retry_outbox(self, key: str, next_at: float, error: str) -> None:
        row = self._outbox.get(key)
        if row is not None:
            row.attempts += 1
            row.next_at = next_at
            row.last_error = error

    async def release_outbox(self, key: str, next_at: float) -> None:
        row = self._outbox.get(key)
        if row is not None and row.status == "pending":
            row.next_at = next_at

    async def requeue_outbox(self, key: str, now: float) -> bool:
        row = self._outbox.get(key)
        if row is None or row.status != "dead":
            return False
        row.status, row.attempts, row.next_at, row.enqueued = "pending", 0, now, now
        return True

    async def take_slot(self, key: str, limit: int, holder: str, until: float, now: float) -> float:
        slots = self._slots.setdefault(key, {})
        for name in [h for h, end in slots.items() if end <= now]:
            del slots[name]
        others = [end for h, end in slots.items() if h != holder]
        if len(others) < limit:
            slots[holder] = until
            return 0.0
        return max(min(others) - now, 1e-3)

    async def free_slot(self, key: str, holder: str) -> None:
        self._slots.get(key, {}).pop(holder, None)

    async def outbox(self, status: str | None = None, limit: int = 100) -> list[OutboxItem]:
        # Newest first: by commit time, then the later call of one commit first.
        rows = [r for r in self._outbox.values() if status is None or r.status == status]
        rows.sort(key=lambda r: (r.created, r.seq), reverse=True)
        return [r.item() for r in rows[:limit]]

    async def purge(self, now: float, retention: Retention = DEFAULT_RETENTION) -> int:
        gone = [k for k, (_, expires) in self._responses.items() if expires <= now]
        for key in gone:
            del self._responses[key]
        count = len(gone)
        # A finished item's next_at is when it finished (finish_outbox).
        kept = {"sent": retention.sent, "dry_run": retention.sent, "dead": retention.dead}
        for key, row in list(self._outbox.items()):
            if row.status in kept and row.next_at < now - kept[row.status]:
                del self._outbox[key]
                count += 1
        for key, times in list(self._hits.items()):
            cut = bisect.bisect_left(times, now - retention.hits)
            count += cut
            del times[:cut]
            if not times:
                del self._hits[key]
        for name, slots in list(self._slots.items()):
            for holder in [h for h, until in slots.items() if until <= now]:
                del slots[holder]
                count += 1
            if not slots:
                del self._slots[name]
        for key, conversation in list(self._conversations.items()):
            if conversation.updated < now - retention.conversations and key not in self._timers:
                del self._conversations[key]
                count += 1
        for contact in [c for c, opted_out in self._opt_outs.items() if not opted_out]:
            del self._opt_outs[contact]  # an opt-in mark reads as no mark at all
            count += 1
        return count
