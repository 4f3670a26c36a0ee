"""The write-ahead log is checkpointed by a thread of its own, not by the commit that happens
to fill it: the log stays the size of what is written between two checkpoints."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from responder.outbound import Commit, StoredResponse
from responder.stores.sqlite import SqliteStore
from responder.stores.sqlite_checkpoint import WRITER_CHECKPOINT_PAGES
from tests.conftest import wait_for

OK = StoredResponse(200, "application/json", b'{"ok":true}' * 20)


def size_of(path: Path) -> int:
    return path.stat().st_size


async def checkpointed_twice(store: SqliteStore) -> None:
    checkpointer = store._checkpointer
    assert checkpointer is not None
    ran = checkpointer.checkpoints
    await wait_for(lambda: checkpointer.checkpoints >= ran + 2, 5, "two checkpoints")


async def write(store: SqliteStore, first: int, count: int) -> None:
    await asyncio.gather(
        *(
            store.commit(Commit(f"e{n}", OK, hits=(f"h{n}",), now=1.0))
            for n in range(first, first + count)
        )
    )


async def test_the_log_is_checkpointed_off_the_writer_and_starts_again(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = SqliteStore(str(path))
    await store.open()
    wal = Path(f"{path}-wal")
    try:
        # The writer leaves checkpoints to the checkpointer but for a backstop far off.
        pages = await store._run(lambda: store._db.execute("PRAGMA wal_autocheckpoint").fetchone())
        assert pages == (WRITER_CHECKPOINT_PAGES,)
        await write(store, 0, 2000)
        await checkpointed_twice(store)
        size = size_of(wal)
        for first in (2000, 4000, 6000):
            await write(store, first, 2000)
            await checkpointed_twice(store)
        # Three times as much written again, and the log no longer than after the first
        # lot (plus a little): each lot went in at its start, after a checkpoint.
        assert size_of(wal) <= size * 1.5
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM idempotency").fetchone() == (8000,)


async def test_closing_the_store_stops_the_checkpoints(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "store.db"))
    await store.open()
    await write(store, 0, 10)
    await store.close()
    assert store._checkpointer is None
    assert not [t for t in threading.enumerate() if t.name.startswith("sqlite-wal")]
