"""The console on a real server on an ephemeral port: ``await console(rules, **settings)``
gives a client that is logged in (``client.csrf`` holds its CSRF token)."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from responder.console.app import mount
from responder.rules.loader import load_rules
from responder.settings import Settings
from responder.testing.fakes import FakeProvider
from responder.web.server import create_app
from tests.conftest import REPO

TOKEN = "console-token-for-tests-0123456789"
EXAMPLES = REPO / "examples"
CSRF = re.compile(r'<meta name="csrf-token" content="([0-9a-f]*)">')

ConsoleFactory = Callable[..., Any]


async def log_in(client: TestClient[Any, Any]) -> str:
    """Log in with the form; returns the CSRF token the pages carry."""
    resp = await client.post("/console/login", data={"token": TOKEN}, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    page = await (await client.get("/console/rules")).text()
    found = CSRF.search(page)
    assert found, page[:500]
    assert found.group(1), page[:500]
    return found.group(1)


@pytest.fixture
async def console(
    tmp_path: Path, fake_hoiio: FakeProvider, fake_textit: FakeProvider
) -> AsyncIterator[ConsoleFactory]:
    clients: list[TestClient[Any, Any]] = []

    async def factory(
        *rules: Path | str,
        clock: Callable[[], float] = time.time,
        login: bool = True,
        **overrides: Any,
    ) -> TestClient[Any, Any]:
        values: dict[str, Any] = {
            "rules": tuple(str(r) for r in rules) or (str(EXAMPLES / "sms-survey"),),
            "store": f"sqlite:///{tmp_path / 'responder.db'}",
            "public_url": "https://responder.test",
            "hoiio_app_id": "app-1",
            "hoiio_access_token": "token-secret-1",
            "hoiio_api_url": fake_hoiio.url,
            "textit_api_token": "textit-secret-1",
            "textit_api_url": fake_textit.url,
            "console_token": TOKEN,
            "console_coverage": str(tmp_path / "coverage.json"),
        }
        values.update(overrides)
        settings = Settings.from_env({}, **values)
        app = create_app(settings, rules=load_rules(settings.rules), clock=clock)
        mount(app, settings)
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        if login:
            client.csrf = await log_in(client)  # type: ignore[attr-defined]
        return client

    yield factory
    for client in clients:
        await client.close()
