"""The read-through of one webhook: answers from its snapshot, asks the store for the rest."""

from __future__ import annotations

from responder.conversations import Conversation
from responder.outbound import Commit, StoredResponse
from responder.stores.base import Wanted
from responder.stores.prefetched import Prefetched
from tests.stores.counting import CountingMemoryStore

OK = StoredResponse(200, "text/plain", b"ok")
ALICE, BOB = "+6591234567", "+6598765432"
TALK = Conversation("textit:sms:+6591234567", "survey", "q1", "textit", "textit")
LOOP = ("loop:+6591234567", 40.0)


async def filled() -> CountingMemoryStore:
    store = CountingMemoryStore()
    await store.commit(Commit("e1", OK, hits=(LOOP[0], "other"), now=50.0, conversation=TALK))
    await store.commit(Commit("e2", OK, now=60.0, opt_outs=((ALICE, True), (BOB, True))))
    return store


async def test_what_was_prefetched_is_answered_without_the_store() -> None:
    store = await filled()
    reads = await Prefetched.take(store, Wanted("e1", TALK.key, ALICE, (LOOP,)), 100.0)
    assert (reads.response, reads.now) == (OK, 100.0)
    # Written after the snapshot: what the webhook reads is the snapshot's moment.
    await store.commit(Commit("e3", OK, hits=(LOOP[0],), now=70.0, opt_outs=((ALICE, False),)))
    assert await reads.get_conversation(TALK.key) == TALK.with_version(1)
    assert await reads.opted_out([ALICE]) == {ALICE}
    assert await reads.count_hits(*LOOP) == 1
    assert store.reads == ["snapshot"]


async def test_what_was_not_prefetched_is_read_from_the_store() -> None:
    store = await filled()
    reads = await Prefetched.take(store, Wanted("new", TALK.key, ALICE, (LOOP,)), 100.0)
    assert reads.response is None
    assert await reads.get_conversation("textit:sms:+6598765432") is None
    assert await reads.count_hits("other", 0.0) == 1
    assert await reads.count_hits(LOOP[0], 39.0) == 1  # the same key since another time
    assert await reads.opted_out([BOB, "+65"]) == {BOB}
    assert store.reads == ["snapshot", "get_conversation", "count_hits", "count_hits", "opted_out"]


async def test_a_mixed_opt_out_read_asks_the_store_only_for_the_others() -> None:
    store = await filled()
    reads = await Prefetched.take(store, Wanted("new", None, ALICE), 100.0)
    await store.commit(Commit("e3", OK, now=70.0, opt_outs=((ALICE, False),)))
    assert await reads.opted_out([ALICE, BOB]) == {ALICE, BOB}
    assert await reads.opted_out([ALICE]) == {ALICE}
    assert store.reads == ["snapshot", "opted_out"]
    nobody = await Prefetched.take(store, Wanted("new"), 100.0)
    assert await nobody.opted_out([ALICE]) == set()  # no contact prefetched: from the store
    assert await nobody.get_conversation(TALK.key) == TALK.with_version(1)
