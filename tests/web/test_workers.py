"""``responder serve --workers 2`` as real processes on 127.0.0.1: exactly once across workers
(every event posted three times at once, the copies racing each other), SIGTERM with
requests and calls in flight, a worker killed with SIGKILL and replaced, SIGHUP reaching
every worker and the replacement, a failed start.

``RESPONDER_WORKERS_EVENTS`` changes the number of racing events (default 1,000);
``pytest -s tests/web/test_workers.py`` prints the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from responder.testing.fakes import Behaviour, FakeProvider
from responder.testing.process import ServeProcess
from tests.conftest import wait_for, write_rules

EVENTS = int(os.environ.get("RESPONDER_WORKERS_EVENTS", "1000"))
COPIES = 3
RULES = """
rules:
  - name: ack
    on: sms.received
    reply: {text: "Got {{ text }}"}
    sms: {text: "Confirmed: {{ text }}"}
"""
SERVING = re.compile(r"with 2 workers \(pids (\d+), (\d+)\)")


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    # Idempotent, as TextIt is: a call sent again after its sender died is not sent twice.
    async with FakeProvider("textit", behaviour=Behaviour(idempotent=True)) as provider:
        yield provider


def server_env(fake: FakeProvider, **more: str) -> dict[str, str]:
    return {
        "TEXTIT_API_TOKEN": "textit-secret-1",
        "TEXTIT_API_URL": fake.url,
        "TEXTIT_RATE_LIMIT": "100000/s",
        "RESPONDER_LOG_LEVEL": "INFO",
        **more,
    }


async def start(args: list[str], env: dict[str, str], log: Path) -> tuple[ServeProcess, list[int]]:
    """A 2-worker server once both workers serve, and the workers' process ids."""
    server = await ServeProcess(["--workers", "2", *args], env, log).start()
    await wait_for(lambda: SERVING.search(server.output()) is not None, 60, "both workers")
    found = SERVING.search(server.output())
    assert found is not None
    return server, [int(found.group(1)), int(found.group(2))]


def sms(n: int, tag: str = "e") -> dict[str, str]:
    return {"event": "mo_sms", "sms": f"{tag}{n}", "phone": f"+659{n:07d}", "text": f"m{n}"}


async def post(http: aiohttp.ClientSession, url: str, data: dict[str, str]) -> tuple[int, str]:
    async with http.post(f"{url}/webhooks/textit", data=data) as resp:
        return resp.status, await resp.text()


async def post_until_answered(
    http: aiohttp.ClientSession, url: str, data: dict[str, str], within: float = 30.0
) -> tuple[int, str]:
    """Post as a provider does: again after a connection error (a worker killed mid-request)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await post(http, url, data)
        except aiohttp.ClientError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def scrape(url: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as resp:
        text = await resp.text()
    totals: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] += sample.value
    return dict(totals)


@pytest.mark.parametrize("store", ["sqlite", "redis"])
async def test_racing_copies_across_two_workers_are_answered_once(
    tmp_path: Path, fake: FakeProvider, store: str, request: pytest.FixtureRequest
) -> None:
    rules = write_rules(tmp_path / "rules", RULES)
    url = (
        f"sqlite:///{tmp_path / 'responder.db'}"
        if store == "sqlite"
        else request.getfixturevalue("redis_url")
    )
    record = tmp_path / "webhooks.jsonl"
    env = server_env(fake, RESPONDER_RECORD=str(record))
    server, _ = await start(["--rules", str(rules), "--store", url], env, tmp_path / "log")
    started = time.monotonic()
    try:
        # One connection pool per copy: the copies of an event arrive on different
        # connections, which the kernel spreads over both workers.
        sessions = [
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=8)) for _ in range(COPIES)
        ]
        try:
            answers = await asyncio.gather(
                *(
                    asyncio.gather(*(post(http, server.url, sms(n)) for http in sessions))
                    for n in range(EVENTS)
                )
            )
        finally:
            for http in sessions:
                await http.close()
        intake = time.monotonic() - started
        for n, copies in enumerate(answers):
            assert {status for status, _ in copies} == {200}, copies
            assert len({body for _, body in copies}) == 1, copies  # byte for byte the same
            assert f"Got m{n}" in copies[0][1]
        await wait_for(lambda: len(fake.accepted) >= EVENTS, 60, "every reply sent")
        await asyncio.sleep(0.5)  # a second send of any of them would show by now
        metrics = await scrape(server.url)  # summed over both workers
    finally:
        assert await server.stop() == 0
    output = server.output()
    assert len(fake.accepted) == EVENTS  # exactly one reply per event...
    assert fake.stats()["accepted_twice"] == []
    assert fake.replays == 0  # ... and none sent twice
    texts = sorted(r.json["text"] for r in fake.requests)
    assert texts == sorted(f"Confirmed: m{n}" for n in range(EVENTS))
    assert metrics["responder_events_total"] == COPIES * EVENTS
    assert metrics["responder_replies_total"] == EVENTS  # counted by the copy that committed
    # The other copies were found in the store before deciding, or lost the race to commit.
    assert metrics["responder_duplicate_deliveries_total"] <= (COPIES - 1) * EVENTS
    assert metrics["responder_outbound_calls_total"] == EVENTS
    # Both workers took webhooks, and each recorded its own to a file of its own.
    per_worker = Counter(re.findall(r"\[worker (\d)\] responder\.trace", output))
    assert set(per_worker) == {"1", "2"}, per_worker
    recorded = [tmp_path / f"webhooks.worker{n}.jsonl" for n in (1, 2)]
    lines = [len(path.read_text().splitlines()) for path in recorded]
    assert sum(lines) == COPIES * EVENTS
    assert min(lines) > 0
    assert "Traceback" not in output
    print(
        f"\n{store}: {EVENTS} events x {COPIES} racing copies over 2 workers "
        f"({dict(per_worker)} traces per worker): {len(fake.accepted)} replies, "
        f"intake {intake:.1f}s"
    )


def outbox(db: Path) -> dict[str, str]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return dict(conn.execute("SELECT key, status FROM outbox").fetchall())


async def test_sigterm_with_requests_and_calls_in_flight(
    tmp_path: Path, fake: FakeProvider
) -> None:
    rules = write_rules(tmp_path / "rules", RULES)
    db = tmp_path / "responder.db"
    args = ["--rules", str(rules), "--store", f"sqlite:///{db}"]
    fake.behaviour.delay = 0.5  # calls stay in flight for a while
    server, pids = await start(args, server_env(fake), tmp_path / "log")
    answered = 0
    some = asyncio.Event()

    async def one(http: aiohttp.ClientSession, n: int) -> int | str:
        nonlocal answered
        try:
            status, _ = await post(http, server.url, sms(n, "t"))
        except aiohttp.ClientError as exc:
            return type(exc).__name__
        answered += 1
        if answered >= 100:
            some.set()
        return status

    async with aiohttp.ClientSession() as http:
        sending = asyncio.gather(*(one(http, n) for n in range(1000)))
        await asyncio.wait_for(some.wait(), 60)
        await wait_for(lambda: fake.in_flight > 0, 10, "a call in flight")
        server.signal(signal.SIGTERM)
        signalled = time.monotonic()
        assert server.proc is not None
        try:  # within the delivery grace (10 s) and a margin; one SIGTERM, no other
            code = await asyncio.wait_for(server.proc.wait(), 30)
        except TimeoutError:
            raise AssertionError(
                f"no exit 30 s after SIGTERM:\n{server.output()[-3000:]}"
            ) from None
        stopped = time.monotonic() - signalled
        results = await sending
    assert code == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # no worker outlives the parent
    counted = Counter(results)
    # Every request a worker took was answered; the rest were refused or cut before being read.
    assert set(counted) <= {200, "ClientConnectorError", "ServerDisconnectedError", "ClientOSError"}
    assert counted[200] >= 100
    # The calls in flight finished within the grace period and were recorded as sent.
    statuses = outbox(db)
    assert {key for key, status in statuses.items() if status == "sent"} == set(fake.accepted)
    assert fake.accepted
    assert fake.stats()["accepted_twice"] == []
    assert len(statuses) >= counted[200]  # every webhook answered 200 was committed
    output = server.output()
    assert output.count("responder.server: stopped") == 2
    assert "Traceback" not in output
    assert "already shutting down" not in output
    print(
        f"\nSIGTERM with 2 workers: exit 0 after {stopped * 1000:.0f} ms; {dict(counted)}; "
        f"{len(fake.accepted)} calls sent, {Counter(statuses.values())}"
    )


async def test_a_killed_worker_is_replaced_and_nothing_is_lost(
    tmp_path: Path, fake: FakeProvider
) -> None:
    rules = write_rules(tmp_path / "rules", RULES)
    db = tmp_path / "responder.db"
    args = ["--rules", str(rules), "--store", f"sqlite:///{db}"]
    # A call in flight at the kill is offered again after the lease: 2 s here, not 2 min.
    env = server_env(fake, RESPONDER_DELIVERY_LEASE="2")
    fake.behaviour.delay = 0.05
    server, pids = await start(args, env, tmp_path / "log")
    count = 400
    try:
        # A new rule text, reloaded by SIGHUP in both workers before the kill.
        write_rules(tmp_path / "rules", RULES.replace("Got", "Now"))
        server.signal(signal.SIGHUP)
        await wait_for(lambda: server.output().count("rules reloaded") == 2, 30, "reloads")
        gate = asyncio.Semaphore(16)
        async with aiohttp.ClientSession() as http:

            async def one(n: int) -> tuple[int, str]:
                async with gate:
                    return await post_until_answered(http, server.url, sms(n, "k"))

            sending = asyncio.gather(*(one(n) for n in range(count)))
            await wait_for(lambda: len(fake.requests) >= count // 4, 60, "replies going out")
            os.kill(pids[1], signal.SIGKILL)
            await wait_for(lambda: "worker 2 serves again" in server.output(), 30, "replacement")
            answers = await sending
            # After the replacement: every worker answers on the reloaded rules.
            later = await asyncio.gather(
                *(post_until_answered(http, server.url, sms(n, "after")) for n in range(40))
            )
        await wait_for(lambda: len(fake.accepted) >= count + 40, 60, "every reply sent")
        assert server.proc is not None
        assert server.proc.returncode is None  # the parent still serves
    finally:
        assert await server.stop() == 0
    output = server.output()
    assert f"worker 2 (pid {pids[1]}) was killed by SIGKILL; another starts in" in output
    assert [status for status, _ in answers + later] == [200] * (count + 40)
    assert all("Now m" in body for _, body in later)
    per_worker = Counter(
        re.findall(
            r"\[worker (\d)\] responder\.trace: textit sms\.received from "
            r"\+\d+: rules \['ack'\]",
            output.split("serves again")[1],
        )
    )
    assert set(per_worker) == {"1", "2"}, per_worker  # the replacement took webhooks too
    # Nothing lost, nothing sent twice: one reply per event, whatever was cut by the kill.
    assert len(fake.accepted) == count + 40
    assert fake.stats()["accepted_twice"] == []
    assert set(outbox(db).values()) == {"sent"}
    print(
        f"\nSIGKILL of a worker: {count} events, {fake.replays} call(s) sent again after the "
        f"kill and answered from its key, {len(fake.accepted)} replies, lost 0"
    )


def test_a_store_that_cannot_be_written_stops_the_start_once(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules", RULES)
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "responder",
            "serve",
            "--workers",
            "2",
            "--rules",
            str(rules),
            "--store",
            f"sqlite:///{blocked}/db",
            "--port",
            "1",  # never bound: the store is checked first
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.count("the store is set with --store or RESPONDER_STORE") == 1
    assert "Traceback" not in result.stderr


def test_several_workers_refuse_a_memory_store(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "responder", "serve", "--workers", "2", "--store", "memory://"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert "setting RESPONDER_WORKERS: several workers need a store they share" in result.stderr


async def test_workers_whose_parent_is_killed_shut_down_by_themselves(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules", RULES)
    args = ["--rules", str(rules), "--store", f"sqlite:///{tmp_path / 'responder.db'}"]
    # Its metrics directory outlives it: in tmp_path, not in the machine's temporary files.
    server, pids = await start(args, {"TMPDIR": str(tmp_path)}, tmp_path / "log")
    server.signal(signal.SIGKILL)
    assert await server.stop() == -signal.SIGKILL

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    await wait_for(lambda: all(gone(pid) for pid in pids), 30, "the workers' exit")
    output = server.output()
    assert output.count("the parent process is gone: shutting down") == 2
    assert output.count("responder.server: stopped") == 2
