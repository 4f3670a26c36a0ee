"""A webhook's trips to the store, over real HTTP on a real SQLite store: one read in the
common case, and a fresh one when a conflict makes it decide again."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from responder.outbound import Commit, Committed, StoredResponse
from responder.rules.loader import load_rules
from responder.settings import Settings
from responder.web.server import create_app
from tests.conftest import write_rules
from tests.stores.counting import CountingSqliteStore

ALICE = "+6591234567"
RULES = """
compliance:
  cap: {per_contact: 1, every: 1d}
rules:
  - name: hello
    on: sms.received
    reply: {text: "Hello {{ contact }}"}
"""


class RacedStore(CountingSqliteStore):
    """Another replica's commit (``rival``) lands just before this store's first one."""

    def __init__(self, path: str, rival: Commit | None = None) -> None:
        super().__init__(path)
        self.rival = rival

    async def commit(self, commit: Commit) -> Committed:
        if self.rival is not None:
            rival, self.rival = self.rival, None
            await super().commit(rival)
        return await super().commit(commit)


Serve = Callable[[CountingSqliteStore], Any]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    clients: list[TestClient[Any, Any]] = []

    async def start(store: CountingSqliteStore) -> TestClient[Any, Any]:
        rules = write_rules(tmp_path / "rules", RULES)
        settings = Settings.from_env({}, rules=(str(rules),), store=f"sqlite:///{store.path}")
        app = create_app(settings, rules=load_rules(settings.rules), store=store)
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


def sms(n: int) -> dict[str, str]:
    return {"event": "mo_sms", "sms": str(n), "phone": ALICE, "text": "hi"}


async def test_a_webhook_reads_the_store_once(serve: Serve, tmp_path: Path) -> None:
    store = CountingSqliteStore(str(tmp_path / "r.db"))
    client = await serve(store)
    store.reads.clear()  # start-up reads are not a webhook's
    resp = await client.post("/webhooks/textit", data=sms(1))
    assert (await resp.json())["text"] == f"Hello {ALICE}"
    # The stored response, the conversation, the opt-out, the cap and the loop guard: one read.
    assert store.reads == ["snapshot"]
    again = await client.post("/webhooks/textit", data=sms(1))
    assert (await again.json())["text"] == f"Hello {ALICE}"  # a copy: from the store
    assert store.reads == ["snapshot", "snapshot"]
    capped = await client.post("/webhooks/textit", data=sms(2))
    assert await capped.read() == b""  # over the cap, known from the one read
    assert store.reads == ["snapshot"] * 3


async def test_a_conflict_decides_again_from_a_fresh_read(serve: Serve, tmp_path: Path) -> None:
    # Another replica texts Alice between this webhook's read and its commit: the cap it
    # counted on is gone, so it decides again, and must not reuse what it read first.
    empty = StoredResponse(200, "text/plain", b"")
    rival = Commit("rival", empty, hits=(f"cap:{ALICE}",), now=time.time())
    store = RacedStore(str(tmp_path / "r.db"), rival)
    client = await serve(store)
    store.reads.clear()
    resp = await client.post("/webhooks/textit", data=sms(1))
    assert await resp.read() == b""
    assert store.reads == ["snapshot", "snapshot"]
