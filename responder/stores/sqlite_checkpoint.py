"""Checkpoints of the SQLite write-ahead log, off the writer's thread.

Left to itself, SQLite checkpoints in the connection that commits, once the log holds 1,000
pages: that commit then copies the log into the database and waits for the disk, and every
webhook whose writes share its transaction waits with it (a step of tens of milliseconds in
the latency of one webhook in a few hundred). Here a thread of its own, on a connection of
its own, runs a PASSIVE checkpoint every CHECKPOINT_EVERY seconds: it never blocks the writer
or a reader, and the writer starts the log from the beginning again once a checkpoint has
caught up. The writer keeps SQLite's own checkpoint only as a backstop, at
WRITER_CHECKPOINT_PAGES, should this thread fall far behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Final

log = logging.getLogger("responder.store")

CHECKPOINT_EVERY: Final = 0.2  # seconds between two checkpoints
WRITER_CHECKPOINT_PAGES: Final = 16_000  # the writer checkpoints itself past this (64 MiB)
CHECKPOINT_CACHE_KIB: Final = 64  # the checkpointing connection's page cache


class Checkpointer:
    """Runs PASSIVE checkpoints of the database at ``path`` until ``stop``."""

    def __init__(self, path: str, every: float = CHECKPOINT_EVERY) -> None:
        self.path = path
        self.every = every
        self.checkpoints = 0  # for tests: how many ran
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-wal")
        self._conn: sqlite3.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sqlite-wal")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close)
        self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.every)
            await loop.run_in_executor(self._executor, self._checkpoint)

    def _checkpoint(self) -> None:
        try:
            if self._conn is None:
                self._conn = sqlite3.connect(self.path, isolation_level=None)
                # It reads no rows: a page cache of its own would only hold memory.
                self._conn.execute(f"PRAGMA cache_size=-{CHECKPOINT_CACHE_KIB}")
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.checkpoints += 1
        except sqlite3.Error as exc:
            # Another process's checkpoint, a full disk: the next one tries again, and the
            # writer's own checkpoint is the backstop.
            log.debug("checkpoint of %s skipped: %s", self.path, exc)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
