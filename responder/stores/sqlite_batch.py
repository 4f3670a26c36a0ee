"""Group commit for the SQLite store: the writes of concurrent callers share one transaction.

While one transaction is being written, the writes that arrive (webhook commits, and the
delivery worker's claims, slots and outcomes) queue up; the next transaction takes all of
them, in the order they came. A write that fails (a conversation moved on, a constraint) is
rolled back alone and the others still commit: the transaction is then made again with each
write in a savepoint of its own (writes touch nothing but the database, so running them
again gives what running them once would have). No
caller hears "written" before the transaction holding its write is: a crash before that
loses writes nobody was answered for.

A transaction is written on the event loop's own thread while the store's thread has nothing
to do: a small write in WAL mode with ``synchronous=NORMAL`` costs no more than the trip to
the thread and back (checkpoints, which wait for the disk, are made elsewhere:
``sqlite_checkpoint``), and a trip there costs each webhook a hand-over of the interpreter
both ways. When another process holds the database's write lock, the loop does not wait for
it: the transaction goes to the store's thread, which waits up to BUSY_TIMEOUT_MS.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Final, TypeVar

from responder.errors import StoreError
from responder.outbound import Commit, Committed

T = TypeVar("T")
Write = Callable[[sqlite3.Connection], Any]
MAX_BATCH: Final = 128  # writes per transaction
BUSY_TIMEOUT_MS: Final = 5000  # how long the store's thread waits for another writer's lock


class _Busy(Exception):
    """Another connection holds the write lock: the loop's thread does not wait for it."""


class GroupCommit:
    """Queues writes and runs them, a transaction at a time: on the loop's thread when
    ``idle()`` says the store's thread has nothing to do, else on that thread."""

    def __init__(
        self,
        run: Callable[[Callable[[], Any]], Awaitable[Any]],
        db: Callable[[], sqlite3.Connection],
        write: Callable[[sqlite3.Connection, Commit], Committed],
        where: str,
        idle: Callable[[], bool] = lambda: False,
    ) -> None:
        self._run = run  # runs a function on the store's thread (sqlite3 errors -> StoreError)
        self._idle = idle  # whether nothing runs on the store's thread (its connection is free)
        self._db = db
        self._write = write
        self._where = where
        self._waiting: list[tuple[Write, asyncio.Future[Any]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.transactions = 0  # for tests: how many transactions held the writes
        self.full = False  # a write failed for want of space: make room before the next

    async def commit(self, commit: Commit) -> Committed:
        write = self._write
        return await self.run(lambda db: write(db, commit))

    async def run(self, write: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``write`` in the next transaction; its result once that transaction is committed.

        ``write`` must touch nothing but the database it is given: when another write of the
        same transaction fails, the transaction is made again and ``write`` runs twice."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._waiting.append((write, future))
        if self._writer is None:
            self._writer = loop.create_task(self._drain(), name="sqlite-group-commit")
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[:MAX_BATCH]
                del self._waiting[:MAX_BATCH]
                writes = [w for w, _ in batch]
                try:
                    try:
                        if self.full or not self._idle():
                            raise _Busy
                        try:
                            results = self._write_all(writes, here=True)
                        except sqlite3.Error as exc:  # as the store's thread reports it
                            raise StoreError(f"SQLite store {self._where!r}: {exc}") from exc
                    except _Busy:
                        results = await self._run(partial(self._write_all, writes))
                except Exception as exc:  # the whole transaction failed: every write did
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(StoreError(str(exc)))
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # its caller went away; the write stands
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._writer = None

    def _write_all(self, writes: list[Write], here: bool = False) -> list[Any]:
        """One transaction holding ``writes``; ``here``: on the loop's thread, which raises
        _Busy rather than wait for another connection's write lock."""
        db = self._db()
        if self.full:
            self._make_room(db)
        if here:
            db.execute("PRAGMA busy_timeout=0")
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorname", "").startswith("SQLITE_BUSY"):
                    raise _Busy from exc
                raise
            finally:
                db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        else:
            db.execute("BEGIN IMMEDIATE")
        try:
            results = self._together(db, writes)
            if results is None:
                # One write failed: the others must still stand, so the transaction is made
                # again with every write in a savepoint of its own, rolled back alone.
                db.execute("ROLLBACK")
                db.execute("BEGIN IMMEDIATE")
                results = self._apart(db, writes)
            db.execute("COMMIT")
        except BaseException as exc:
            # Also when COMMIT itself fails: never leave the transaction open.
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._note(exc)
            raise
        self.transactions += 1
        return results

    def _note(self, exc: BaseException) -> None:
        if getattr(exc, "sqlite_errorname", "").startswith(("SQLITE_FULL", "SQLITE_IOERR")):
            self.full = True

    def _make_room(self, db: sqlite3.Connection) -> None:
        """After a write failed for want of disk space: move the write-ahead log into the
        database and cut it to nothing. Otherwise the log, which grows until a checkpoint
        (``sqlite_checkpoint``), takes back whatever space is freed, and the store stays full
        after the disk has room again. While the disk is still full the
        checkpoint fails too, and is tried again before the next write."""
        try:
            busy = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        except sqlite3.Error:
            return
        self.full = bool(busy)

    def _together(self, db: sqlite3.Connection, writes: list[Write]) -> list[Any] | None:
        """Every write's result, or None when one failed (most batches: none fails, and
        savepoints would cost two statements a write)."""
        results: list[Any] = []
        for write in writes:
            try:
                results.append(write(db))
            except Exception:
                if not db.in_transaction:  # SQLite rolled the whole transaction back
                    raise
                return None
        return results

    def _apart(self, db: sqlite3.Connection, writes: list[Write]) -> list[Any]:
        results: list[Any] = []
        for write in writes:
            db.execute("SAVEPOINT one_write")
            try:
                results.append(write(db))
            except Exception as exc:  # a conflict, a value that is not JSON...
                if not db.in_transaction:
                    raise
                self._note(exc)
                db.execute("ROLLBACK TO one_write")
                failed: Exception = exc
                if isinstance(exc, sqlite3.Error):
                    failed = StoreError(f"SQLite store {self._where!r}: {exc}")
                results.append(failed)
            db.execute("RELEASE one_write")
        return results
