"""The embedded default: one SQLite file, WAL mode, every webhook's writes in one transaction.

The writer connection is used by one thread at a time, each store call as one complete
transaction, so coroutines can never interleave statements inside another call's
transaction: the store's own thread, or, for the group commit's transactions while that
thread has nothing to do, the event loop's thread (``sqlite_batch``). Point reads run on a
connection of their own on the loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

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
from responder.stores.base import Depth, Slot, Snapshot, Wanted, round_trips
from responder.stores.sqlite_batch import BUSY_TIMEOUT_MS, GroupCommit
from responder.stores.sqlite_checkpoint import WRITER_CHECKPOINT_PAGES, Checkpointer

T = TypeVar("T")
PURGE_BATCH = 5000  # rows deleted per transaction by the purge

OUTBOX_COLUMNS = "payload, attempts, status, last_error, created, enqueued"
# Outbox tables written before lanes existed get the new columns, filled from the payload.
MIGRATE_OUTBOX = """
ALTER TABLE outbox ADD COLUMN lane TEXT;
ALTER TABLE outbox ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN enqueued REAL;
UPDATE outbox SET
    lane = COALESCE(NULLIF(json_extract(payload, '$.contact'), ''), key),
    enqueued = created,
    priority = CASE WHEN json_extract(payload, '$.provider') = 'hoiio'
                     AND (json_extract(payload, '$.endpoint') LIKE 'ivr/middle/%'
                          OR json_extract(payload, '$.endpoint') LIKE 'ivr/end/%')
                    THEN 1 ELSE 0 END;
"""

SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    status INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    body BLOB NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS idempotency_expires ON idempotency (expires);
CREATE TABLE IF NOT EXISTS outbox (
    key TEXT PRIMARY KEY,
    payload TEXT NOT NULL,
    created REAL NOT NULL,
    next_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT,
    finished REAL,
    lane TEXT,
    priority INTEGER NOT NULL DEFAULT 0,
    enqueued REAL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_at);
CREATE INDEX IF NOT EXISTS outbox_lane ON outbox (lane, status, enqueued);
CREATE INDEX IF NOT EXISTS outbox_claim ON outbox (status, priority DESC, next_at, enqueued);
CREATE TABLE IF NOT EXISTS slots (key TEXT NOT NULL, holder TEXT NOT NULL, until REAL NOT NULL,
                                  PRIMARY KEY (key, holder));
CREATE TABLE IF NOT EXISTS hits (key TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS hits_key_at ON hits (key, at);
CREATE TABLE IF NOT EXISTS conversations (
    key TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_updated ON conversations (status, updated);
CREATE TABLE IF NOT EXISTS timers (
    key TEXT PRIMARY KEY,
    due REAL NOT NULL,
    seq INTEGER NOT NULL,
    offer REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS timers_offer ON timers (offer);
CREATE TABLE IF NOT EXISTS opt_outs (key TEXT PRIMARY KEY, opted_out INTEGER NOT NULL,
                                     updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);
"""


def _check_writable(conn: sqlite3.Connection) -> None:
    """Write once at start-up, so a read-only file stops the start, not the first webhook."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        conn.execute(f"PRAGMA user_version = {int(version)}")
    finally:
        conn.execute("COMMIT")


def _open_problem(path: str, exc: sqlite3.Error | OSError) -> str:
    if getattr(exc, "sqlite_errorname", "") == "SQLITE_READONLY":
        return (
            f"SQLite store {path!r} cannot be written ({exc}): make the file and its directory "
            "writable by this user (SQLite also writes -wal and -shm files beside it)"
        )
    if getattr(exc, "sqlite_errorname", "") == "SQLITE_CANTOPEN" and Path(path).is_file():
        return (
            f"cannot open SQLite store {path!r} ({exc}): its directory must be writable by this "
            "user too (SQLite creates its -wal and -shm files beside it)"
        )
    return f"cannot open SQLite store {path!r}: {exc}"


def _item(row: Sequence[Any]) -> OutboxItem:
    payload, attempts, status, last_error, created, enqueued = row
    return OutboxItem(
        OutboundCall.from_json(payload), attempts, status, last_error, created, enqueued
    )


def _write_conversation(db: sqlite3.Connection, commit: Commit) -> None:
    conversation = commit.conversation
    assert conversation is not None
    row = db.execute(
        "SELECT version FROM conversations WHERE key = ?", (conversation.key,)
    ).fetchone()
    version = row[0] if row else 0
    if version != commit.expected_version:
        raise ConflictError(
            f"conversation {conversation.key!r} is at version {version}, "
            f"expected {commit.expected_version}"
        )
    stored = conversation.with_version(version + 1)
    db.execute(
        "INSERT OR REPLACE INTO conversations VALUES (?, ?, ?, ?, ?)",
        (stored.key, stored.to_json(), stored.version, stored.status, stored.updated),
    )


def _stored_response(db: sqlite3.Connection, key: str) -> StoredResponse | None:
    # fetchall: the statement is done at once, so the loop's reader holds no snapshot open.
    rows = db.execute(
        "SELECT status, content_type, body FROM idempotency WHERE key = ?", (key,)
    ).fetchall()
    return StoredResponse(rows[0][0], rows[0][1], bytes(rows[0][2])) if rows else None


@cache
def _snapshot_sql(counts: int) -> str:
    """One statement (so one read transaction) for a ``Wanted`` with ``counts`` hit keys:
    one row, from the primary-key lookups and a scalar subquery per count."""
    subqueries = "".join(
        f", (SELECT COUNT(*) FROM hits WHERE key = ?{4 + 2 * i} AND at >= ?{5 + 2 * i})"  # noqa: S608
        for i in range(counts)
    )
    return (
        f"SELECT i.status, i.content_type, i.body, c.data, c.version, o.opted_out{subqueries} "  # noqa: S608
        "FROM (SELECT 1) LEFT JOIN idempotency AS i ON i.key = ?1 "
        "LEFT JOIN conversations AS c ON c.key = ?2 LEFT JOIN opt_outs AS o ON o.key = ?3"
    )


def _snapshot(db: sqlite3.Connection, wanted: Wanted) -> Snapshot:
    args: list[object] = [wanted.key, wanted.conversation, wanted.contact]
    for key, since in wanted.hits:
        args += (key, since)
    # fetchall, as in _stored_response: no snapshot is left open on the loop's reader.
    row = db.execute(_snapshot_sql(len(wanted.hits)), args).fetchall()[0]
    status, content_type, body, data, version, opted_out = row[:6]
    return Snapshot(
        None if status is None else StoredResponse(status, content_type, bytes(body)),
        None if data is None else Conversation.from_json(data).with_version(version),
        opted_out == 1,
        tuple(int(count) for count in row[6:]),
    )


def _write_commit(db: sqlite3.Connection, commit: Commit) -> Committed:
    """One webhook's writes, inside a transaction (and a savepoint) the caller holds."""
    r = commit.response
    inserted = db.execute(
        "INSERT INTO idempotency VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
        (commit.key, r.status, r.content_type, r.body, commit.now, commit.now + commit.ttl),
    ).rowcount
    if not inserted:  # a copy committed first: its answer stands
        stored = _stored_response(db, commit.key)
        if stored is None:
            raise StoreError(f"idempotency record {commit.key!r} neither written nor found")
        return Committed(stored, False)
    over = commit.over_limit(
        lambda key, since: int(
            db.execute(
                "SELECT COUNT(*) FROM hits WHERE key = ? AND at >= ?", (key, since)
            ).fetchone()[0]
        )
    )
    if over is not None:  # the savepoint's rollback takes the record back
        raise ConflictError(f"limit {over.key!r} reached meanwhile (at most {over.most})")
    held: tuple[str, ...] = ()
    if commit.calls:
        hold = _holdable(db, commit)
        db.executemany(
            "INSERT OR IGNORE INTO outbox "
            "(key, payload, created, next_at, lane, priority, enqueued) VALUES (?,?,?,?,?,?,?)",
            [
                (
                    c.key,
                    c.to_json(),
                    commit.now,
                    commit.hold_until if c.key in hold else max(commit.now, c.not_before or 0.0),
                    lane_of(c),
                    int(is_ivr_step(c)),
                    commit.now,
                )
                for c in commit.calls
            ],
        )
        if hold:  # a call already in the outbox (INSERT OR IGNORE) is not this commit's
            held = tuple(
                key
                for key in hold
                if db.execute(
                    "SELECT 1 FROM outbox WHERE key = ? AND next_at = ?", (key, commit.hold_until)
                ).fetchone()
            )
    if commit.opt_outs:
        # An opt-in mark reads as no mark at all: the table holds opted-out contacts only.
        db.executemany(
            "INSERT OR REPLACE INTO opt_outs VALUES (?, 1, ?)",
            [(k, commit.now) for k, v in commit.opt_outs if v],
        )
        db.executemany(
            "DELETE FROM opt_outs WHERE key = ?", [(k,) for k, v in commit.opt_outs if not v]
        )
    if commit.hits:
        db.executemany("INSERT INTO hits VALUES (?, ?)", [(k, commit.now) for k in commit.hits])
    if commit.conversation is not None:
        _write_conversation(db, commit)
    if commit.timer is not None:
        timer = commit.timer
        if timer.due is None:
            db.execute("DELETE FROM timers WHERE key = ?", (timer.key,))
        else:
            db.execute(
                "INSERT OR REPLACE INTO timers VALUES (?, ?, ?, ?)",
                (timer.key, timer.due, timer.seq, timer.due),
            )
    return Committed(r, True, held)


def _holdable(db: sqlite3.Connection, commit: Commit) -> set[str]:
    """The calls of ``commit`` to write claimed: ``holdable`` ones whose lane has nothing
    pending (read before the commit's own calls are written)."""
    return {
        key
        for key, lane in holdable(commit).items()
        if not db.execute(
            "SELECT 1 FROM outbox WHERE lane = ? AND status = 'pending' LIMIT 1", (lane,)
        ).fetchone()
    }


class SqliteStore:
    def __init__(self, path: str) -> None:
        self.path = path
        self.round_trips = round_trips()  # none: an embedded database in this process
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        # Point reads run on the event loop's thread, on a connection of their own: a read
        # in WAL mode never waits for the writer, and costs less than a trip to the thread.
        self._reader: sqlite3.Connection | None = None
        # Webhook commits and the delivery worker's outbox and slot writes share transactions.
        self._group = GroupCommit(
            self._run, lambda: self._db, _write_commit, path, lambda: self._on_thread == 0
        )
        self._on_thread = 0  # calls running on (or waiting for) the store's thread
        self._checkpointer: Checkpointer | None = None  # the log's checkpoints, off the writer

    async def open(self) -> None:
        if self._executor is not None:
            return
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._open_sync)
        except (sqlite3.Error, OSError) as exc:
            executor.shutdown(wait=False)
            raise StoreError(_open_problem(self.path, exc)) from exc
        self._executor = executor
        self._checkpointer = Checkpointer(self.path)
        self._checkpointer.start()

    def _open_sync(self) -> None:
        parent = Path(self.path).parent
        parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a crash of this process (not a power cut) and saves
            # an fsync per commit; the guarantees promised for kill -9 hold.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute(f"PRAGMA wal_autocheckpoint={WRITER_CHECKPOINT_PAGES}")
            columns = {r[1] for r in conn.execute("PRAGMA table_info(outbox)")}
            if columns and "lane" not in columns:
                conn.executescript(f"BEGIN IMMEDIATE;{MIGRATE_OUTBOX}COMMIT;")
            conn.executescript(SCHEMA)
            _check_writable(conn)
            reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            reader.execute("PRAGMA query_only=1")
            reader.execute("PRAGMA busy_timeout=0")  # busy: the read goes to the thread
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._reader = reader

    async def close(self) -> None:
        if self._executor is None:
            return
        if self._checkpointer is not None:
            await self._checkpointer.stop()
            self._checkpointer = None
        await self._run(self._close_sync)
        self._executor.shutdown(wait=True)
        self._executor = None

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    async def _fetch(self, read: Callable[[sqlite3.Connection], T]) -> T:
        """A point read on the loop's connection; on the store's thread if it is busy."""
        reader = self._reader
        if reader is None or self._executor is None:
            raise StoreError("store is not open")
        try:
            return read(reader)
        except sqlite3.OperationalError:
            return await self._run(lambda: read(self._db))
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {self.path!r}: {exc}") from exc

    async def _run(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise StoreError("store is not open")
        loop = asyncio.get_running_loop()
        self._on_thread += 1
        done = self._executor.submit(fn)
        # Counted until the thread is really done with it (or it never started): a caller
        # that stops waiting does not stop the thread from using the connection.
        done.add_done_callback(lambda _: self._left_thread(loop))
        try:
            return await asyncio.wrap_future(done)
        except sqlite3.Error as exc:
            # Callers (webhook handler, delivery worker, purger) handle StoreError only.
            raise StoreError(f"SQLite store {self.path!r}: {exc}") from exc

    def _left_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        """A call on the store's thread is done with the connection (called from there)."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing left to count
            loop.call_soon_threadsafe(self._one_less_on_thread)

    def _one_less_on_thread(self) -> None:
        self._on_thread -= 1

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("store is not open")
        return self._conn

    def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(db)
            db.execute("COMMIT")
        except BaseException:
            # Also when COMMIT itself fails: never leave the transaction open.
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return result

    async def get_response(self, key: str) -> StoredResponse | None:
        return await self._fetch(lambda db: _stored_response(db, key))

    async def snapshot(self, wanted: Wanted) -> Snapshot:
        return await self._fetch(lambda db: _snapshot(db, wanted))

    async def commit(self, commit: Commit) -> Committed:
        return await self._group.commit(commit)

    async def secret(self, name: str) -> bytes:
        def write(db: sqlite3.Connection) -> bytes:
            db.execute(
                "INSERT OR IGNORE INTO secrets VALUES (?, ?)", (name, secrets.token_bytes(32))
            )
            row = db.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
            return bytes(row[0])

        return await self._run(lambda: self._tx(write))

    async def opted_out(self, keys: list[str]) -> set[str]:
        def read(db: sqlite3.Connection) -> set[str]:
            if not keys:
                return set()
            marks = ",".join("?" * len(keys))
            rows = db.execute(
                f"SELECT key FROM opt_outs WHERE opted_out = 1 AND key IN ({marks})",  # noqa: S608
                keys,
            ).fetchall()
            return {r[0] for r in rows}

        return await self._fetch(read)

    async def get_conversation(self, key: str) -> Conversation | None:
        def read(db: sqlite3.Connection) -> Conversation | None:
            rows = db.execute(
                "SELECT data, version FROM conversations WHERE key = ?", (key,)
            ).fetchall()
            return Conversation.from_json(rows[0][0]).with_version(rows[0][1]) if rows else None

        return await self._fetch(read)

    async def claim_timers(self, now: float, lease: float, limit: int) -> list[Timer]:
        def claim(db: sqlite3.Connection) -> list[Timer]:
            rows = db.execute(
                "SELECT key, due, seq FROM timers WHERE offer <= ? ORDER BY offer LIMIT ?",
                (now, limit),
            ).fetchall()
            db.executemany(
                "UPDATE timers SET offer = ? WHERE key = ?", [(now + lease, r[0]) for r in rows]
            )
            return [Timer(r[0], r[1], r[2]) for r in rows]

        return await self._run(lambda: self._tx(claim))

    async def count_conversations(self, status: str = "active") -> int:
        def read() -> int:
            row = self._db.execute(
                "SELECT COUNT(*) FROM conversations WHERE status = ?", (status,)
            ).fetchone()
            return int(row[0])

        return await self._run(read)

    async def find_conversations(
        self, contact: str | None = None, limit: int = 50
    ) -> list[Conversation]:
        sql = "SELECT data, version FROM conversations"
        args: tuple[object, ...] = ()
        if contact is not None:
            sql += " WHERE json_extract(data, '$.contact') = ?"
            args = (contact,)
        sql += " ORDER BY updated DESC LIMIT ?"

        def read(db: sqlite3.Connection) -> list[Conversation]:
            rows = db.execute(sql, (*args, limit)).fetchall()
            return [Conversation.from_json(r[0]).with_version(r[1]) for r in rows]

        return await self._scan(read)

    async def get_timer(self, key: str) -> Timer | None:
        def read(db: sqlite3.Connection) -> Timer | None:
            row = db.execute("SELECT due, seq FROM timers WHERE key = ?", (key,)).fetchone()
            return None if row is None else Timer(key, row[0], row[1])

        return await self._fetch(read)

    async def _scan(self, read: Callable[[sqlite3.Connection], T]) -> T:
        """A read that may scan a table: on a connection and a thread of its own, so neither
        the event loop nor the writer's thread waits for it."""
        if self._executor is None:
            raise StoreError("store is not open")

        def run() -> T:
            conn = sqlite3.connect(self.path, isolation_level=None)
            try:
                conn.execute("PRAGMA query_only=1")
                return read(conn)
            finally:
                conn.close()

        try:
            return await asyncio.to_thread(run)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {self.path!r}: {exc}") from exc

    async def depth(self) -> Depth:
        def read() -> Depth:
            outbox = dict(
                self._db.execute(
                    "SELECT status, COUNT(*) FROM outbox WHERE status IN ('pending', 'dead') "
                    "GROUP BY status"
                ).fetchall()
            )
            timers = self._db.execute("SELECT COUNT(*) FROM timers").fetchone()[0]
            active = self._db.execute(
                "SELECT COUNT(*) FROM conversations WHERE status = 'active'"
            ).fetchone()[0]
            return Depth(
                int(outbox.get("pending", 0)), int(outbox.get("dead", 0)), int(timers), int(active)
            )

        return await self._run(read)

    async def count_hits(self, key: str, since: float) -> int:
        def read(db: sqlite3.Connection) -> int:
            rows = db.execute(
                "SELECT COUNT(*) FROM hits WHERE key = ? AND at >= ?", (key, since)
            ).fetchall()
            return int(rows[0][0])

        return await self._fetch(read)

    async def claim_outbox(self, now: float, lease: float, limit: int) -> list[OutboxItem]:
        def claim(db: sqlite3.Connection) -> list[OutboxItem]:
            # The NOT EXISTS keeps each lane in order: an item is offered only when no item
            # of its lane that entered the queue before it is still pending.
            rows = db.execute(
                f"SELECT key, {OUTBOX_COLUMNS} FROM outbox AS o INDEXED BY outbox_claim "  # noqa: S608
                "WHERE status = 'pending' AND next_at <= ? AND NOT EXISTS ("
                "  SELECT 1 FROM outbox AS p WHERE p.lane = o.lane AND p.status = 'pending'"
                "  AND (p.enqueued < o.enqueued OR (p.enqueued = o.enqueued AND p.rowid < o.rowid))"
                ") ORDER BY priority DESC, next_at, enqueued, rowid LIMIT ?",
                (now, limit),
            ).fetchall()
            db.executemany(
                "UPDATE outbox SET next_at = ? WHERE key = ?", [(now + lease, r[0]) for r in rows]
            )
            return [_item(r[1:]) for r in rows]

        return await self._group.run(claim)

    async def finish_outbox(
        self, key: str, status: str, detail: str | None, now: float, slot: Slot | None = None
    ) -> None:
        def write(db: sqlite3.Connection) -> None:
            if slot is not None:
                db.execute("DELETE FROM slots WHERE key = ? AND holder = ?", slot)
            # next_at of a finished item is when it finished: the purge's index (the end of
            # its last lease would keep it a lease longer than its retention).
            db.execute(
                "UPDATE outbox SET status = ?, finished = ?, next_at = ?, "
                "last_error = CASE WHEN ? = 'dead' THEN ? ELSE last_error END WHERE key = ?",
                (status, now, now, status, detail, key),
            )

        await self._group.run(write)

    async def retry_outbox(self, key: str, next_at: float, error: str) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_at = ?, last_error = ? "
                "WHERE key = ?",
                (next_at, error, key),
            )

        await self._group.run(write)

    async def release_outbox(self, key: str, next_at: float) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE outbox SET next_at = ? WHERE key = ? AND status = 'pending'",
                (next_at, key),
            )

        await self._group.run(write)

    async def requeue_outbox(self, key: str, now: float) -> bool:
        def write(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE outbox SET status = 'pending', attempts = 0, next_at = ?, enqueued = ?, "
                "finished = NULL WHERE key = ? AND status = 'dead'",
                (now, now, key),
            )
            return cursor.rowcount > 0

        return await self._group.run(write)

    async def take_slot(self, key: str, limit: int, holder: str, until: float, now: float) -> float:
        def write(db: sqlite3.Connection) -> float:
            db.execute("DELETE FROM slots WHERE key = ? AND until <= ?", (key, now))
            count, first_free = db.execute(
                "SELECT COUNT(*), MIN(until) FROM slots WHERE key = ? AND holder != ?",
                (key, holder),
            ).fetchone()
            if count < limit:
                db.execute("INSERT OR REPLACE INTO slots VALUES (?, ?, ?)", (key, holder, until))
                return 0.0
            return max(float(first_free) - now, 1e-3)

        return await self._group.run(write)

    async def free_slot(self, key: str, holder: str) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM slots WHERE key = ? AND holder = ?", (key, holder))

        await self._group.run(write)

    async def outbox(self, status: str | None = None, limit: int = 100) -> list[OutboxItem]:
        def read() -> list[OutboxItem]:
            sql = f"SELECT {OUTBOX_COLUMNS} FROM outbox"  # noqa: S608
            args: tuple[object, ...] = ()
            if status is not None:
                sql += " WHERE status = ?"
                args = (status,)
            sql += " ORDER BY created DESC, rowid DESC LIMIT ?"
            rows = self._db.execute(sql, (*args, limit)).fetchall()
            return [_item(r) for r in rows]

        return await self._run(read)

    async def purge(self, now: float, retention: Retention = DEFAULT_RETENTION) -> int:
        # In batches, each its own transaction: webhooks commit between them.
        gone = 0
        for sql, args in (
            ("DELETE FROM idempotency WHERE expires <= ?", (now,)),
            # A finished item's next_at is when it finished (finish_outbox).
            (
                "DELETE FROM outbox WHERE status IN ('sent', 'dry_run') AND next_at < ?",
                (now - retention.sent,),
            ),
            ("DELETE FROM outbox WHERE status = 'dead' AND next_at < ?", (now - retention.dead,)),
            ("DELETE FROM hits WHERE at < ?", (now - retention.hits,)),
            ("DELETE FROM slots WHERE until <= ?", (now,)),
            (
                "DELETE FROM conversations WHERE status IN ('active', 'ended') AND updated < ? "
                "AND key NOT IN (SELECT key FROM timers)",
                (now - retention.conversations,),
            ),
            # An opt-in mark reads as no mark at all.
            ("DELETE FROM opt_outs WHERE opted_out = 0", ()),
        ):
            gone += await self._purge_batches(sql, args)
        return gone

    async def _purge_batches(self, sql: str, args: tuple[object, ...]) -> int:
        table, _, where = sql[len("DELETE FROM ") :].partition(" WHERE ")
        batch = (
            f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} "  # noqa: S608
            f"WHERE {where} LIMIT {PURGE_BATCH})"
        )
        gone = 0
        while True:
            count = await self._run(lambda: self._tx(lambda db: db.execute(batch, args).rowcount))
            gone += count
            if count < PURGE_BATCH:
                return gone
