"""Concurrent notifications for one conversation, over real HTTP: handled one after the other,
exactly one of several racing notifications for the same signed state moves the call, the
conversation's version counts its writes, and no update is lost."""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from responder.web.server import ENGINE, STORE
from tests.conftest import REPO, store_overrides, wait_for

EXAMPLE = REPO / "examples" / "ivr-menu"
PUBLIC = "https://ivr.example.org"
CALLER = "+6591234567"
ALICE = "+6598765432"
SESSION = "S-RACE"
KEY = f"hoiio:ivr:{SESSION}"


def slow_reads(app: Any, delay: float = 0.02) -> None:
    """Make every conversation read (alone or in a webhook's snapshot) yield to the loop, so
    unserialised handlers interleave."""
    store = app[STORE]
    read, snapshot = store.get_conversation, store.snapshot

    async def get_conversation(key: str) -> Any:
        found = await read(key)
        await asyncio.sleep(delay)
        return found

    async def slow_snapshot(wanted: Any) -> Any:
        found = await snapshot(wanted)
        await asyncio.sleep(delay)
        return found

    store.get_conversation = get_conversation
    store.snapshot = slow_snapshot


def track_overlap(app: Any) -> dict[str, int]:
    """Count how many webhooks are decided at once, from their reads (engine.prepare) to the
    end of engine.handle (per conversation, they must not overlap)."""
    engine = app[ENGINE]
    prepare: Callable[..., Awaitable[Any]] = engine.prepare
    handle: Callable[..., Awaitable[Any]] = engine.handle
    active: set[str] = set()  # idempotency keys
    seen = {"max": 0, "calls": 0}

    async def wrapped_prepare(event: Any, key: str, *args: Any) -> Any:
        active.add(key)
        seen["max"] = max(seen["max"], len(active))
        prepared = await prepare(event, key, *args)
        if prepared.reads.response is not None:  # a copy: answered without a decision
            active.discard(key)
        return prepared

    async def wrapped_handle(event: Any, key: str, *args: Any) -> Any:
        seen["calls"] += 1
        try:
            return await handle(event, key, *args)
        finally:
            active.discard(key)

    engine.prepare = wrapped_prepare
    engine.handle = wrapped_handle
    return seen


async def answer(client: Any, fake: Any, session: str = SESSION) -> dict[str, str]:
    resp = await client.post(
        "/webhooks/hoiio",
        data={
            "ivr_block": "answer",
            "session": session,
            "txn_ref": f"AA-{session}",
            "from": CALLER,
            "to": "+6531234567",
        },
    )
    assert resp.status == 200
    await wait_for(lambda: len(fake.requests) >= 1)
    request = fake.requests[-1]
    return dict(request.params)


async def notify(client: Any, block: dict[str, str], session: str = SESSION, **params: str) -> int:
    url = urlsplit(block["notify_url"])
    resp = await client.post(
        f"{url.path}?{url.query}",
        data={
            "session": session,
            "txn_ref": f"AA-{session}",
            "from": CALLER,
            "to": "+6531234567",
            **params,
        },
    )
    await resp.read()
    return resp.status


async def ivr_calls(store: Any, session: str = SESSION) -> list[Any]:
    """The IVR blocks queued for one session, oldest first."""
    items = await store.outbox(limit=1000)
    calls = [i.call for i in reversed(items) if i.call.params.get("session") == session]
    return [c for c in calls if c.endpoint.startswith("ivr/")]


def app_state_of(params: dict[str, Any]) -> str:
    return parse_qs(urlsplit(params["notify_url"]).query)["app_state"][0]


NEXT_STATE = {"1": "sales", "2": "voicemail"}
NEXT_BLOCK = {
    "sales": "ivr/end/transfer",
    "voicemail": "ivr/middle/record",
    "menu": "ivr/middle/gather",
}


@pytest.mark.parametrize("store", ["sqlite", "memory://", "redis"])
@pytest.mark.parametrize("count", [2, 10])
async def test_racing_gathers_for_one_signed_state(
    make_client: Any,
    request: pytest.FixtureRequest,
    fake_hoiio: Any,
    tmp_path: Path,
    store: str,
    count: int,
) -> None:
    overrides = store_overrides(store, request)
    client = await make_client(EXAMPLE, public_url=PUBLIC, **overrides)
    app = client.server.app
    menu = await answer(client, fake_hoiio)
    assert app_state_of(menu) == "main-menu:menu:1"
    slow_reads(app)
    seen = track_overlap(app)
    # Different notifications (different keys) for the same signed state, all at once.
    digits = [str(i % 10) for i in range(1, count + 1)]
    statuses = await asyncio.gather(
        *(notify(client, menu, ivr_block="gather", digits=d) for d in digits)
    )
    assert statuses == [200] * count
    assert seen["calls"] == count
    assert seen["max"] == 1  # one after the other
    conversation = await app[STORE].get_conversation(KEY)
    # answer + exactly one move: the others saw a stale state and were ignored.
    assert conversation.version == 2
    assert conversation.seq == 2
    assert conversation.status == "active"
    assert sum(conversation.visits.values()) == 2
    calls = await ivr_calls(app[STORE])
    assert len(calls) == 2
    assert calls[0].endpoint == "ivr/middle/gather"
    assert calls[1].endpoint == NEXT_BLOCK[conversation.state]
    assert app_state_of(calls[1].params) == f"main-menu:{conversation.state}:2"


async def test_racing_gathers_across_two_processes_on_one_database(
    make_client: Any,
    fake_hoiio: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two servers (own locks, one SQLite file): the compare-and-set stops the second write
    and the retry sees the state moved on."""
    first = await make_client(EXAMPLE, public_url=PUBLIC)
    second = await make_client(EXAMPLE, public_url=PUBLIC)
    menu = await answer(first, fake_hoiio)
    for client in (first, second):
        slow_reads(client.server.app, 0.05)
    with caplog.at_level("INFO", logger="responder"):
        statuses = await asyncio.gather(
            notify(first, menu, ivr_block="gather", digits="1"),
            notify(second, menu, ivr_block="gather", digits="2"),
        )
    assert statuses == [200, 200]
    store = first.server.app[STORE]
    conversation = await store.get_conversation(KEY)
    assert conversation.version == 2
    assert conversation.seq == 2
    assert conversation.state in ("sales", "voicemail")
    calls = await ivr_calls(store)
    assert [c.endpoint for c in calls] == ["ivr/middle/gather", NEXT_BLOCK[conversation.state]]
    assert "conflict on" in caplog.text
    assert "stale notification" in caplog.text


async def test_the_loser_of_a_race_is_replayed_not_redone(
    make_client: Any, fake_hoiio: Any
) -> None:
    client = await make_client(EXAMPLE, public_url=PUBLIC)
    app = client.server.app
    menu = await answer(client, fake_hoiio)
    slow_reads(app)
    await asyncio.gather(
        notify(client, menu, ivr_block="gather", digits="1"),
        notify(client, menu, ivr_block="gather", digits="2"),
    )
    before = await app[STORE].get_conversation(KEY)
    # Hoiio retries both: nothing changes.
    await asyncio.gather(
        notify(client, menu, ivr_block="gather", digits="1"),
        notify(client, menu, ivr_block="gather", digits="2"),
    )
    assert await app[STORE].get_conversation(KEY) == before
    assert len(await ivr_calls(app[STORE])) == 2


async def test_other_calls_are_not_serialised_behind_one(make_client: Any, fake_hoiio: Any) -> None:
    client = await make_client(EXAMPLE, public_url=PUBLIC)
    app = client.server.app
    sessions = [f"S-{i}" for i in range(5)]
    for session in sessions:
        await client.post(
            "/webhooks/hoiio",
            data={
                "ivr_block": "answer",
                "session": session,
                "txn_ref": f"AA-{session}",
                "from": CALLER,
                "to": "+6531234567",
            },
        )
    blocks = {c.params["session"]: c.params for c in await ivr_calls_all(app[STORE])}
    slow_reads(app, 0.05)
    seen = track_overlap(app)
    await asyncio.gather(
        *(notify(client, blocks[s], session=s, ivr_block="gather", digits="2") for s in sessions)
    )
    assert seen["max"] > 1  # different conversations run side by side
    for session in sessions:
        conversation = await app[STORE].get_conversation(f"hoiio:ivr:{session}")
        assert (conversation.state, conversation.version) == ("voicemail", 2)


async def ivr_calls_all(store: Any) -> list[Any]:
    items = await store.outbox(limit=1000)
    return [i.call for i in reversed(items) if i.call.endpoint.startswith("ivr/")]


# -- SMS ---------------------------------------------------------------------------------------

SURVEY = """
# This dialogue ends on the word "stop" and takes bursts of messages: the compliance layer is
# told so (STOP opt-out on another word, a loop guard that allows the bursts).
compliance:
  stop: {words: [unsubscribe]}
  loop_guard: {replies: 1000, within: 1s}
dialogues:
  - name: survey
    start: {on: sms.received, when: {text: {keyword: survey}}}
    states:
      q1:
        say: "Q1?"
        on: [{otherwise: true, goto: q2, set: {a1: "{{ text }}"}}]
      q2:
        say: "Q2?"
        on: [{otherwise: true, goto: done, set: {a2: "{{ text }}"}}]
      done:
        say: "Thanks: {{ vars.a1 }} then {{ vars.a2 }}."
        end: true
        outcome: answered
  - name: counter
    start: {on: sms.received, when: {text: {keyword: count}}}
    states:
      zero:
        set: {n: "0"}
        next: counting
      counting:
        say: "n={{ vars.n }}"
        on:
          - {text: {keyword: stop}, goto: stopped}
          - {otherwise: true, goto: counting, set: {n: "{{ vars.n | int + 1 }}"}}
      stopped: {say: "Stopped at {{ vars.n }}.", end: true}
"""


def rules_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.yaml").write_text(textwrap.dedent(SURVEY))
    return directory


_sms_ids = iter(range(1000, 100000))


async def sms(client: Any, text: str, contact: str = ALICE) -> str | None:
    resp = await client.post(
        "/webhooks/textit",
        data={
            "event": "mo_sms",
            "relayer": "1",
            "sms": str(next(_sms_ids)),
            "phone": contact,
            "text": text,
            "direction": "I",
        },
    )
    assert resp.status == 200
    body = await resp.read()
    if not body:
        return None
    reply: str = json.loads(body)["text"]
    return reply


@pytest.mark.parametrize("store", ["sqlite", "memory://", "redis"])
async def test_two_sms_replies_at_once_are_both_taken_in_order(
    make_client: Any, request: pytest.FixtureRequest, tmp_path: Path, store: str
) -> None:
    overrides = store_overrides(store, request)
    client = await make_client(rules_dir(tmp_path), **overrides)
    app = client.server.app
    assert await sms(client, "survey") == "Q1?"
    slow_reads(app)
    seen = track_overlap(app)
    replies = await asyncio.gather(sms(client, "red"), sms(client, "blue"))
    assert seen["max"] == 1
    conversation = await app[STORE].get_conversation(f"textit:sms:{ALICE}")
    assert conversation.status == "ended"
    assert conversation.outcome == "answered"
    assert conversation.version == 3  # start, q1 answered, q2 answered
    answers = (conversation.vars["a1"], conversation.vars["a2"])
    assert sorted(answers) == ["blue", "red"]  # neither answer was lost or used twice
    # The reply to each message says what happened to it, consistently with the order.
    first, second = answers
    by_text = dict(zip(["red", "blue"], replies, strict=True))
    assert by_text[first] == "Q2?"
    assert by_text[second] == f"Thanks: {first} then {second}."


@pytest.mark.parametrize("store", ["sqlite", "memory://", "redis"])
async def test_ten_sms_at_once_lose_no_update(
    make_client: Any, request: pytest.FixtureRequest, tmp_path: Path, store: str
) -> None:
    overrides = store_overrides(store, request)
    client = await make_client(rules_dir(tmp_path), **overrides)
    app = client.server.app
    assert await sms(client, "count") == "n=0"
    slow_reads(app, 0.01)
    replies = await asyncio.gather(*(sms(client, f"tick {i}") for i in range(10)))
    # Each message saw the count the one before it left: 1..10, each exactly once.
    assert sorted(replies, key=lambda r: int(r.split("=")[1])) == [  # type: ignore[union-attr]
        f"n={i}" for i in range(1, 11)
    ]
    conversation = await app[STORE].get_conversation(f"textit:sms:{ALICE}")
    assert conversation.vars["n"] == "10"
    assert conversation.visits == {"zero": 1, "counting": 11}
    assert conversation.version == 11
    assert await sms(client, "stop") == "Stopped at 10."


async def test_sms_of_different_contacts_do_not_share_a_conversation(
    make_client: Any, tmp_path: Path
) -> None:
    client = await make_client(rules_dir(tmp_path))
    app = client.server.app
    contacts = [f"+65900000{i:02d}" for i in range(6)]
    await asyncio.gather(*(sms(client, "count", c) for c in contacts))
    slow_reads(app, 0.01)
    await asyncio.gather(*(sms(client, "x", c) for c in contacts for _ in range(3)))
    for contact in contacts:
        conversation = await app[STORE].get_conversation(f"textit:sms:{contact}")
        assert (conversation.vars["n"], conversation.version) == ("3", 4)
