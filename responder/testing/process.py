"""``responder serve`` as a child process on a free loopback port, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp

START_TIMEOUT = 30.0
SIGTERM = signal.SIGTERM  # (a method below is named signal)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeProcess:
    """Starts ``python -m responder serve ARGS`` with ``env`` added; its output goes to ``log``."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args = args
        self.env = env
        self.log = log
        self.port = 0
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def start(self) -> ServeProcess:
        """Start and wait until /healthz answers; retried on another port if one is taken."""
        for _ in range(3):
            self.port = free_port()
            self.proc = await self._spawn(self.command())
            if await self._ready():
                return self
            await self.stop()
            if "cannot listen" not in self.output():
                break
        raise RuntimeError(f"responder serve did not start:\n{self.output()[-4000:]}")

    def command(self) -> list[str]:
        """The child's command line, on this object's port."""
        return [
            sys.executable,
            "-m",
            "responder",
            "serve",
            *self.args,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]

    async def _spawn(self, command: list[str]) -> asyncio.subprocess.Process:
        """Start the child, its output appended to the log file."""
        with self.log.open("ab") as out:
            return await asyncio.create_subprocess_exec(
                *command,
                env={**os.environ, **self.env},
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )

    async def _ready(self) -> bool:
        assert self.proc is not None
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT
        async with aiohttp.ClientSession() as http:
            while asyncio.get_running_loop().time() < deadline:
                if self.proc.returncode is not None:
                    return False
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.url}/healthz") as resp:
                        if resp.status == 200:
                            return True
                await asyncio.sleep(0.05)
        return False

    def signal(self, number: int = signal.SIGHUP) -> None:
        assert self.proc is not None
        self.proc.send_signal(number)

    async def stop(self, number: int = SIGTERM) -> int | None:
        """Signal ``number`` (SIGTERM), then SIGKILL after 15 s; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            self.proc.send_signal(number)
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode

    async def __aenter__(self) -> ServeProcess:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()
