"""Redis going away under a running replica: webhooks get 503 (the provider delivers them
again) and nothing half-done; when Redis is back, the replica carries on by itself."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from responder.testing.fakes import Behaviour, FakeProvider
from responder.testing.process import ServeProcess, free_port
from tests.conftest import write_rules

RULES = """
rules:
  - name: ack
    on: sms.received
    sms: {text: "Got it: {{ text }}"}
"""


class RedisServer:
    """A redis-server of our own on a free port, stopped and started again at will."""

    def __init__(self, home: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("this test starts its own redis-server: install redis-server")
        self.binary, self.home, self.port = binary, home, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.home),
                "--save",
                "",
                "--appendonly",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_webhooks_get_503_while_redis_is_away_and_go_through_after(
    tmp_path: Path, own_redis: RedisServer
) -> None:
    rules = write_rules(tmp_path / "rules", RULES)
    url = f"redis://127.0.0.1:{own_redis.port}/0"
    async with FakeProvider("hoiio", behaviour=Behaviour(idempotent=True)) as fake:
        env = {
            "HOIIO_APP_ID": "app-1",
            "HOIIO_ACCESS_TOKEN": "token-secret-1",
            "HOIIO_API_URL": fake.url,
            # A call sent just as Redis went away cannot be marked sent: it goes again when
            # its lease (2 s here) runs out.
            "RESPONDER_DELIVERY_LEASE": "2",
            "RESPONDER_LOG_LEVEL": "WARNING",
        }
        args = ["--rules", str(rules), "--store", url]
        async with (
            ServeProcess(args, env, tmp_path / "replica.log") as replica,
            aiohttp.ClientSession() as http,
        ):

            async def sms(n: int) -> int:
                form = {
                    "txn_ref": f"AA-O-{n}",
                    "from": f"+659123456{n}",
                    "to": "+65",
                    "msg": f"m{n}",
                }
                async with http.post(f"{replica.url}/webhooks/hoiio", data=form) as resp:
                    await resp.read()
                    return resp.status

            assert await sms(1) == 200
            own_redis.stop()
            assert [await sms(2), await sms(2)] == [503, 503]
            own_redis.start()
            for _ in range(100):  # back within a few seconds, by itself
                if await sms(2) == 200:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(replica.output()[-2000:])
            assert await sms(3) == 200
            for _ in range(100):
                if len(fake.accepted) == 3:
                    break
                await asyncio.sleep(0.1)
        assert "store unavailable" in replica.output()
    # Each of the three messages answered once: the refused deliveries left nothing behind.
    assert sorted({r.params["msg"] for r in fake.requests}) == [
        "Got it: m1",
        "Got it: m2",
        "Got it: m3",
    ]
    assert fake.stats()["accepted_twice"] == []
