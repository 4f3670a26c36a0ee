"""Shared fixtures: real servers on ephemeral ports, real SQLite files, fake provider APIs."""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from responder.appstate import Signer
from responder.dialogues.runner import Runner
from responder.rules.loader import load_rules
from responder.settings import Settings
from responder.stores.redis_url import split_url
from responder.testing.fakes import FakeProvider
from responder.testing.redisdb import drop_prefix, local_cluster, require_server, scratch_url
from responder.web.server import create_app

REPO = Path(__file__).resolve().parent.parent
# Lines a test wants shown in the run's summary (e.g. transcript coverage in CI logs).
SUMMARY = pytest.StashKey[list[str]]()


# Figures a test measured (attack and regex timings), shown at the end of the run.
FIGURES = pytest.StashKey[list[str]]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lines = config.stash.get(SUMMARY, [])
    if lines:
        terminalreporter.write_sep("-", "transcripts")
        for line in lines:
            terminalreporter.write_line(line)
    figures = config.stash.get(FIGURES, [])
    if figures:
        terminalreporter.write_sep("-", "figures")
        for line in figures:
            terminalreporter.write_line(line)


@pytest.fixture
def record_figure(pytestconfig: pytest.Config) -> Callable[[str], None]:
    """``record_figure("what: number")`` shows the line in the run's summary."""
    figures = pytestconfig.stash.setdefault(FIGURES, [])
    return figures.append


def dialogue_runner(public_url: str | None = "https://responder.test") -> Runner:
    """A dialogue runner with a signing key of its own, for engines built in tests."""
    return Runner(Signer(b"k" * 32), public_url)


def write_rules(directory: Path, text: str, name: str = "rules.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return directory


@pytest.fixture
async def fake_hoiio() -> AsyncIterator[FakeProvider]:
    async with FakeProvider("hoiio") as fake:
        yield fake


@pytest.fixture
async def fake_textit() -> AsyncIterator[FakeProvider]:
    async with FakeProvider("textit") as fake:
        yield fake


@pytest.fixture
async def fake_http() -> AsyncIterator[FakeProvider]:
    async with FakeProvider("http") as fake:
        yield fake


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A store URL on the real Redis server with a prefix of its own, emptied afterwards."""
    require_server()
    url = scratch_url()
    yield url
    drop_prefix(split_url(url)[1])


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[str]:
    """A store URL of a three-node Redis Cluster started for this test session."""
    with local_cluster() as url:
        yield url


def store_overrides(store: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings for a parametrised store: ``sqlite`` (the default), ``redis`` or a URL."""
    if store == "sqlite":
        return {}
    if store == "redis":
        return {"store": request.getfixturevalue("redis_url")}
    return {"store": store}


ClientFactory = Callable[..., Any]


@pytest.fixture
async def make_client(
    tmp_path: Path, fake_hoiio: FakeProvider, fake_textit: FakeProvider
) -> AsyncIterator[ClientFactory]:
    """Start responder on an ephemeral port: ``await make_client(rules_dir, **settings)``.

    Credentials point at the fake providers unless overridden; the store is a SQLite file
    in ``tmp_path`` unless ``store=`` says otherwise.
    """
    clients: list[TestClient[Any, Any]] = []

    async def factory(
        rules: Path | str, clock: Callable[[], float] = time.time, **overrides: Any
    ) -> TestClient[Any, Any]:
        values: dict[str, Any] = {
            "rules": (str(rules),),
            "store": f"sqlite:///{tmp_path / 'responder.db'}",
            "hoiio_app_id": "app-1",
            "hoiio_access_token": "token-secret-1",
            "hoiio_api_url": fake_hoiio.url,
            "textit_api_token": "textit-secret-1",
            "textit_api_url": fake_textit.url,
        }
        values.update(overrides)
        settings = Settings.from_env({}, **values)
        app = create_app(settings, rules=load_rules(settings.rules), clock=clock)
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()


async def wait_for(
    predicate: Callable[[], bool], within: float = 5.0, what: str = "condition"
) -> None:
    """Wait until ``predicate()`` holds (deliveries happen in the background)."""
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not met within {within}s")
        await asyncio.sleep(0.01)
