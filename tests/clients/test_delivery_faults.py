"""Delivery through faults: a real ``responder serve`` process on a SQLite file, a fake Hoiio
API (a real HTTP server on an ephemeral port) failing 30 % of requests, and SIGKILL twice while
1,000 replies are going out. Every reply reaches the fake exactly once, counted by its
idempotency key; then SIGTERM shuts down cleanly.

``RESPONDER_FAULT_REPLIES`` changes the count (default 1,000);
``pytest -s tests/clients/test_delivery_faults.py`` prints the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

import aiohttp
import pytest

from responder.testing.fakes import Behaviour, FakeProvider
from responder.testing.process import free_port
from tests.conftest import wait_for, write_rules

REPLIES = int(os.environ.get("RESPONDER_FAULT_REPLIES", "1000"))
RATE = 100  # Hoiio requests/s: delivery takes long enough to be killed midway
RULES = """
rules:
  - name: ack
    on: sms.received
    sms: {text: "Got it: {{ text }}"}
"""


def contact(n: int) -> str:
    return f"+659{n:07d}"


class Server:
    """``responder serve`` as a child process on a free port."""

    def __init__(self, rules: Path, db: Path, env: dict[str, str], log: Path) -> None:
        self.rules, self.db, self.env, self.log = rules, db, env, log
        self.port = 0
        self.proc: asyncio.subprocess.Process | None = None
        self._log: BinaryIO | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, http: aiohttp.ClientSession) -> None:
        self.port = free_port()
        self._log = self.log.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "responder",
            "serve",
            "--rules",
            str(self.rules),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--store",
            f"sqlite:///{self.db}",
            env=self.env,
            stdout=self._log,
            stderr=asyncio.subprocess.STDOUT,
        )
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            if self.proc.returncode is not None:
                raise AssertionError(f"responder exited with {self.proc.returncode}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{self.url}/healthz") as resp:
                    if resp.status == 200:
                        return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("responder did not come up")
            await asyncio.sleep(0.05)

    async def stop(self, sig: signal.Signals) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), 30)
        if self._log is not None:
            self._log.close()
            self._log = None
        return code


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    behaviour = Behaviour(fail_ratio=0.3, idempotent=True)
    async with FakeProvider("hoiio", behaviour=behaviour, seed=4) as provider:
        yield provider


async def post_all(http: aiohttp.ClientSession, url: str, count: int) -> None:
    gate = asyncio.Semaphore(16)

    async def post(n: int) -> None:
        form = {"txn_ref": f"AA-R-{n}", "from": contact(n), "to": "+6531234567", "msg": f"m{n}"}
        async with gate, http.post(f"{url}/webhooks/hoiio", data=form) as resp:
            assert resp.status == 200, await resp.text()

    await asyncio.gather(*(post(n) for n in range(count)))


def outbox_statuses(db: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return dict(conn.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall())


async def test_every_reply_arrives_exactly_once_through_failures_and_two_kills(
    tmp_path: Path, fake: FakeProvider
) -> None:
    rules = write_rules(tmp_path / "rules", RULES)
    db = tmp_path / "responder.db"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RESPONDER_", "HOIIO_"))},
        "HOIIO_APP_ID": "app-1",
        "HOIIO_ACCESS_TOKEN": "token-secret-1",
        "HOIIO_API_URL": fake.url,
        "HOIIO_RATE_LIMIT": f"{RATE}/s",
        "RESPONDER_DELIVERY_LEASE": "2",  # calls in flight at a kill go out again after 2 s
        "RESPONDER_RETRY_BASE": "0.05",
        "RESPONDER_RETRY_MAX": "0.5",
        "RESPONDER_DELIVERY_MAX_ATTEMPTS": "30",  # 0.3**30: no reply runs out of tries
        "RESPONDER_LOG_LEVEL": "WARNING",
    }
    log = tmp_path / "responder.log"
    started = time.monotonic()
    kills: list[int] = []
    async with aiohttp.ClientSession() as http:
        server = Server(rules, db, env, log)
        await server.start(http)
        await post_all(http, server.url, REPLIES)
        intake = time.monotonic() - started
        for fraction in (0.35, 0.7):
            await wait_for(lambda f=fraction: len(fake.accepted) >= f * REPLIES, 120, "progress")
            assert await server.stop(signal.SIGKILL) == -signal.SIGKILL
            kills.append(len(fake.accepted))
            server = Server(rules, db, env, log)
            await server.start(http)
        await wait_for(lambda: len(fake.accepted) == REPLIES, 120, "all replies")
        assert await server.stop(signal.SIGTERM) == 0  # a clean shutdown on SIGTERM
    elapsed = time.monotonic() - started

    # Both kills came while replies were still going out.
    assert all(0 < k < REPLIES for k in kills), kills
    # 0 lost, 0 duplicated: every contact's reply was accepted once, under one key.
    webhooks = sorted(int(key.split(":AA-R-")[1].split(":")[0]) for key in fake.accepted)
    assert webhooks == list(range(REPLIES))
    assert fake.stats()["accepted_twice"] == []
    sent = [r for r in fake.requests if r.headers.get("Idempotency-Key") in fake.accepted]
    assert {r.params["dest"] for r in sent} == {contact(n) for n in range(REPLIES)}
    assert outbox_statuses(db) == {"sent": REPLIES}
    stats = fake.stats()
    assert stats["refused"] > 0.2 * REPLIES  # the fake really failed about 30 %
    assert stats["max_in_flight"] <= 16  # the worker's bound (RESPONDER_DELIVERY_CONCURRENCY)
    print(
        f"\nfault test: {REPLIES} replies, {stats['requests']} requests, "
        f"{stats['refused']} failed on purpose, killed at {kills[0]} and {kills[1]} delivered, "
        f"{stats['replays']} re-sent after a kill (answered from the key), lost 0, "
        f"duplicated {len(stats['accepted_twice'])}, max in flight {stats['max_in_flight']}; "
        f"intake {intake:.1f}s, total {elapsed:.1f}s"
    )
