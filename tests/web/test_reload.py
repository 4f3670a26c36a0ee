"""Hot reload against a real ``responder serve``: SIGHUP and ``--watch`` swap valid rules in,
refuse broken ones with every problem logged, and never fail a request under load."""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import signal
import textwrap
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from responder.rules.loader import load_rules
from responder.runtime.engine import Engine
from responder.stores.memory import MemoryStore
from responder.stores.sqlite import SqliteStore
from responder.testing.process import ServeProcess
from responder.web import reload as reload_module
from responder.web.metrics import Metrics
from responder.web.reload import Reloader
from responder.web.server import ENGINE, METRICS, RELOADER, reload_rules
from tests.conftest import dialogue_runner

RULES = """
rules:
  - name: version
    on: sms.received
    reply: {text: "version %s"}
"""
BROKEN = """
rules:
  - name: version
    on: sms.recieved
    reply: {text: "{{ contcat }}"}
  - name: second
    on: sms.received
    when: {text: {regex: "(unclosed"}}
    reply: {text: "x"}
"""
_ids = itertools.count(1)


def write(directory: Path, version: str | int, text: str = RULES) -> None:
    (directory / "rules.yaml").write_text(textwrap.dedent(text % version if "%s" in text else text))


async def sms(http: aiohttp.ClientSession, base: str) -> str:
    # A new contact each time: the loop guard would quieten one contact texting this fast.
    n = next(_ids)
    data = {"event": "mo_sms", "sms": str(n), "phone": f"+6590{n:07d}", "text": "hi"}
    async with http.post(f"{base}/webhooks/textit", data=data) as resp:
        assert resp.status == 200, await resp.text()
        body = await resp.json()
    return str(body["text"])


def metric(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


async def reloads(http: aiohttp.ClientSession, base: str, result: str) -> float:
    async with http.get(f"{base}/metrics") as resp:
        return metric(await resp.text(), "responder_reloads_total", result=result)


async def until(what: str, check: Any, within: float = 30.0) -> None:
    """Wait for ``await check()`` to be true (generous: the machine may be loaded)."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not within {within}s")
        await asyncio.sleep(0.05)


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    write(directory, 1)
    return directory


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def serve(tmp_path: Path, rules: Path, *extra: str) -> ServeProcess:
    args = ["--rules", str(rules), "--store", f"sqlite:///{tmp_path / 'r.db'}", *extra]
    return ServeProcess(args, {"RESPONDER_LOG_LEVEL": "INFO"}, tmp_path / "serve.log")


async def test_sighup_swaps_valid_rules_and_refuses_broken_ones_with_every_problem(
    tmp_path: Path, rules: Path, http: aiohttp.ClientSession
) -> None:
    async with serve(tmp_path, rules) as server:
        assert await sms(http, server.url) == "version 1"
        write(rules, 2)
        server.signal(signal.SIGHUP)
        await until("reload ok", lambda: _at_least(http, server.url, "ok", 1))
        assert await sms(http, server.url) == "version 2"

        write(rules, 0, BROKEN)
        server.signal(signal.SIGHUP)
        await until("reload failed", lambda: _at_least(http, server.url, "failed", 1))
        assert await sms(http, server.url) == "version 2"
        log = server.output()
        path = rules / "rules.yaml"
        assert f"reload refused: {path}:4: rules[0].on[0]: unknown event kind" in log
        assert f"reload refused: {path}:5: rules[0].reply.text: unknown variable 'contcat'" in log
        assert f"reload refused: {path}:8: rules[1].when.text.regex: bad regex" in log
        assert "the previous rules keep serving (3 problem(s) in the new ones)" in log
        async with http.get(f"{server.url}/healthz") as resp:
            assert (await resp.json())["rules"] == 1


async def _at_least(http: aiohttp.ClientSession, base: str, result: str, n: float) -> bool:
    return await reloads(http, base, result) >= n


async def test_watch_reloads_when_a_rule_file_changes(
    tmp_path: Path, rules: Path, http: aiohttp.ClientSession
) -> None:
    async with serve(tmp_path, rules, "--watch") as server:
        assert await sms(http, server.url) == "version 1"
        await until("watching", lambda: _logged(server, "for rule changes"))
        write(rules, 2)
        await until("new rules", lambda: _replies(http, server.url, "version 2"))
        write(rules, 0, BROKEN)
        await until("refused", lambda: _at_least(http, server.url, "failed", 1))
        assert await sms(http, server.url) == "version 2"
        # A file that is not a rule file changes nothing.
        ok = await reloads(http, server.url, "ok")
        (rules / "notes.txt").write_text("not rules")
        (rules / "rules.yaml").write_text(textwrap.dedent(RULES % 3))
        await until("fixed", lambda: _replies(http, server.url, "version 3"))
        assert await reloads(http, server.url, "ok") == ok + 1


async def _logged(server: ServeProcess, text: str) -> bool:
    return text in server.output()


async def _replies(http: aiohttp.ClientSession, base: str, text: str) -> bool:
    return await sms(http, base) == text


async def test_no_request_fails_while_rules_are_reloaded_under_load(
    tmp_path: Path, rules: Path, http: aiohttp.ClientSession
) -> None:
    async with serve(tmp_path, rules) as server:
        stop = asyncio.Event()
        answers: list[str] = []
        failures: list[str] = []

        async def client(n: int) -> None:
            while not stop.is_set():
                try:
                    answers.append(await sms(http, server.url))
                except (AssertionError, aiohttp.ClientError) as exc:
                    failures.append(repr(exc))

        clients = [asyncio.create_task(client(n)) for n in range(4)]
        for round_ in range(1, 11):
            write(rules, round_) if round_ % 3 else write(rules, 0, BROKEN)
            before = await reloads(http, server.url, "ok" if round_ % 3 else "failed")
            server.signal(signal.SIGHUP)
            await until(
                f"reload {round_}",
                lambda r=round_, b=before: _at_least(
                    http, server.url, "ok" if r % 3 else "failed", b + 1
                ),
            )
        stop.set()
        await asyncio.gather(*clients)
        assert failures == []
        assert len(answers) > 10
        assert set(answers) <= {f"version {n}" for n in range(1, 11) if n % 3}


# -- in-process: in-flight requests, coalescing ---------------------------------------------


class GatedStore(SqliteStore):
    """A real SQLite store that can hold webhooks at their first read, to catch them in flight."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.gate: asyncio.Event | None = None
        self.waiting = asyncio.Event()

    async def snapshot(self, wanted: Any) -> Any:
        if self.gate is not None:
            self.waiting.set()
            await self.gate.wait()
        return await super().snapshot(wanted)


async def test_a_request_in_flight_finishes_on_the_rules_it_started_with(
    make_client: Any, rules: Path, tmp_path: Path
) -> None:
    store = GatedStore(str(tmp_path / "gated.db"))
    client = await make_client(rules, store="memory://")
    app = client.server.app
    # Swap in the gated store before any request (the app opened its own store already).
    await store.open()
    app[ENGINE].store = store
    app[ENGINE].guard.store = store
    try:
        store.gate = asyncio.Event()
        data = {"event": "mo_sms", "sms": "inflight-1", "phone": "+6591234567", "text": "hi"}
        in_flight = asyncio.create_task(client.post("/webhooks/textit", data=data))
        await asyncio.wait_for(store.waiting.wait(), 30)
        write(rules, 2)
        assert reload_rules(app) is True
        store.gate.set()
        store.gate = None
        resp = await asyncio.wait_for(in_flight, 30)
        assert (await resp.json())["text"] == "version 1"
        data = {"event": "mo_sms", "sms": "inflight-2", "phone": "+6591234567", "text": "hi"}
        resp = await client.post("/webhooks/textit", data=data)
        assert (await resp.json())["text"] == "version 2"
    finally:
        await store.close()


async def test_reload_requests_during_a_reload_coalesce_and_the_last_change_wins(
    make_client: Any, rules: Path
) -> None:
    client = await make_client(rules)
    app = client.server.app
    reloader: Reloader = app[RELOADER]
    for n in range(2, 7):
        write(rules, n)
        reloader.request("test")
    await reloader.wait()
    await reloader.wait()  # the coalesced follow-up, when one was needed
    done = app[METRICS].reloads.value("ok")
    assert 1 <= done <= 2
    resp = await client.post(
        "/webhooks/textit", data={"event": "mo_sms", "sms": "c1", "phone": "+659", "text": "x"}
    )
    assert (await resp.json())["text"] == "version 6"


async def test_a_file_that_is_not_text_is_refused_counted_and_the_old_rules_stay(
    make_client: Any, rules: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client(rules)
    app = client.server.app
    reloader: Reloader = app[RELOADER]
    old = app[ENGINE].rules
    (rules / "rules.yaml").write_bytes(b"\xff\xfe not yaml \x00")
    with caplog.at_level(logging.ERROR, logger="responder.reload"):
        reloader.request("test")
        await reloader.wait()
    assert app[ENGINE].rules is old
    assert app[METRICS].reloads.value("failed") == 1
    assert any(str(rules / "rules.yaml") in r.getMessage() for r in caplog.records)


async def test_a_reload_that_brings_ivr_dialogues_without_a_public_url_warns(
    make_client: Any, rules: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client(rules)
    (rules / "rules.yaml").write_text(
        textwrap.dedent(
            """
            dialogues:
              - name: menu
                start: {on: ivr.answer}
                states:
                  bye: {hangup: {say: "Bye."}}
            """
        )
    )
    with caplog.at_level(logging.WARNING, logger="responder.reload"):
        assert reload_rules(client.server.app) is True
    assert "RESPONDER_PUBLIC_URL is not set, so the IVR dialogues ('menu')" in caplog.text


def test_a_reload_leaves_every_object_frozen_as_at_start_up(rules: Path) -> None:
    engine = Engine(load_rules([rules]), MemoryStore(), dialogue_runner(None))
    reloader = Reloader([str(rules)], engine, Metrics())
    gc.collect()
    gc.freeze()  # as serve does before it starts answering
    try:
        old = engine.rules
        write(rules, 2)
        assert reloader.reload_now()
        assert engine.rules is not old
        # The full pass ran and everything alive went out of the collector's sight: later
        # full passes have only what is new to look at.
        assert gc.get_freeze_count() > 0
        assert gc.get_objects(generation=2) == []
    finally:
        gc.unfreeze()


async def test_the_old_rules_are_collected_once_the_webhooks_holding_them_are_done(
    rules: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reload_module, "REFREEZE_AFTER", 0.05)
    write(rules, "{{ text|upper }}")
    engine = Engine(load_rules([rules]), MemoryStore(), dialogue_runner(None))
    reloader = Reloader([str(rules)], engine, Metrics())
    template = engine.rules.rules[0].reply.text  # type: ignore[union-attr]
    template.render({"text": "x"})  # compiled: jinja2 keeps it in reference cycles
    old_env = weakref.ref(template._env)
    del template
    gc.collect()
    gc.freeze()  # as serve does before it starts answering
    try:
        in_flight = engine.rules  # a webhook still deciding on the old rules
        write(rules, 2)
        assert reloader.reload_now()
        assert gc.get_freeze_count() == 0  # back in the collector's sight at once
        del in_flight  # that webhook is done
        await asyncio.sleep(0.2)
        assert gc.get_freeze_count() > 0  # the new rules out of sight again...
        assert old_env() is None  # ...and the old ones collected, not frozen with them
    finally:
        gc.unfreeze()
