"""One contract for every Store backend: in-process, a real SQLite file, a real Redis and a
real three-node Redis Cluster.

No mocks: each test drives the public Store API and checks what it reads back.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from responder.conversations import Conversation, Timer, TimerWrite
from responder.errors import ConflictError, StoreError
from responder.outbound import Commit, HitLimit, OutboundCall, OutboxItem, StoredResponse
from responder.retention import Retention
from responder.stores import open_store
from responder.stores.base import Depth, Snapshot, Store, Wanted
from responder.stores.memory import HIT_HORIZON, MemoryStore
from responder.stores.redis import RedisStore
from responder.stores.sqlite import SCHEMA, SqliteStore
from responder.testing.redisdb import drop_prefix, require_server, scratch_url

OK = StoredResponse(200, "application/json", b'{"ok":true}')
OTHER = StoredResponse(201, "text/plain; charset=utf-8", b"second")


def call(key: str, contact: str | None = "+6591234567", **params: object) -> OutboundCall:
    return OutboundCall(
        key, "hoiio", "sms/send", {"dest": contact or "", "msg": "hi", **params}, contact=contact
    )


def keys(items: list[OutboxItem]) -> list[str]:
    return [item.call.key for item in items]


def store_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "redis":
        require_server()
        return scratch_url("contract")
    if kind == "redis-cluster":
        return scratch_url("contract", request.getfixturevalue("redis_cluster"))
    return "memory://" if kind == "memory" else f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(params=["memory", "sqlite", "redis", "redis-cluster"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s = open_store(store_url(request.param, tmp_path, request))
    await s.open()
    try:
        yield s
    finally:
        await s.close()
        if isinstance(s, RedisStore) and not s.cluster:  # the cluster goes with the session
            drop_prefix(s.prefix)


# -- commit: atomic, first writer wins ------------------------------------------------------


async def test_commit_writes_response_calls_and_hits_together(store: Store) -> None:
    commit = Commit("e1", OK, (call("e1#0"), call("e1#1")), ("limit:a",), now=100.0)
    stored, fresh, _ = await store.commit(commit)
    assert (stored, fresh) == (OK, True)
    assert await store.get_response("e1") == OK
    assert sorted(keys(await store.outbox())) == ["e1#0", "e1#1"]
    assert await store.count_hits("limit:a", 0.0) == 1
    assert await store.get_response("unknown") is None


async def test_second_commit_of_a_key_returns_the_first_and_writes_nothing(store: Store) -> None:
    await store.commit(Commit("e1", OK, (call("e1#0"),), ("limit:a",), now=100.0))
    second = Commit(
        "e1", OTHER, (call("e1#0", extra="x"), call("e1#9")), ("limit:a", "limit:b"), now=200.0
    )
    stored, fresh, _ = await store.commit(second)
    assert stored == OK
    assert fresh is False
    assert await store.get_response("e1") == OK
    items = await store.outbox()
    assert keys(items) == ["e1#0"]
    assert "extra" not in items[0].call.params
    assert await store.count_hits("limit:a", 0.0) == 1
    assert await store.count_hits("limit:b", 0.0) == 0


async def test_a_failing_commit_writes_nothing(store: Store) -> None:
    good = call("e1#0")
    bad = OutboundCall("e1#1", "http", "https://example.com", {"json": {1, 2}})  # no JSON
    with pytest.raises(TypeError):
        await store.commit(Commit("e1", OK, (good, bad), ("limit:a",), now=100.0))
    assert await store.get_response("e1") is None
    assert await store.outbox() == []
    assert await store.count_hits("limit:a", 0.0) == 0
    # The key is still free: a later, valid commit is the first writer.
    stored, fresh, _ = await store.commit(Commit("e1", OTHER, (good,), ("limit:a",), now=101.0))
    assert (stored, fresh) == (OTHER, True)
    assert keys(await store.outbox()) == ["e1#0"]


async def test_fifty_concurrent_commits_of_one_key_have_one_winner(store: Store) -> None:
    commits = [
        Commit(
            "race",
            StoredResponse(200, "text/plain", f"answer {i}".encode()),
            (call("race#0", attempt=str(i)),),
            ("limit:race",),
            now=100.0 + i,
        )
        for i in range(50)
    ]
    results = await asyncio.gather(*(store.commit(c) for c in commits))
    winners = [i for i, (_, fresh, _) in enumerate(results) if fresh]
    assert len(winners) == 1
    winner = commits[winners[0]]
    assert {committed.response for committed in results} == {winner.response}
    assert await store.get_response("race") == winner.response
    items = await store.outbox()
    assert len(items) == 1
    assert items[0].call == winner.calls[0]
    assert await store.count_hits("limit:race", 0.0) == 1


@pytest.mark.parametrize(
    "response",
    [
        StoredResponse(200, "text/plain; charset=latin-1", b"caf\xe9 \x00\xff\xfe\x80 end\n"),
        StoredResponse(201, "application/json", '{"text":"ça va ✓"}'.encode()),
        StoredResponse(204, "text/plain", b""),
    ],
    ids=["non-utf8", "utf8", "empty"],
)
async def test_get_response_is_byte_identical(store: Store, response: StoredResponse) -> None:
    await store.commit(Commit("bytes", response, now=1.0))
    got = await store.get_response("bytes")
    assert got == response
    assert got is not None
    assert type(got.body) is bytes
    assert got.body == response.body
    replay, fresh, _ = await store.commit(Commit("bytes", OK, now=2.0))
    assert not fresh
    assert replay.body == response.body


async def test_outbound_calls_round_trip_every_field(store: Store) -> None:
    full = OutboundCall(
        "e1#0",
        "http",
        "https://example.com/hook?x=1",
        {"json": {"a": [1, 2.5, None, True], "t": "ünïcode ✓"}},
        rule="my-rule",
        contact="+6591234567",
        method="PUT",
        headers={"X-Key": "v"},
        timeout=3.5,
    )
    await store.commit(Commit("e1", OK, (full,), now=1.0))
    (claimed,) = await store.claim_outbox(1.0, 60.0, 10)
    assert claimed.call == full
    assert claimed.attempts == 0
    assert claimed.status == "pending"
    assert claimed.last_error is None


# -- hits -----------------------------------------------------------------------------------


async def test_count_hits_counts_within_the_window(store: Store) -> None:
    await store.commit(Commit("e1", OK, hits=("a",), now=100.0))
    await store.commit(Commit("e2", OK, hits=("a", "b"), now=200.0))
    await store.commit(Commit("e3", OK, hits=("a",), now=300.0))
    assert await store.count_hits("a", 0.0) == 3
    assert await store.count_hits("a", 100.0) == 3  # the window start is inclusive
    assert await store.count_hits("a", 100.5) == 2
    assert await store.count_hits("a", 200.0) == 2
    assert await store.count_hits("a", 300.0) == 1
    assert await store.count_hits("a", 300.001) == 0
    assert await store.count_hits("b", 0.0) == 1
    assert await store.count_hits("b", 201.0) == 0
    assert await store.count_hits("c", 0.0) == 0


# -- the outbox -----------------------------------------------------------------------------


async def test_claim_leases_items_until_the_lease_passes(store: Store) -> None:
    await store.commit(Commit("e1", OK, (call("e1#0", None), call("e1#1", None)), now=10.0))
    first = await store.claim_outbox(10.0, 60.0, 10)
    assert keys(first) == ["e1#0", "e1#1"]
    assert await store.claim_outbox(10.0, 60.0, 10) == []
    assert await store.claim_outbox(69.9, 60.0, 10) == []
    again = await store.claim_outbox(70.0, 60.0, 10)
    assert keys(again) == ["e1#0", "e1#1"]
    assert [i.attempts for i in again] == [0, 0]  # a lapsed lease is not a failed attempt
    assert await store.claim_outbox(100.0, 60.0, 10) == []


async def test_claim_respects_due_time_limit_and_order(store: Store) -> None:
    assert await store.claim_outbox(0.0, 60.0, 10) == []
    # Three contacts: lanes do not hold each other up.
    await store.commit(Commit("late", OK, (call("late#0", "+1"),), now=50.0))
    await store.commit(Commit("early", OK, (call("early#0", "+2"),), now=20.0))
    assert await store.claim_outbox(19.0, 60.0, 10) == []  # nothing due yet
    assert keys(await store.claim_outbox(20.0, 60.0, 10)) == ["early#0"]
    await store.commit(Commit("mid", OK, (call("mid#0", "+3"),), now=30.0))
    # early#0 is leased until 80; due order at 100: mid (30), late (50), early (80).
    assert keys(await store.claim_outbox(100.0, 60.0, 2)) == ["mid#0", "late#0"]
    assert keys(await store.claim_outbox(100.0, 60.0, 2)) == ["early#0"]


async def test_calls_of_one_commit_are_claimed_in_commit_order(store: Store) -> None:
    # Keys deliberately do not sort the way they were made (#10 < #2 as strings).
    calls = tuple(call(f"e1#{n}", None) for n in range(12))
    await store.commit(Commit("e1", OK, calls, now=5.0))
    assert keys(await store.claim_outbox(5.0, 60.0, 100)) == [c.key for c in calls]
    reverse = tuple(call(f"zz-{n}", None) for n in (9, 3, 7, 1))
    await store.commit(Commit("e2", OK, reverse, now=6.0))
    assert keys(await store.claim_outbox(6.0, 60.0, 100)) == ["zz-9", "zz-3", "zz-7", "zz-1"]


async def test_retry_counts_the_attempt_and_reschedules(store: Store) -> None:
    await store.commit(Commit("e1", OK, (call("e1#0"),), now=10.0))
    await store.claim_outbox(10.0, 60.0, 10)
    await store.retry_outbox("e1#0", 500.0, "hoiio sms/send: HTTP 500")
    (pending,) = await store.outbox(status="pending")
    assert pending.attempts == 1
    assert pending.last_error == "hoiio sms/send: HTTP 500"
    assert await store.claim_outbox(499.0, 60.0, 10) == []
    (item,) = await store.claim_outbox(500.0, 60.0, 10)
    assert (item.attempts, item.status, item.last_error) == (1, "pending", pending.last_error)
    await store.retry_outbox("e1#0", 100.0, "timeout")  # may move the due time earlier, too
    (item,) = await store.claim_outbox(100.0, 60.0, 10)
    assert (item.attempts, item.last_error) == (2, "timeout")
    await store.retry_outbox("missing#0", 1.0, "x")  # an unknown key is ignored
    assert keys(await store.outbox()) == ["e1#0"]


async def test_finish_sets_the_status_and_takes_items_out_of_the_queue(store: Store) -> None:
    calls = (call("e1#0"), call("e1#1"), call("e1#2"), call("e1#3"))
    await store.commit(Commit("e1", OK, calls, now=10.0))
    await store.claim_outbox(10.0, 60.0, 10)
    await store.retry_outbox("e1#0", 11.0, "HTTP 503")
    await store.finish_outbox("e1#0", "sent", None, 12.0)
    await store.finish_outbox("e1#1", "dry_run", None, 12.0)
    await store.finish_outbox("e1#2", "dead", "hoiio sms/send: error_invalid_session", 12.0)
    sent = await store.outbox(status="sent")
    assert keys(sent) == ["e1#0"]
    assert (sent[0].status, sent[0].attempts, sent[0].last_error) == ("sent", 1, "HTTP 503")
    dry = await store.outbox(status="dry_run")
    assert keys(dry) == ["e1#1"]
    assert dry[0].last_error is None
    dead = await store.outbox(status="dead")
    assert keys(dead) == ["e1#2"]
    assert dead[0].last_error == "hoiio sms/send: error_invalid_session"
    assert keys(await store.outbox(status="pending")) == ["e1#3"]
    assert await store.outbox(status="nonsense") == []
    assert sorted(keys(await store.outbox())) == ["e1#0", "e1#1", "e1#2", "e1#3"]
    # Finished items are never claimed again, however late it gets.
    assert keys(await store.claim_outbox(10_000.0, 60.0, 10)) == ["e1#3"]


async def test_outbox_lists_newest_first_with_a_limit(store: Store) -> None:
    for n, now in enumerate((10.0, 30.0, 20.0)):
        await store.commit(Commit(f"e{n}", OK, (call(f"e{n}#0"),), now=now))
    assert keys(await store.outbox()) == ["e1#0", "e2#0", "e0#0"]
    assert keys(await store.outbox(limit=2)) == ["e1#0", "e2#0"]
    assert keys(await store.outbox(status="pending", limit=1)) == ["e1#0"]
    # Within one commit the later call is the newer one.
    await store.commit(Commit("e9", OK, (call("e9#0"), call("e9#1")), now=40.0))
    assert keys(await store.outbox(limit=2)) == ["e9#1", "e9#0"]


async def test_a_lane_offers_only_its_head_until_it_is_finished(store: Store) -> None:
    alice = (call("a#0", "+1"), call("a#1", "+1"), call("a#2", "+1"))
    await store.commit(Commit("a", OK, alice, now=10.0))
    await store.commit(Commit("b", OK, (call("b#0", "+2"), call("b#1", "+2")), now=11.0))
    assert keys(await store.claim_outbox(20.0, 60.0, 10)) == ["a#0", "b#0"]
    # Leased heads hold their lanes: nothing else is offered, however many are due.
    assert await store.claim_outbox(20.0, 60.0, 10) == []
    await store.finish_outbox("a#0", "sent", None, 21.0)
    assert keys(await store.claim_outbox(21.0, 60.0, 10)) == ["a#1"]
    # A head waiting for its retry holds its lane too (ordering survives failures).
    await store.retry_outbox("a#1", 500.0, "HTTP 503")
    await store.finish_outbox("b#0", "dead", "error_session_ended", 22.0)
    assert keys(await store.claim_outbox(22.0, 60.0, 10)) == ["b#1"]
    await store.finish_outbox("b#1", "sent", None, 23.0)
    assert await store.claim_outbox(499.0, 60.0, 10) == []
    assert keys(await store.claim_outbox(500.0, 60.0, 10)) == ["a#1"]
    await store.finish_outbox("a#1", "sent", None, 501.0)
    assert keys(await store.claim_outbox(501.0, 60.0, 10)) == ["a#2"]


async def test_a_held_call_holds_the_later_calls_of_its_lane(store: Store) -> None:
    quiet = OutboundCall("q#0", "hoiio", "sms/send", {"dest": "+1"}, contact="+1", not_before=90.0)
    await store.commit(Commit("q", OK, (quiet,), now=10.0))
    await store.commit(Commit("r", OK, (call("r#0", "+1"),), now=20.0))
    assert await store.claim_outbox(50.0, 60.0, 10) == []
    assert keys(await store.claim_outbox(90.0, 60.0, 10)) == ["q#0"]


async def test_ivr_steps_are_offered_before_other_due_calls(store: Store) -> None:
    sms = tuple(call(f"s#{n}", f"+{n}") for n in range(5))
    await store.commit(Commit("s", OK, sms, now=10.0))
    block = OutboundCall("i#0", "hoiio", "ivr/middle/gather", {"session": "S-1"}, contact="S-1")
    dial = OutboundCall("d#0", "hoiio", "ivr/start/dial", {"dest": "+9"}, contact="+9")
    await store.commit(Commit("i", OK, (dial, block), now=30.0))
    assert keys(await store.claim_outbox(30.0, 60.0, 2)) == ["i#0", "s#0"]
    assert keys(await store.claim_outbox(30.0, 60.0, 10)) == ["s#1", "s#2", "s#3", "s#4", "d#0"]


def block(key: str, session: str = "S-1", endpoint: str = "ivr/middle/gather") -> OutboundCall:
    return OutboundCall(key, "hoiio", endpoint, {"session": session}, contact=session)


async def test_a_commit_holds_the_first_ivr_step_of_an_empty_lane_for_its_committer(
    store: Store,
) -> None:
    sms = call("h#1", "+1")
    committed = await store.commit(
        Commit("h", OK, (block("h#0"), sms, block("h#2", "S-2")), now=10.0, hold_until=70.0)
    )
    assert (committed.fresh, sorted(committed.held)) == (True, ["h#0", "h#2"])
    # Written claimed: no one else is offered them while the committer sends them ...
    assert keys(await store.claim_outbox(10.0, 60.0, 10)) == ["h#1"]
    assert await store.claim_outbox(69.0, 60.0, 10) == []
    await store.finish_outbox("h#0", "sent", None, 11.0)
    await store.finish_outbox("h#1", "sent", None, 11.0)
    # ... and one its committer never finished is offered once the claim runs out.
    assert keys(await store.claim_outbox(70.0, 60.0, 10)) == ["h#2"]
    sent = {item.call.key: item for item in await store.outbox(status="sent")}
    assert (sent["h#0"].attempts, sent["h#0"].created, sent["h#0"].enqueued) == (0, 10.0, 10.0)


async def test_a_held_step_keeps_its_lane_in_order(store: Store) -> None:
    first = await store.commit(
        Commit("a", OK, (block("a#0"), block("a#1")), now=10.0, hold_until=70.0)
    )
    assert first.held == ("a#0",)  # the second step of the lane waits behind the first
    # A step for a lane with a step still pending is not held: it waits for its turn.
    second = await store.commit(Commit("b", OK, (block("b#0"),), now=11.0, hold_until=71.0))
    assert second.held == ()
    assert await store.claim_outbox(11.0, 60.0, 10) == []
    await store.finish_outbox("a#0", "sent", None, 12.0)
    assert keys(await store.claim_outbox(12.0, 60.0, 10)) == ["a#1"]
    await store.finish_outbox("a#1", "sent", None, 13.0)
    assert keys(await store.claim_outbox(13.0, 60.0, 10)) == ["b#0"]
    await store.finish_outbox("b#0", "sent", None, 14.0)
    third = await store.commit(Commit("c", OK, (block("c#0"),), now=15.0, hold_until=75.0))
    assert third.held == ("c#0",)  # the lane is empty again


async def test_only_ivr_steps_due_now_of_a_fresh_commit_are_held(store: Store) -> None:
    later = replace(block("q#1", "S-2"), not_before=50.0)
    dial = OutboundCall("d#0", "hoiio", "ivr/start/dial", {"dest": "+9"}, contact="+9")
    commit = Commit("q", OK, (call("q#0", "+1"), later, dial), now=10.0, hold_until=70.0)
    assert (await store.commit(commit)).held == ()
    assert (await store.commit(Commit("n", OK, (block("n#0"),), now=10.0))).held == ()
    again = await store.commit(Commit("n", OK, (block("n#0", "S-3"),), now=11.0, hold_until=71.0))
    assert (again.fresh, again.held) == (False, ())
    assert keys(await store.claim_outbox(10.0, 60.0, 10)) == ["n#0", "q#0", "d#0"]


async def test_items_carry_their_commit_and_queue_times(store: Store) -> None:
    await store.commit(Commit("e1", OK, (call("e1#0"),), now=10.0))
    (item,) = await store.claim_outbox(10.0, 60.0, 10)
    assert (item.created, item.enqueued) == (10.0, 10.0)
    (listed,) = await store.outbox()
    assert (listed.created, listed.enqueued) == (10.0, 10.0)


async def test_release_gives_an_item_back_without_counting_an_attempt(store: Store) -> None:
    await store.commit(Commit("e1", OK, (call("e1#0"), call("e1#1")), now=10.0))
    await store.claim_outbox(10.0, 60.0, 10)
    await store.release_outbox("e1#0", 30.0)
    assert await store.claim_outbox(29.0, 60.0, 10) == []  # the lane still waits for it
    (item,) = await store.claim_outbox(30.0, 60.0, 10)
    assert (item.call.key, item.attempts, item.last_error) == ("e1#0", 0, None)
    await store.finish_outbox("e1#0", "sent", None, 31.0)
    await store.release_outbox("e1#0", 40.0)  # a finished item stays finished
    await store.release_outbox("missing#0", 40.0)
    assert keys(await store.outbox(status="sent")) == ["e1#0"]


async def test_requeue_makes_a_dead_item_pending_again(store: Store) -> None:
    await store.commit(Commit("e1", OK, (call("e1#0"),), now=10.0))
    await store.commit(Commit("e2", OK, (call("e2#0"),), now=20.0))
    await store.claim_outbox(10.0, 60.0, 10)
    await store.retry_outbox("e1#0", 11.0, "HTTP 500")
    await store.claim_outbox(11.0, 60.0, 10)
    await store.finish_outbox("e1#0", "dead", "hoiio sms/send: error_insufficient_credit", 12.0)
    assert await store.requeue_outbox("e2#0", 50.0) is False  # pending, not dead
    assert await store.requeue_outbox("missing#0", 50.0) is False
    assert await store.requeue_outbox("e1#0", 50.0) is True
    assert await store.requeue_outbox("e1#0", 50.0) is False  # once is enough
    (item,) = await store.outbox(status="pending", limit=1)
    assert item.call.key == "e2#0"  # e2 is still the newer commit
    # Requeued, it joins its lane behind what was already waiting there.
    assert keys(await store.claim_outbox(50.0, 60.0, 10)) == ["e2#0"]
    await store.finish_outbox("e2#0", "sent", None, 51.0)
    (again,) = await store.claim_outbox(51.0, 60.0, 10)
    assert (again.call.key, again.attempts, again.created, again.enqueued) == (
        "e1#0",
        0,
        10.0,
        50.0,
    )
    assert again.last_error == "hoiio sms/send: error_insufficient_credit"


# -- slots: shared rate and concurrency limits ----------------------------------------------


async def test_slots_limit_how_many_are_held_at_once(store: Store) -> None:
    assert await store.take_slot("busy", 2, "a", 100.0, 0.0) == 0.0
    assert await store.take_slot("busy", 2, "b", 50.0, 0.0) == 0.0
    assert await store.take_slot("busy", 2, "c", 100.0, 10.0) == pytest.approx(40.0)
    assert await store.take_slot("other", 2, "c", 100.0, 10.0) == 0.0  # names are separate
    await store.free_slot("busy", "a")
    await store.free_slot("busy", "nobody")
    assert await store.take_slot("busy", 2, "c", 100.0, 10.0) == 0.0
    assert await store.take_slot("busy", 2, "d", 100.0, 10.0) == pytest.approx(40.0)
    # A slot whose time is up is free again (a holder that died gives it back this way).
    assert await store.take_slot("busy", 2, "d", 100.0, 50.0) == 0.0


async def test_slots_never_freed_make_a_sliding_rate_limit(store: Store) -> None:
    granted = []
    now = 0.0
    while now < 3.0:
        if await store.take_slot("rate", 5, f"h{now:.2f}", now + 1.0, now) == 0.0:
            granted.append(now)
        now = round(now + 0.05, 2)
    # At most 5 in any window of one second, and the limit is used in full.
    assert all(granted[i + 5] - granted[i] > 1.0 - 1e-9 for i in range(len(granted) - 5))
    assert len(granted) == 15


async def test_taking_a_slot_again_renews_it(store: Store) -> None:
    assert await store.take_slot("busy", 1, "a", 10.0, 0.0) == 0.0
    assert await store.take_slot("busy", 1, "a", 20.0, 5.0) == 0.0
    assert await store.take_slot("busy", 1, "b", 30.0, 15.0) == pytest.approx(5.0)


async def test_finishing_an_item_can_give_its_slot_back_in_the_same_write(store: Store) -> None:
    await store.commit(Commit("f1", OK, (call("f1#0"), call("f1#1", "+6599")), now=1.0))
    assert await store.take_slot("busy", 1, "p:f1#0", 100.0, 2.0) == 0.0
    await store.finish_outbox("f1#0", "sent", None, 3.0, ("busy", "p:f1#0"))
    assert await store.take_slot("busy", 1, "p:f1#1", 100.0, 3.0) == 0.0
    await store.finish_outbox("f1#1", "dead", "gone", 4.0)  # without a slot: it stays held
    assert await store.take_slot("busy", 1, "p:x", 100.0, 4.0) == pytest.approx(96.0)
    await store.finish_outbox("unknown", "sent", None, 5.0, ("busy", "p:f1#1"))
    assert await store.take_slot("busy", 1, "p:x", 100.0, 5.0) == 0.0
    statuses = {item.call.key: (item.status, item.last_error) for item in await store.outbox()}
    assert statuses == {"f1#0": ("sent", None), "f1#1": ("dead", "gone")}


async def test_purge_drops_slots_whose_time_is_up(store: Store) -> None:
    await store.take_slot("rate", 5, "a", 10.0, 0.0)
    await store.take_slot("rate", 5, "b", 30.0, 0.0)
    assert await store.purge(20.0) == 1
    assert await store.take_slot("rate", 1, "c", 40.0, 20.0) == pytest.approx(10.0)


# -- purge ----------------------------------------------------------------------------------


async def test_depth_counts_pending_and_dead_calls_timers_and_active_conversations(
    store: Store,
) -> None:
    assert await store.depth() == Depth()
    talk = Conversation("textit:sms:+6591234567", "survey", "q1", "textit", "textit")
    await store.commit(
        Commit(
            "d1",
            OK,
            (call("d1#0"), call("d1#1"), call("d1#2")),
            now=100.0,
            conversation=talk,
            timer=TimerWrite(talk.key, 500.0, 1),
        )
    )
    await store.finish_outbox("d1#0", "dead", "invalid session", 101.0)
    await store.finish_outbox("d1#1", "sent", None, 101.0)
    assert await store.depth() == Depth(outbox_pending=1, outbox_dead=1, timers=1, conversations=1)


async def test_purge_removes_only_expired_idempotency_records(store: Store) -> None:
    await store.commit(Commit("old", OK, (call("old#0"),), ("limit:a",), now=0.0, ttl=100.0))
    await store.commit(Commit("new", OTHER, (call("new#0"),), ("limit:a",), now=50.0, ttl=100.0))
    assert await store.purge(99.9) == 0
    assert await store.get_response("old") == OK
    assert await store.purge(100.0) == 1  # expiry is inclusive
    assert await store.get_response("old") is None
    assert await store.get_response("new") == OTHER
    assert sorted(keys(await store.outbox(status="pending"))) == ["new#0", "old#0"]
    assert await store.count_hits("limit:a", 0.0) == 2
    assert await store.purge(100.0) == 0
    # An expired key may be answered afresh; its old call key is not enqueued twice.
    _, fresh, _ = await store.commit(Commit("old", OTHER, (call("old#0"),), now=120.0))
    assert fresh
    assert len(await store.outbox()) == 2


async def test_purge_drops_hits_beyond_the_horizon(store: Store) -> None:
    await store.commit(Commit("e1", OK, hits=("limit:a",), now=1000.0, ttl=1.0))
    await store.commit(Commit("e2", OK, hits=("limit:a",), now=2000.0, ttl=1.0))
    assert await store.purge(2500.0) == 2  # the two expired records; hits are recent
    assert await store.count_hits("limit:a", 0.0) == 2
    assert await store.purge(1500.0 + HIT_HORIZON) == 1
    assert await store.count_hits("limit:a", 0.0) == 1


DAY = 86400.0


async def fill_a_day(store: Store, events: int = 40) -> None:
    """A day's worth of everything the store keeps, at t = 0..1000 s."""
    for n in range(events):
        now = float(n * 25)
        contact = f"+65900{n:05d}"
        talk = Conversation(
            f"textit:sms:{contact}", "survey", "q1", "textit", "textit", updated=now
        )
        if n % 4 == 3:
            talk = replace(talk, status="ended")
        await store.commit(
            Commit(
                f"e{n}",
                OK,
                (call(f"e{n}#0", contact), call(f"e{n}#1", contact)),
                (f"limit:{n % 3}", "loop:x"),
                now=now,
                conversation=talk,
                timer=TimerWrite(talk.key, now + 10 * 365 * DAY, 1) if n == 0 else None,
                opt_outs=((contact, n % 5 == 0),) if n % 5 in (0, 1) else (),
            )
        )
        await store.take_slot("hoiio", 100, f"p:{n}", now + 60.0, now)
    claimed = await store.claim_outbox(1000.0, 60.0, 200)
    assert len(claimed) == events
    for n, item in enumerate(sorted(claimed, key=lambda i: i.call.key)):
        status = ("sent", "dry_run", "dead", "pending")[n % 4]
        if status == "pending":
            await store.release_outbox(item.call.key, 1001.0)
        else:
            await store.finish_outbox(
                item.call.key, status, "x" if status == "dead" else None, 1001.0
            )


async def what_is_left(store: Store, events: int = 40) -> dict[str, int]:
    outbox = await store.outbox(limit=10_000)
    conversations = [
        await store.get_conversation(f"textit:sms:+65900{n:05d}") for n in range(events)
    ]
    slot_free = await store.take_slot("hoiio", 100, "probe", 0.0, 1000.0) == 0.0
    await store.free_slot("hoiio", "probe")
    return {
        "responses": sum([await store.get_response(f"e{n}") is not None for n in range(events)]),
        "sent": sum(1 for i in outbox if i.status in ("sent", "dry_run")),
        "dead": sum(1 for i in outbox if i.status == "dead"),
        "pending": sum(1 for i in outbox if i.status == "pending"),
        "hits": sum([await store.count_hits(k, 0.0) for k in ("limit:0", "limit:1", "limit:2")]),
        "conversations": sum(1 for c in conversations if c is not None),
        "opted_out": len(await store.opted_out([f"+65900{n:05d}" for n in range(events)])),
        "slots": int(slot_free),
    }


async def test_purge_with_a_future_clock_leaves_only_what_is_kept(store: Store) -> None:
    """Each kind of record goes after its retention (RESPONDER_RETAIN_*), counted."""
    await fill_a_day(store)
    retention = Retention(sent=7 * DAY, dead=30 * DAY, hits=31 * DAY, conversations=30 * DAY)
    before = await what_is_left(store)
    assert before == {
        "responses": 40,
        # 80 calls: the first of each contact's lane was claimed; a quarter of those were
        # sent, a quarter dry-run, a quarter dead, a quarter given back.
        "sent": 20,
        "dead": 10,
        "pending": 50,
        "hits": 40,
        "conversations": 40,
        "opted_out": 8,
        "slots": 1,
    }
    # A day later: only the stored answers are kept less than a day (ttl 7 days here: none).
    await store.purge(1000.0 + DAY, retention)
    assert await what_is_left(store) == before
    # Past the sent retention, before the others.
    await store.purge(1001.0 + 8 * DAY, retention)
    assert await what_is_left(store) == {**before, "responses": 0, "sent": 0}
    # A year on: what is left is what is still wanted.
    await store.purge(1001.0 + 365 * DAY, retention)
    assert await what_is_left(store) == {
        "responses": 0,
        "sent": 0,
        "dead": 0,
        "pending": 50,  # never dropped: sent or dead first
        "hits": 0,
        "conversations": 1,  # the one with a timer pending
        "opted_out": 8,  # while they stay opted out
        "slots": 1,
    }
    assert await store.purge(1001.0 + 365 * DAY, retention) == 0


async def test_an_opt_in_leaves_no_mark(store: Store) -> None:
    await store.commit(Commit("o1", OK, now=1.0, opt_outs=(("+6591", True), ("+6592", True))))
    await store.commit(Commit("o2", OK, now=2.0, opt_outs=(("+6591", False),)))
    assert await store.opted_out(["+6591", "+6592"]) == {"+6592"}


# -- limits checked at commit -----------------------------------------------------------------


async def test_a_commit_past_a_limit_fails_and_writes_nothing(store: Store) -> None:
    once = (HitLimit("limit:a", 100.0, 1),)
    await store.commit(Commit("l1", OK, hits=("limit:a",), now=100.0, limits=once))
    late = Commit("l2", OTHER, (call("l2#0"),), ("limit:a", "x"), now=101.0, limits=once)
    with pytest.raises(ConflictError, match="limit:a"):
        await store.commit(late)
    assert await store.get_response("l2") is None
    assert await store.outbox() == []
    assert (await store.count_hits("limit:a", 0.0), await store.count_hits("x", 0.0)) == (1, 0)
    # Hits before the window do not count; a commit's own hits do.
    assert await store.commit(
        Commit("l3", OK, hits=("limit:a",), now=300.0, limits=(HitLimit("limit:a", 200.0, 1),))
    ) == (OK, True, ())
    two = Commit("l4", OK, hits=("cap:b", "cap:b"), now=300.0, limits=(HitLimit("cap:b", 0.0, 1),))
    with pytest.raises(ConflictError):
        await store.commit(two)


async def test_racing_commits_under_one_limit_have_one_winner(store: Store) -> None:
    commits = [
        Commit(f"r{i}", OK, hits=("limit:r",), now=50.0, limits=(HitLimit("limit:r", 0.0, 1),))
        for i in range(20)
    ]
    results = await asyncio.gather(*(store.commit(c) for c in commits), return_exceptions=True)
    assert sum(1 for r in results if not isinstance(r, BaseException)) == 1
    assert all(isinstance(r, ConflictError) for r in results if isinstance(r, BaseException))
    assert await store.count_hits("limit:r", 0.0) == 1


# -- conversations, timers, opt-outs, secrets -----------------------------------------------


def talk(state: str = "q1", status: str = "active") -> Conversation:
    return Conversation("textit:sms:+1", "survey", state, "textit", "textit", status=status)


async def test_conversations_are_written_by_compare_and_set(store: Store) -> None:
    assert await store.get_conversation("textit:sms:+1") is None
    await store.commit(Commit("c1", OK, now=1.0, conversation=talk("q1")))
    first = await store.get_conversation("textit:sms:+1")
    assert first is not None
    assert (first.state, first.version) == ("q1", 1)
    await store.commit(Commit("c2", OK, now=2.0, conversation=talk("q2"), expected_version=1))
    # A writer that read version 1 too has lost: nothing of its commit is written.
    stale = Commit(
        "c3", OTHER, (call("c3#0"),), ("h",), now=3.0, conversation=talk("q9"), expected_version=1
    )
    with pytest.raises(ConflictError, match="at version 2, expected 1"):
        await store.commit(stale)
    with pytest.raises(ConflictError):
        await store.commit(Commit("c4", OK, now=4.0, conversation=talk("q9"), expected_version=0))
    second = await store.get_conversation("textit:sms:+1")
    assert second is not None
    assert (second.state, second.version) == ("q2", 2)
    assert await store.get_response("c3") is None
    assert await store.outbox() == []
    assert await store.count_hits("h", 0.0) == 0
    assert await store.count_conversations() == 1
    await store.commit(
        Commit("c5", OK, now=5.0, conversation=talk("done", "ended"), expected_version=2)
    )
    assert await store.count_conversations() == 0
    assert await store.count_conversations("ended") == 1


async def test_concurrent_writers_of_one_version_have_one_winner(store: Store) -> None:
    await store.commit(Commit("c0", OK, now=1.0, conversation=talk("q1")))
    attempts = [
        store.commit(Commit(f"w{i}", OK, now=2.0, conversation=talk(f"s{i}"), expected_version=1))
        for i in range(20)
    ]
    results = await asyncio.gather(*attempts, return_exceptions=True)
    wins = [r for r in results if not isinstance(r, BaseException)]
    assert len(wins) == 1
    assert all(isinstance(r, ConflictError) for r in results if isinstance(r, BaseException))
    stored = await store.get_conversation("textit:sms:+1")
    assert stored is not None
    assert stored.version == 2


async def test_conversations_are_found_by_contact_last_updated_first(store: Store) -> None:
    def of(contact: str, channel: str, updated: float, status: str = "active") -> Conversation:
        return Conversation(
            f"{channel}:sms:{contact}",
            "survey",
            "q1",
            channel,
            "textit",
            contact=contact,
            status=status,
            updated=updated,
        )

    assert await store.find_conversations() == []
    await store.commit(Commit("f1", OK, now=1.0, conversation=of("+1", "textit", 10.0)))
    await store.commit(Commit("f2", OK, now=2.0, conversation=of("+2", "textit", 30.0)))
    await store.commit(Commit("f3", OK, now=3.0, conversation=of("+1", "sales", 20.0, "ended")))
    everyone = await store.find_conversations()
    assert [c.key for c in everyone] == ["textit:sms:+2", "sales:sms:+1", "textit:sms:+1"]
    assert everyone[0].version == 1
    mine = await store.find_conversations("+1")
    assert [c.key for c in mine] == ["sales:sms:+1", "textit:sms:+1"]
    assert [c.key for c in await store.find_conversations("+1", limit=1)] == ["sales:sms:+1"]
    assert await store.find_conversations("+3") == []


async def test_a_conversations_timer_can_be_read(store: Store) -> None:
    key = "textit:sms:+1"
    assert await store.get_timer(key) is None
    await store.commit(Commit("t1", OK, now=1.0, timer=TimerWrite(key, 100.5, 3)))
    assert await store.get_timer(key) == Timer(key, 100.5, 3)
    await store.claim_timers(101.0, 30.0, 10)  # a lease does not change what is pending
    assert await store.get_timer(key) == Timer(key, 100.5, 3)
    await store.commit(Commit("t2", OK, now=2.0, timer=TimerWrite(key, None)))
    assert await store.get_timer(key) is None


async def test_timers_fire_once_per_lease(store: Store) -> None:
    key = "textit:sms:+1"
    await store.commit(Commit("t1", OK, now=1.0, timer=TimerWrite(key, 100.0, 3)))
    await store.commit(Commit("t2", OK, now=1.0, timer=TimerWrite("other", 50.0, 1)))
    assert await store.claim_timers(49.0, 30.0, 10) == []
    assert await store.claim_timers(100.0, 30.0, 10) == [
        Timer("other", 50.0, 1),
        Timer(key, 100.0, 3),
    ]
    assert await store.claim_timers(129.0, 30.0, 10) == []  # leased to whoever claimed it
    assert len(await store.claim_timers(130.0, 30.0, 10)) == 2  # a lapsed lease offers again
    # A commit that moves or clears a timer replaces the lease.
    await store.commit(Commit("t3", OK, now=131.0, timer=TimerWrite(key, 200.0, 4)))
    await store.commit(Commit("t4", OK, now=131.0, timer=TimerWrite("other", None)))
    assert await store.claim_timers(199.0, 30.0, 10) == []
    assert await store.claim_timers(200.0, 30.0, 10) == [Timer(key, 200.0, 4)]
    assert (await store.depth()).timers == 1


async def test_opt_outs_are_recorded_with_the_commit(store: Store) -> None:
    assert await store.opted_out([]) == set()
    await store.commit(Commit("o1", OK, now=1.0, opt_outs=(("+1", True), ("+2", True))))
    await store.commit(Commit("o2", OK, now=2.0, opt_outs=(("+2", False),)))
    assert await store.opted_out(["+1", "+2", "+3"]) == {"+1"}


# -- snapshot: a webhook's likely reads in one call -----------------------------------------


async def test_snapshot_of_an_empty_store_finds_nothing(store: Store) -> None:
    wanted = Wanted("e1", "textit:sms:+1", "+1", (("loop:+1", 0.0), ("cap:+1", 0.0)))
    assert await store.snapshot(wanted) == Snapshot(None, None, False, (0, 0))
    assert await store.snapshot(Wanted("e1")) == Snapshot()


async def test_snapshot_reads_what_the_single_reads_read(store: Store) -> None:
    await store.commit(
        Commit("c1", OK, hits=("loop:+1", "cap:+1"), now=100.0, conversation=talk("q1"))
    )
    await store.commit(
        Commit("c2", OTHER, hits=("loop:+1",), now=200.0, opt_outs=(("+1", True), ("+2", True)))
    )
    await store.commit(Commit("c3", OK, now=300.0, conversation=talk("q2"), expected_version=1))
    hits = (("loop:+1", 100.0), ("loop:+1", 100.5), ("cap:+1", 0.0), ("cap:+1", 100.001))
    got = await store.snapshot(Wanted("c2", "textit:sms:+1", "+1", hits))
    assert got.response == OTHER == await store.get_response("c2")
    assert got.conversation == talk("q2").with_version(2)
    assert got.conversation == await store.get_conversation("textit:sms:+1")
    assert got.opted_out is True
    assert got.hits == (2, 1, 1, 0)  # the window start is inclusive, as in count_hits
    assert [await store.count_hits(k, since) for k, since in hits] == list(got.hits)


async def test_snapshot_reads_only_what_is_asked_for(store: Store) -> None:
    await store.commit(Commit("c1", OK, now=1.0, conversation=talk(), opt_outs=(("+1", True),)))
    await store.commit(Commit("c2", OK, now=2.0, opt_outs=(("+2", True), ("+2", False))))
    assert await store.snapshot(Wanted("other", None, None)) == Snapshot()
    assert await store.snapshot(Wanted("other", "textit:sms:+9", "+9")) == Snapshot()
    opted_in = await store.snapshot(Wanted("c2", None, "+2"))
    assert opted_in == Snapshot(OK, None, False, ())  # opted in again after opting out


async def test_snapshot_response_is_byte_identical(store: Store) -> None:
    response = StoredResponse(200, "text/plain; charset=latin-1", b"caf\xe9 \x00\n\xff end\n")
    await store.commit(Commit("bytes", response, now=1.0))
    got = (await store.snapshot(Wanted("bytes"))).response
    assert got == response
    assert got is not None
    assert type(got.body) is bytes


async def test_a_secret_is_made_once_and_kept(store: Store) -> None:
    first = await store.secret("app_state")
    assert len(first) == 32
    assert await store.secret("app_state") == first
    assert await store.secret("other") != first


# -- SQLite only: durability and errors -----------------------------------------------------


async def open_sqlite(path: Path) -> SqliteStore:
    store = SqliteStore(str(path))
    await store.open()
    return store


async def test_sqlite_data_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "data" / "responder.db"
    body = StoredResponse(200, "text/plain", b"\xff\x00 r\xe9ponse")
    store = await open_sqlite(path)
    calls = (call("e1#0", None), call("e1#1", None), call("e1#2", None))
    await store.commit(Commit("e1", body, calls, ("limit:a",), now=10.0))
    await store.commit(Commit("e2", OK, (), ("limit:a", "limit:b"), now=20.0))
    await store.claim_outbox(10.0, 60.0, 10)
    await store.finish_outbox("e1#0", "sent", None, 11.0)
    await store.retry_outbox("e1#1", 15.0, "HTTP 502")
    # e1#2 stays leased until 70: as if the process died while sending it.
    await store.close()

    again = await open_sqlite(path)
    try:
        assert await again.get_response("e1") == body
        assert await again.get_response("e2") == OK
        assert await again.count_hits("limit:a", 0.0) == 2
        assert await again.count_hits("limit:b", 0.0) == 1
        assert keys(await again.outbox(status="sent")) == ["e1#0"]
        (retried,) = await again.claim_outbox(15.0, 60.0, 10)
        assert (retried.call.key, retried.attempts, retried.last_error) == (
            "e1#1",
            1,
            "HTTP 502",
        )
        assert keys(await again.claim_outbox(70.0, 60.0, 10)) == ["e1#2"]
        _, fresh, _ = await again.commit(Commit("e1", OTHER, now=30.0))
        assert not fresh
    finally:
        await again.close()


async def test_sqlite_outbox_written_before_lanes_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE outbox (key TEXT PRIMARY KEY, payload TEXT NOT NULL, created REAL NOT NULL,"
        " next_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
        " status TEXT NOT NULL DEFAULT 'pending', last_error TEXT, finished REAL);"
    )
    block = OutboundCall("o#1", "hoiio", "ivr/middle/play", {"session": "S-1"}, contact="S-1")
    rows = [(c.key, c.to_json(), 10.0 + n, 10.0) for n, c in enumerate((call("o#0"), block))]
    rows.append((call("o#2").key, call("o#2").to_json(), 12.0, 10.0))
    old.executemany("INSERT INTO outbox (key, payload, created, next_at) VALUES (?,?,?,?)", rows)
    old.commit()
    old.close()
    store = await open_sqlite(path)
    try:
        assert keys(await store.claim_outbox(20.0, 60.0, 10)) == ["o#1", "o#0"]
        await store.finish_outbox("o#0", "sent", None, 21.0)
        (item,) = await store.claim_outbox(21.0, 60.0, 10)
        assert (item.call.key, item.created, item.enqueued) == ("o#2", 12.0, 12.0)
    finally:
        await store.close()


async def test_two_sqlite_stores_on_one_file_agree_on_the_winner(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    a, b = await open_sqlite(path), await open_sqlite(path)
    try:
        commits = [
            (a if i % 2 else b).commit(
                Commit("k", StoredResponse(200, "text/plain", str(i).encode()), (call("k#0"),))
            )
            for i in range(20)
        ]
        results = await asyncio.gather(*commits)
        assert sum(committed.fresh for committed in results) == 1
        assert len({committed.response for committed in results}) == 1
        assert len(await a.outbox()) == 1
    finally:
        await a.close()
        await b.close()


@pytest.mark.parametrize("where", ["under-a-file", "a-directory", "not-a-database"])
async def test_sqlite_open_on_an_unusable_path_raises_store_error(
    tmp_path: Path, where: str
) -> None:
    blocker = tmp_path / "blocker"
    if where == "under-a-file":
        blocker.write_text("I am a file, not a directory")
        path = blocker / "sub" / "responder.db"
    elif where == "a-directory":
        blocker.mkdir()
        path = blocker
    else:
        blocker.write_bytes(b"this is not a SQLite database at all " * 200)
        path = blocker
    store = SqliteStore(str(path))
    with pytest.raises(StoreError, match="cannot open SQLite store"):
        await store.open()
    with pytest.raises(StoreError, match="not open"):
        await store.get_response("x")
    await store.close()  # closing a store that never opened is harmless


async def test_sqlite_use_before_open_and_after_close_raises_store_error(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "x.db"))
    with pytest.raises(StoreError):
        await store.commit(Commit("k", OK))
    await store.open()
    await store.close()
    await store.close()
    with pytest.raises(StoreError):
        await store.claim_outbox(0.0, 60.0, 10)


async def test_sqlite_errors_while_running_surface_as_store_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.db"
    store = await open_sqlite(path)
    try:
        other = sqlite3.connect(path)
        other.execute("DROP TABLE outbox")
        other.commit()
        other.close()
        with pytest.raises(StoreError):
            await store.claim_outbox(0.0, 60.0, 10)
        with pytest.raises(StoreError):
            await store.commit(Commit("k", OK, (call("k#0"),)))
        # The failed commit rolled back completely and left no transaction open.
        assert await store.get_response("k") is None
        repair = sqlite3.connect(path, timeout=0.5)
        repair.executescript(SCHEMA)
        repair.close()
        assert await store.commit(Commit("k", OK, (call("k#0"),))) == (OK, True, ())
        assert keys(await store.outbox()) == ["k#0"]
    finally:
        await store.close()


# -- open_store URLs ------------------------------------------------------------------------


def test_open_store_picks_the_backend_from_the_url(tmp_path: Path) -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    absolute = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    assert isinstance(absolute, SqliteStore)
    assert absolute.path == str(tmp_path / "a.db")
    relative = open_store("sqlite:///data/responder.db")
    assert isinstance(relative, SqliteStore)
    assert relative.path == "data/responder.db"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///", "names no database file"),
        ("sqlite://relative.db", "unsupported store URL"),
        ("postgres://db.example.com/responder", "unsupported store URL"),
        ("", "unsupported store URL"),
        ("responder.db", "unsupported store URL"),
        ("MEMORY", "unsupported store URL"),
    ],
)
def test_open_store_rejects_bad_urls(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        open_store(url)
