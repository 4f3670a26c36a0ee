"""``responder serve`` mounts the console only when asked: ``RESPONDER_CONSOLE_TOKEN`` or
``--console`` (which makes a token for the run and prints it once, never into a log line)."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest

from responder.console.app import mount
from responder.settings import Settings
from responder.testing.process import ServeProcess
from responder.web.server import create_app
from tests.console.conftest import EXAMPLES, TOKEN

ARGS = ["--rules", str(EXAMPLES / "sms-survey"), "--store", "memory://"]


async def test_serve_without_a_token_has_no_console(tmp_path: Path) -> None:
    server = ServeProcess(ARGS, {"RESPONDER_CONSOLE_TOKEN": ""}, tmp_path / "log")
    async with server, aiohttp.ClientSession() as http:
        for path in ("/console", "/console/login"):
            async with http.get(server.url + path) as resp:
                assert resp.status == 404, path
    assert "web console" not in server.output()


async def test_serve_console_makes_a_token_for_the_run(tmp_path: Path) -> None:
    env = {"RESPONDER_CONSOLE_TOKEN": "", "RESPONDER_LOG_FORMAT": "json"}
    async with ServeProcess([*ARGS, "--console"], env, tmp_path / "log") as server:
        output = server.output()
        found = re.search(r"^responder: console token for this run: (\S+)$", output, re.M)
        assert found, output
        token = found.group(1)
        assert output.count(token) == 1  # printed once; no log line holds it
        assert "web console at http://127.0.0.1:" in output
        async with aiohttp.ClientSession() as http:
            bearer = {"Authorization": f"Bearer {token}"}
            async with http.get(server.url + "/console/rules", headers=bearer) as resp:
                assert resp.status == 200
            async with http.get(server.url + "/console/rules", allow_redirects=False) as resp:
                assert resp.status == 303


async def test_serve_with_the_token_serves_the_console(tmp_path: Path) -> None:
    server = ServeProcess(ARGS, {"RESPONDER_CONSOLE_TOKEN": TOKEN}, tmp_path / "log")
    async with server, aiohttp.ClientSession() as http:
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        async with http.get(server.url + "/console", headers=bearer) as resp:
            assert resp.status == 200
            assert str(resp.url).endswith("/console/conversations")
    assert TOKEN not in server.output()


def test_mount_needs_a_token() -> None:
    settings = Settings(rules=(str(EXAMPLES / "sms-survey"),), store="memory://")
    with pytest.raises(ValueError, match="token"):
        mount(create_app(settings), settings)
