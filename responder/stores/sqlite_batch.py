"""Group commit for the SQLite store: the commits of concurrent webhooks share one transaction.

While one transaction is being written, the commits that arrive queue up; the next
transaction takes all of them. Each commit runs inside its own savepoint, so one that fails
(a conversation moved on, a constraint) is rolled back alone and the others still commit. No
caller hears "committed" before the transaction holding its commit is: a crash before that
loses commits nobody was answered for.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Final, TypeVar

from responder.errors import StoreError
from responder.outbound import Commit, StoredResponse

T = TypeVar("T")
Written = tuple[StoredResponse, bool]
MAX_BATCH: Final = 128  # commits per transaction


class GroupCommit:
    """Queues commits and writes them, a transaction at a time, on the store's thread."""

    def __init__(
        self,
        run: Callable[[Callable[[], Any]], Awaitable[Any]],
        db: Callable[[], sqlite3.Connection],
        write: Callable[[sqlite3.Connection, Commit], Written],
        where: str,
    ) -> None:
        self._run = run  # runs a function on the store's thread (sqlite3 errors -> StoreError)
        self._db = db
        self._write = write
        self._where = where
        self._waiting: list[tuple[Commit, asyncio.Future[Written]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.transactions = 0  # for tests: how many transactions held the commits

    async def commit(self, commit: Commit) -> Written:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Written] = loop.create_future()
        self._waiting.append((commit, future))
        if self._writer is None:
            self._writer = loop.create_task(self._drain(), name="sqlite-group-commit")
        return await future

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[:MAX_BATCH]
                del self._waiting[:MAX_BATCH]
                try:
                    results = await self._run(partial(self._write_all, [c for c, _ in batch]))
                except Exception as exc:  # the whole transaction failed: every commit did
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(StoreError(str(exc)))
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():  # its caller went away; the commit stands
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._writer = None

    def _write_all(self, commits: list[Commit]) -> list[Written | Exception]:
        db = self._db()
        results: list[Written | Exception] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for commit in commits:
                db.execute("SAVEPOINT one_webhook")
                try:
                    results.append(self._write(db, commit))
                except Exception as exc:  # a conflict, a value that is not JSON...
                    if not db.in_transaction:  # SQLite rolled the whole transaction back
                        raise
                    db.execute("ROLLBACK TO one_webhook")
                    failed: Exception = exc
                    if isinstance(exc, sqlite3.Error):
                        failed = StoreError(f"SQLite store {self._where!r}: {exc}")
                    results.append(failed)
                db.execute("RELEASE one_webhook")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self.transactions += 1
        return results
