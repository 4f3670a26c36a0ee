"""Several replicas on one Redis: every write of a webhook is one Lua script.

Keys live under one hash tag, ``{prefix}:``, so a store's scripts run on Redis Cluster
too (all in one slot); see ``redis_scripts`` for the layout.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import MovedError, RedisError

from responder.conversations import Conversation, Timer
from responder.errors import ConflictError, StoreError
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
from responder.stores import redis_scripts as lua
from responder.stores.base import CALLER, Depth, Slot, Snapshot, Wanted, round_trips
from responder.stores.redis_mux import Arg, Multiplexer, Script
from responder.stores.redis_url import describe, split_url, wants_cluster

T = TypeVar("T")
PURGE_BATCH = 500
# ``find_conversations`` looks at this many conversations at most (it scans; see there).
FIND_SCAN = 20_000
# The scripts of every webhook (SNAPSHOT, COMMIT) and of every delivered call (its claim,
# slot, outcome or retry), sent over the store's shared connection (``redis_mux``).
SHARED = {
    name: Script(getattr(lua, name))
    for name in (
        "SNAPSHOT",
        "COMMIT",
        "FINISH_OUTBOX",
        "TAKE_SLOT",
        "CLAIM_OUTBOX",
        "RESCHEDULE_OUTBOX",
    )
}


def _pack(response: StoredResponse) -> bytes:
    return f"{response.status}\n{response.content_type}\n".encode() + response.body


def _unpack(blob: bytes) -> StoredResponse:
    status, content_type, body = blob.split(b"\n", 2)
    return StoredResponse(int(status), content_type.decode(), body)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def _bytes(value: object) -> bytes:
    """A value read back; the client is made without decode_responses, so always bytes."""
    if not isinstance(value, bytes):
        raise StoreError(f"Redis store: expected bytes, read {type(value).__name__}")
    return value


def _item(row: Sequence[bytes | None]) -> OutboxItem:
    payload, attempts, status, last_error, created, enqueued = row
    return OutboxItem(
        OutboundCall.from_json(_bytes(payload).decode()),
        int(_bytes(attempts)),
        _bytes(status).decode(),
        _text(last_error),
        float(created or 0.0),
        float(enqueued or 0.0),
    )


class RedisStore:
    def __init__(self, url: str) -> None:
        self.url, self.prefix = split_url(url)
        self.cluster = wants_cluster(url)
        self.where = describe(self.url)
        self.base = f"{{{self.prefix}}}:"
        self._redis: aioredis.Redis | RedisCluster | None = None
        self._scripts: dict[str, Any] = {}
        self._mux: Multiplexer | None = None
        self.round_trips = round_trips()

    async def open(self) -> None:
        if self._redis is not None:
            return
        client: aioredis.Redis | RedisCluster
        mux = None
        try:
            if self.cluster:
                client = RedisCluster.from_url(self.url, max_connections=50)
            else:
                # A blocking pool: a burst of webhooks waits for a connection rather than
                # failing (``?max_connections=`` in the URL changes the bound).
                pool = aioredis.BlockingConnectionPool.from_url(
                    self.url, max_connections=50, timeout=10, health_check_interval=30
                )
                client = aioredis.Redis.from_pool(pool)  # closing the client closes the pool
                mux = Multiplexer(pool)
        except ValueError as exc:
            raise StoreError(f"bad Redis store URL {self.where!r}: {exc}") from exc
        try:
            await client.ping()
            # A key of the store: a cluster node that does not hold its slot says so now.
            await client.exists(f"{self.base}secrets")
        except MovedError as exc:
            await client.aclose()
            raise StoreError(
                f"Redis store {self.where} is a Redis Cluster (MOVED {exc}): add ?cluster=yes"
            ) from exc
        except RedisError as exc:
            await client.aclose()
            raise StoreError(f"cannot reach Redis store {self.where}: {exc}") from exc
        self._scripts = {
            name: client.register_script(getattr(lua, name))
            for name in (
                "COMMIT",
                "SNAPSHOT",
                "CLAIM_OUTBOX",
                "FINISH_OUTBOX",
                "RESCHEDULE_OUTBOX",
                "REQUEUE_OUTBOX",
                "LIST_OUTBOX",
                "CLAIM_TIMERS",
                "TAKE_SLOT",
                "PURGE_RECORDS",
                "PURGE_TRIM",
                "PURGE_OUTBOX",
                "PURGE_CONVERSATIONS",
            )
        }
        self._redis = client
        self._mux = mux

    async def close(self) -> None:
        if self._mux is not None:
            await self._mux.close()
            self._mux = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    @property
    def _r(self) -> aioredis.Redis | RedisCluster:
        if self._redis is None:
            raise StoreError("store is not open")
        return self._redis

    async def _do(self, op: Awaitable[T]) -> T:
        # Every request to Redis goes through here (a pipeline is one): a round trip.
        self.round_trips[CALLER.get()] += 1
        try:
            return await op
        except MovedError as exc:
            raise StoreError(
                f"Redis store {self.where} is a Redis Cluster (MOVED {exc}): add ?cluster=yes"
            ) from exc
        except RedisError as exc:
            # Callers (webhook handler, workers, purger) handle StoreError only.
            raise StoreError(f"Redis store {self.where}: {exc}") from exc

    async def _script(self, name: str, *args: Arg) -> Any:
        """Run a script: over the shared connection when it is one of SHARED (a Cluster
        client has none), else through redis-py's client."""
        if self._redis is None:
            raise StoreError("store is not open")
        shared = SHARED.get(name)
        if shared is not None and self._mux is not None:
            return await self._do(self._mux.run(shared, self.base, args))
        return await self._do(self._scripts[name](keys=[self.base], args=list(args)))

    async def get_response(self, key: str) -> StoredResponse | None:
        blob = await self._do(self._r.get(f"{self.base}idem:{key}"))
        return _unpack(_bytes(blob)) if blob is not None else None

    async def snapshot(self, wanted: Wanted) -> Snapshot:
        conv, contact = wanted.conversation, wanted.contact
        counts: list[Arg] = []
        for key, since in wanted.hits:
            counts += [key, repr(since)]
        blob, data, version, mark, *hits = await self._script(
            "SNAPSHOT",
            *[
                wanted.key,
                conv or "",
                "0" if conv is None else "1",
                contact or "",
                "0" if contact is None else "1",
                *counts,
            ],
        )
        return Snapshot(
            _unpack(blob) if blob else None,
            Conversation.from_json(data.decode()).with_version(int(version)) if data else None,
            mark == b"1",
            tuple(int(count) for count in hits),
        )

    async def commit(self, commit: Commit) -> Committed:
        # Serialise every call before the script runs: a call that cannot be stored fails
        # the commit before anything is written.
        calls: list[Arg] = []
        hold = holdable(commit)
        until = repr(commit.hold_until)
        for c in commit.calls:
            due = max(commit.now, c.not_before or 0.0)
            calls += [c.key, c.to_json(), lane_of(c), int(is_ivr_step(c)), repr(due)]
            calls.append(until if c.key in hold else "")
        conv = commit.conversation
        timer = commit.timer
        opts: list[Arg] = []
        for contact, opted in commit.opt_outs:
            opts += [contact, "1" if opted else "0"]
        limits: list[Arg] = []
        for limit in commit.limits:
            limits += [limit.key, repr(limit.since), limit.most - commit.hits.count(limit.key)]
        result = await self._script(
            "COMMIT",
            *[
                commit.key,
                _pack(commit.response),
                max(1, int(commit.ttl * 1000)),
                repr(commit.now),
                repr(commit.now + commit.ttl),
                conv.key if conv else "",
                conv.to_json() if conv else "",
                conv.status if conv else "",
                commit.expected_version,
                timer.key if timer else "",
                "" if timer is None or timer.due is None else repr(timer.due),
                timer.seq if timer else 0,
                len(commit.calls),
                len(commit.hits),
                len(commit.opt_outs),
                len(commit.limits),
                *calls,
                *commit.hits,
                *opts,
                *limits,
            ],
        )
        if result[0] == 0:
            return Committed(_unpack(result[1]), False)
        if result[0] == 3:
            raise ConflictError(f"limit {result[1].decode()!r} reached meanwhile")
        if result[0] == 2:
            assert conv is not None
            raise ConflictError(
                f"conversation {conv.key!r} is at version {result[1]}, "
                f"expected {commit.expected_version}"
            )
        return Committed(commit.response, True, tuple(k.decode() for k in result[1:]))

    async def secret(self, name: str) -> bytes:
        await self._do(self._r.hsetnx(f"{self.base}secrets", name, secrets.token_bytes(32)))
        value = await self._do(self._r.hget(f"{self.base}secrets", name))
        if value is None:
            raise StoreError(f"Redis store {self.where}: secret {name!r} vanished")
        return _bytes(value)

    async def opted_out(self, keys: list[str]) -> set[str]:
        if not keys:
            return set()
        values = await self._do(self._r.hmget(f"{self.base}optouts", keys))
        return {k for k, v in zip(keys, values, strict=True) if v == b"1"}

    async def get_conversation(self, key: str) -> Conversation | None:
        data, version = await self._do(self._r.hmget(f"{self.base}conv:{key}", ["data", "version"]))
        if data is None:
            return None
        return Conversation.from_json(_bytes(data).decode()).with_version(int(_bytes(version)))

    async def claim_timers(self, now: float, lease: float, limit: int) -> list[Timer]:
        flat = await self._script("CLAIM_TIMERS", repr(now), repr(now + lease), limit)
        timers = []
        for key, data in zip(flat[::2], flat[1::2], strict=True):
            due, seq = data.split(b" ")
            timers.append(Timer(key.decode(), float(due), int(seq)))
        return timers

    async def count_conversations(self, status: str = "active") -> int:
        return int(await self._do(self._r.scard(f"{self.base}convs:{status}")))

    async def find_conversations(
        self, contact: str | None = None, limit: int = 50
    ) -> list[Conversation]:
        # No index by contact (every commit would write it): the conversation sets are
        # scanned, at most FIND_SCAN keys of them.
        keys = await self._do(self._conversation_keys())
        found: list[Conversation] = []
        for start in range(0, len(keys), PURGE_BATCH):
            pipe = self._r.pipeline(transaction=False)
            for key in keys[start : start + PURGE_BATCH]:
                pipe.hmget(f"{self.base}conv:{key.decode()}", ["data", "version"])
            for data, version in await self._do(pipe.execute()):
                if data is None:
                    continue
                conversation = Conversation.from_json(_bytes(data).decode())
                if contact is None or conversation.contact == contact:
                    found.append(conversation.with_version(int(_bytes(version))))
        found.sort(key=lambda c: c.updated, reverse=True)
        return found[:limit]

    async def _conversation_keys(self) -> list[bytes]:
        keys: list[bytes] = []
        for status in ("active", "ended"):
            async for key in self._r.sscan_iter(f"{self.base}convs:{status}", count=PURGE_BATCH):
                if len(keys) >= FIND_SCAN:
                    return keys
                keys.append(key)
        return keys

    async def get_timer(self, key: str) -> Timer | None:
        data = await self._do(self._r.hget(f"{self.base}timerdata", key))
        if data is None:
            return None
        due, seq = _bytes(data).split(b" ")
        return Timer(key, float(due), int(seq))

    async def depth(self) -> Depth:
        pipe = self._r.pipeline(transaction=False)
        pipe.zcard(f"{self.base}obs:pending")
        pipe.zcard(f"{self.base}obs:dead")
        pipe.zcard(f"{self.base}timers")
        pipe.scard(f"{self.base}convs:active")
        pending, dead, timers, active = await self._do(pipe.execute())
        return Depth(int(pending), int(dead), int(timers), int(active))

    async def count_hits(self, key: str, since: float) -> int:
        return int(await self._do(self._r.zcount(f"{self.base}hits:{key}", repr(since), "+inf")))

    async def claim_outbox(self, now: float, lease: float, limit: int) -> list[OutboxItem]:
        rows = await self._script("CLAIM_OUTBOX", repr(now), repr(now + lease), limit)
        return [_item(r) for r in rows]

    async def finish_outbox(
        self, key: str, status: str, detail: str | None, now: float, slot: Slot | None = None
    ) -> None:
        has = "0" if detail is None else "1"
        name, holder = slot or ("", "")
        await self._script("FINISH_OUTBOX", key, status, has, detail or "", repr(now), name, holder)

    async def retry_outbox(self, key: str, next_at: float, error: str) -> None:
        await self._script("RESCHEDULE_OUTBOX", key, repr(next_at), error, "retry")

    async def release_outbox(self, key: str, next_at: float) -> None:
        await self._script("RESCHEDULE_OUTBOX", key, repr(next_at), "", "release")

    async def requeue_outbox(self, key: str, now: float) -> bool:
        return bool(await self._script("REQUEUE_OUTBOX", key, repr(now)))

    async def outbox(self, status: str | None = None, limit: int = 100) -> list[OutboxItem]:
        if limit <= 0:
            return []
        listing = "oball" if status is None else f"obs:{status}"
        rows = await self._script("LIST_OUTBOX", listing, limit)
        return [_item(r) for r in rows]

    async def take_slot(self, key: str, limit: int, holder: str, until: float, now: float) -> float:
        first_free = await self._script("TAKE_SLOT", key, limit, holder, repr(until), repr(now))
        if not first_free:
            return 0.0
        return max(float(first_free) - now, 1e-3)

    async def free_slot(self, key: str, holder: str) -> None:
        await self._do(self._r.zrem(f"{self.base}slot:{key}", holder))

    async def purge(self, now: float, retention: Retention = DEFAULT_RETENTION) -> int:
        gone = 0
        while True:
            batch = int(await self._script("PURGE_RECORDS", repr(now), PURGE_BATCH))
            gone += batch
            if batch < PURGE_BATCH:
                break
        for status, keep in (
            ("sent", retention.sent),
            ("dry_run", retention.sent),
            ("dead", retention.dead),
        ):
            offset = 0
            while True:
                dropped, passed, seen = await self._script(
                    "PURGE_OUTBOX", status, repr(now - keep), PURGE_BATCH, offset
                )
                gone += int(dropped)
                offset += int(passed)
                if int(seen) < PURGE_BATCH:
                    break
        while True:
            dropped, seen = await self._script(
                "PURGE_CONVERSATIONS", repr(now - retention.conversations), PURGE_BATCH, repr(now)
            )
            gone += int(dropped)
            if int(seen) < PURGE_BATCH:
                break
        for zsets, names, bound in (
            ("hits:", "hitkeys", f"({now - retention.hits!r}"),
            ("slot:", "slotkeys", repr(now)),
        ):
            listed = await self._do(self._members(f"{self.base}{names}"))
            for start in range(0, len(listed), PURGE_BATCH):
                chunk = listed[start : start + PURGE_BATCH]
                gone += int(await self._script("PURGE_TRIM", zsets, names, bound, *chunk))
        return gone

    async def _members(self, key: str) -> list[bytes]:
        return [name async for name in self._r.sscan_iter(key, count=PURGE_BATCH)]
