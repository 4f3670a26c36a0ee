"""examples/deploy: the run script starts replicas on one Redis that answer alike, and the
nginx config balances over exactly the ports the script uses by default."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from responder.testing.process import free_port
from responder.web.startup import where
from tests.conftest import REPO

DEPLOY = REPO / "examples" / "deploy"
START_WITHIN = 60.0  # seconds for both replicas to answer: a loaded machine starts them slowly
MISSED = {"event": "mo_miss", "call": "1", "relayer": "5", "phone": "+250788123123"}


def two_free_ports() -> int:
    """The first of two consecutive free ports (one free port's neighbour may be taken)."""
    while True:
        port = free_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port


async def healthy(http: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with http.get(f"{url}/healthz") as resp:
            return resp.status == 200
    except aiohttp.ClientError:
        return False


def test_nginx_balances_over_the_scripts_default_ports() -> None:
    script = (DEPLOY / "run-replicas.sh").read_text()
    replicas = int(re.search(r'replicas="\$\{REPLICAS:-(\d+)\}"', script).group(1))  # type: ignore[union-attr]
    base = int(re.search(r'base_port="\$\{BASE_PORT:-(\d+)\}"', script).group(1))  # type: ignore[union-attr]
    conf = (DEPLOY / "nginx.conf").read_text()
    ports = [int(p) for p in re.findall(r"server 127\.0\.0\.1:(\d+)", conf)]
    assert ports == [base + n for n in range(1, replicas + 1)]
    assert re.search(rf"listen {base};", conf)


async def test_the_run_script_starts_replicas_that_share_one_store(
    tmp_path: Path, redis_url: str
) -> None:
    base = two_free_ports() - 1  # the script takes base+1 and base+2
    env = {
        **os.environ,
        "REPLICAS": "2",
        "WORKERS": "2",  # each replica with two workers of its own
        "BASE_PORT": str(base),
        "RESPONDER_STORE": redis_url,
        "PYTHON": sys.executable,
    }
    with (tmp_path / "run.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            "bash",
            str(DEPLOY / "run-replicas.sh"),
            str(REPO / "examples" / "missed-call"),
            env=env,
            stdout=log,
            stderr=log,
        )
    urls = [f"http://127.0.0.1:{base + n}" for n in (1, 2)]
    try:
        async with aiohttp.ClientSession() as http:
            deadline = asyncio.get_running_loop().time() + START_WITHIN
            for url in urls:
                while not await healthy(http, url):
                    if asyncio.get_running_loop().time() > deadline:
                        raise AssertionError((tmp_path / "run.log").read_text())
                    await asyncio.sleep(0.05)
            while (tmp_path / "run.log").read_text().count("with 2 workers") < 2:
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError((tmp_path / "run.log").read_text())
                await asyncio.sleep(0.05)
            answers = []
            for url in urls:  # the same missed call delivered to both replicas
                async with http.post(f"{url}/webhooks/textit", data=MISSED) as resp:
                    assert resp.status == 200
                    answers.append(await resp.read())
            assert answers[0] == answers[1]
            assert b"Sorry we missed your call" in answers[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
    # SIGTERM to the script stops every replica it started.
    async with aiohttp.ClientSession() as http:
        for url in urls:
            try:
                async with http.get(f"{url}/healthz") as resp:
                    raise AssertionError(f"{url} still answers {resp.status}")
            except aiohttp.ClientConnectionError:
                pass
    output = (tmp_path / "run.log").read_text()
    assert where(redis_url) in output  # each replica names its store ...
    assert "prefix=" not in output  # ... without the query string
