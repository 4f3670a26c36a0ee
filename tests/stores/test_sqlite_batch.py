"""Group commit on a real SQLite file: concurrent webhooks share transactions, and each
webhook's writes still stand or fall together."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from responder.conversations import Conversation
from responder.errors import ConflictError
from responder.outbound import Commit, OutboundCall, StoredResponse
from responder.stores.sqlite import SqliteStore

OK = StoredResponse(200, "application/json", b'{"ok":true}')


def call(key: str) -> OutboundCall:
    return OutboundCall(key, "hoiio", "sms/send", {"dest": "+65", "msg": "hi"}, contact="+65")


def talk(state: str) -> Conversation:
    return Conversation("textit:sms:+1", "survey", state, "textit", "textit")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(str(tmp_path / "store.db"))
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def test_concurrent_commits_share_transactions(store: SqliteStore) -> None:
    commits = [Commit(f"e{i}", OK, (call(f"e{i}#0"),), (f"hit:{i}",), now=1.0) for i in range(40)]
    results = await asyncio.gather(*(store.commit(c) for c in commits))
    assert results == [(OK, True, ())] * 40
    assert 1 <= store._group.transactions < 40
    for i in range(40):
        assert await store.get_response(f"e{i}") == OK
        assert await store.count_hits(f"hit:{i}", 0.0) == 1
    assert len(await store.outbox(limit=100)) == 40


async def test_a_failed_commit_in_a_group_takes_only_its_own_writes_back(
    store: SqliteStore,
) -> None:
    await store.commit(Commit("c1", OK, now=1.0, conversation=talk("q1")))
    before = store._group.transactions
    stale = Commit("c2", OK, (call("c2#0"),), ("h2",), now=2.0, conversation=talk("q9"))
    bad = Commit("c3", OK, (OutboundCall("c3#0", "http", "https://x.test", {"j": {1}}),), ("h3",))
    good = [Commit(f"g{i}", OK, (call(f"g{i}#0"),), ("hg",), now=2.0) for i in range(5)]
    results = await asyncio.gather(
        *(store.commit(c) for c in [good[0], stale, good[1], bad, *good[2:]]),
        return_exceptions=True,
    )
    assert isinstance(results[1], ConflictError)
    assert isinstance(results[3], TypeError)  # a value that is not JSON
    assert [r for i, r in enumerate(results) if i not in (1, 3)] == [(OK, True, ())] * 5
    assert store._group.transactions - before < 7  # shared, not one each
    for key in ("c2", "c3"):
        assert await store.get_response(key) is None
    assert await store.count_hits("h2", 0.0) == await store.count_hits("h3", 0.0) == 0
    assert sorted(item.call.key for item in await store.outbox()) == [f"g{i}#0" for i in range(5)]
    assert await store.count_hits("hg", 0.0) == 5
    conversation = await store.get_conversation("textit:sms:+1")
    assert conversation is not None
    assert (conversation.state, conversation.version) == ("q1", 1)


async def test_reads_see_what_another_connection_committed(
    store: SqliteStore, tmp_path: Path
) -> None:
    # The loop's own read connection starts a fresh snapshot for every read.
    assert await store.get_response("outside") is None
    other = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    other.execute(
        "INSERT INTO idempotency VALUES (?, ?, ?, ?, ?, ?)",
        ("outside", 200, "application/json", b'{"ok":true}', 1.0, 9e9),
    )
    other.close()
    assert await store.get_response("outside") == OK


async def test_delivery_writes_share_transactions_with_commits(store: SqliteStore) -> None:
    await store.commit(Commit("e", OK, (call("e#0"),), now=1.0))
    (item,) = await store.claim_outbox(2.0, 30.0, 10)
    before = store._group.transactions
    results = await asyncio.gather(
        *(store.take_slot("busy:hoiio", 3, f"h{i}", 60.0, 2.0) for i in range(5)),
        store.finish_outbox(item.call.key, "sent", None, 3.0),
        *(store.commit(Commit(f"w{i}", OK, now=3.0)) for i in range(5)),
    )
    assert results[:5] == [0.0, 0.0, 0.0, 58.0, 58.0]  # in order: three slots, held until 60
    assert results[6:] == [(OK, True, ())] * 5
    assert store._group.transactions - before < 11
    (done,) = await store.outbox()
    assert done.status == "sent"


async def test_savepoints_only_when_a_write_in_the_group_fails(store: SqliteStore) -> None:
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    try:
        clean = [Commit(f"s{i}", OK, (), (f"hs{i}",), now=1.0) for i in range(5)]
        assert await asyncio.gather(*(store.commit(c) for c in clean)) == [(OK, True, ())] * 5
        assert not any(s.startswith("SAVEPOINT") for s in statements)
        statements.clear()
        bad = Commit("bad", OK, (OutboundCall("bad#0", "http", "https://x.test", {"j": {1}}),))
        mixed = [Commit("m1", OK, (), ("hm",), now=1.0), bad, Commit("m2", OK, (), ("hm",))]
        results = await asyncio.gather(*(store.commit(c) for c in mixed), return_exceptions=True)
        assert results[0] == results[2] == (OK, True, ())
        assert isinstance(results[1], TypeError)
        # Tried together, rolled back, then made again with a savepoint a write.
        assert sum(s.startswith("SAVEPOINT") for s in statements) == 3
        assert statements.count("ROLLBACK") == 1
    finally:
        store._db.set_trace_callback(None)
    assert await store.count_hits("hm", 0.0) == 2
    assert await store.get_response("bad") is None


async def test_transactions_are_written_on_the_loops_thread_while_the_store_thread_is_idle(
    store: SqliteStore,
) -> None:
    assert await store._group.run(lambda db: threading.get_ident()) == threading.get_ident()
    # While the store's thread is busy with its connection, the next transaction waits for
    # it and is written there: the connection is never used by two threads at once.
    busy = asyncio.create_task(store._run(lambda: time.sleep(0.3)))
    await asyncio.sleep(0.05)
    where = await store._group.run(lambda db: threading.get_ident())
    assert busy.done()
    assert where != threading.get_ident()
    assert await store._group.run(lambda db: threading.get_ident()) == threading.get_ident()


async def test_another_writers_lock_is_waited_for_on_the_store_thread_not_the_loop(
    store: SqliteStore, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing, say a second worker
    ticks = 0

    async def ticking() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(ticking())
    commit = asyncio.create_task(store.commit(Commit("w1", OK, now=1.0)))
    await asyncio.sleep(0.3)
    assert not commit.done()
    assert ticks >= 10  # the loop kept going while the commit waited for the lock
    other.execute("COMMIT")
    assert await asyncio.wait_for(commit, 5) == (OK, True, ())
    ticker.cancel()
    other.close()
    assert await store.get_response("w1") == OK
