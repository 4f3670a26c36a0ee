"""A real ``responder serve`` process, killed with SIGKILL between two steps of a survey and
started again on the same SQLite file: conversations go on from their state and a timeout
set before the kill still fires after the restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import pytest

from responder.testing.fakes import FakeProvider
from tests.conftest import REPO

EXAMPLE = REPO / "examples" / "sms-survey"
TIMEOUT = 2  # seconds: the survey's waits, shortened from 1h
ALICE = "+250788123123"  # answers on TextIt
BOB = "+6591234567"  # goes quiet on Hoiio

Q_RATING = (
    "Thanks for joining our survey! How would you rate our service, from 1 (poor) to 5 (great)?"
)
Q_RECOMMEND = "Would you recommend us to a friend? Reply YES or NO."
Q_COMMENT = "Last question: what could we do better? Reply with a short comment, or NONE."
THANKS = "Thank you for your answers!"
RATING_REMINDER = "Reminder: how would you rate our service, from 1 (poor) to 5 (great)?"
GAVE_UP = "No problem, we'll stop here. Text JOIN any time to take the survey again."


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def poll(predicate: Callable[[], bool], within: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not within {within}s")
        await asyncio.sleep(0.05)


class Server:
    """``responder serve`` as a child process on a free port."""

    def __init__(self, rules: Path, db: Path, env: dict[str, str], log: Path) -> None:
        self.rules = rules
        self.db = db
        self.env = env
        self.log = log
        self.port = 0
        self.proc: asyncio.subprocess.Process | None = None
        self._log_file: BinaryIO | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, http: aiohttp.ClientSession) -> None:
        self.port = free_port()
        self._log_file = self.log.open("ab")
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
            stdout=self._log_file,
            stderr=asyncio.subprocess.STDOUT,
        )
        deadline = asyncio.get_running_loop().time() + 8
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

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, nothing is flushed but what SQLite committed."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()
            assert self.proc.returncode == -signal.SIGKILL
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeProvider, FakeProvider, FakeProvider]]:
    async with (
        FakeProvider("hoiio") as hoiio,
        FakeProvider("textit") as textit,
        FakeProvider("http") as http,
    ):
        yield hoiio, textit, http


async def test_conversation_and_timer_survive_sigkill(tmp_path: Path, fakes: Any) -> None:
    fake_hoiio, fake_textit, fake_http = fakes
    rules = tmp_path / "rules"
    shutil.copytree(EXAMPLE, rules)
    path = rules / "rules.yaml"
    text = path.read_text()
    assert text.count("timeout: 1h") >= 4
    text = text.replace("timeout: 1h", f"timeout: {TIMEOUT}s")
    path.write_text(text.replace("https://survey.example.com", fake_http.url))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESPONDER_", "HOIIO_"))}
    env = {k: v for k, v in env.items() if not k.startswith("TEXTIT_")}
    env.update(
        HOIIO_APP_ID="app-1",
        HOIIO_ACCESS_TOKEN="token-secret-1",
        HOIIO_API_URL=fake_hoiio.url,
        TEXTIT_API_TOKEN="textit-secret-1",
        TEXTIT_API_URL=fake_textit.url,
        RESPONDER_LOG_LEVEL="INFO",
        PYTHONPATH=str(REPO),
    )
    log = tmp_path / "responder.log"
    servers: list[Server] = []

    def server() -> Server:
        servers.append(Server(rules, tmp_path / "db" / "responder.db", env, log))
        return servers[-1]

    def hoiio_texts() -> list[str]:
        return [r.params["msg"] for r in fake_hoiio.calls("/sms/send")]

    try:
        async with aiohttp.ClientSession() as http:

            async def textit(srv: Server, sms_id: int, message: str) -> bytes:
                async with http.post(
                    f"{srv.url}/webhooks/textit",
                    data={"event": "mo_sms", "sms": str(sms_id), "phone": ALICE, "text": message},
                ) as resp:
                    assert resp.status == 200
                    return await resp.read()

            async def hoiio(srv: Server, txn: str, message: str) -> None:
                async with http.post(
                    f"{srv.url}/webhooks/hoiio",
                    data={"msg": message, "from": BOB, "to": "+6531234567", "txn_ref": txn},
                ) as resp:
                    assert resp.status == 200

            def reply(expected: str) -> bytes:
                body = {"phone": [ALICE], "text": expected}
                return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

            first = server()
            await first.start(http)
            assert await textit(first, 1, "JOIN") == reply(Q_RATING)
            answered = await textit(first, 2, "4")
            assert answered == reply(Q_RECOMMEND)
            await hoiio(first, "AA-R-1", "JOIN")  # Bob's rating question starts its 2 s wait
            await poll(lambda: hoiio_texts() == [Q_RATING], 2, "Bob's first question")
            await first.kill()
            assert hoiio_texts() == [Q_RATING]  # no reminder yet: it was still pending

            second = server()
            await second.start(http)
            # Alice goes on where she was; her rating from before the kill is kept.
            assert await textit(second, 3, "yes") == reply(Q_COMMENT)
            # A retry of a webhook answered before the kill gets the same bytes, no step.
            assert await textit(second, 2, "4") == answered
            assert await textit(second, 4, "More vegan options") == reply(THANKS)
            await poll(lambda: len(fake_http.requests) == 1, 3, "survey results")
            assert fake_http.requests[0].json == {
                "contact": ALICE,
                "rating": "4",
                "recommend": "yes",
                "comment": "More vegan options",
            }
            # Bob's timeout, set by the killed process, fires in the new one ...
            await poll(
                lambda: hoiio_texts() == [Q_RATING, RATING_REMINDER], TIMEOUT + 3, "reminder"
            )
            # ... and so does the next one, set after the restart.
            await poll(
                lambda: hoiio_texts() == [Q_RATING, RATING_REMINDER, GAVE_UP],
                TIMEOUT + 3,
                "give-up",
            )
            assert all(r.params["dest"] == BOB for r in fake_hoiio.calls("/sms/send"))
            await asyncio.sleep(0.2)
            assert len(fake_hoiio.requests) == 3
    except AssertionError:
        print(log.read_text() if log.exists() else "(no log)")
        raise
    finally:
        for srv in servers:
            await srv.kill()
