"""What the attack tests share: the profile, a ``responder serve`` child on loopback with fake
providers, a private Redis, normal traffic with its latencies, and /proc readings.

``RESPONDER_ATTACKS=long`` runs the long profile (more connections, minutes of traffic); the
default short one keeps the whole suite within a few minutes on two cores. Each test records
its figures with the ``record_figure`` fixture: they are printed at the end of the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import aiohttp

from responder.testing.process import ServeProcess, free_port

LONG = os.environ.get("RESPONDER_ATTACKS", "short") == "long"
PROFILE = "long" if LONG else "short"
ALICE = "+6591234567"
ACK_RULES = """
rules:
  - name: ack
    on: sms.received
    sms: {text: "Got it: {{ text }}", via: hoiio}
"""
_ids = itertools.count(1)


def pick(short: Any, long: Any) -> Any:
    """The short profile's value, or the long one's under RESPONDER_ATTACKS=long."""
    return long if LONG else short


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def raise_descriptor_limit(wanted: int) -> int:
    """Raise this process's soft limit on open files towards ``wanted``; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        soft = min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def connections(port: int) -> int:
    """Open TCP connections whose server side is ``port`` on this machine (any state but
    LISTEN and TIME_WAIT: the server still holds them)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state = fields[1], fields[3]
                if int(local.rsplit(":", 1)[1], 16) == port and state not in ("0A", "06"):
                    count += 1
    return count


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a child server: ours without any RESPONDER_/HOIIO_/TEXTIT_
    setting, plus ``extra``."""
    prefixes = ("RESPONDER_", "HOIIO_", "TEXTIT_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    env.update(extra)
    return env


class Serve(ServeProcess):
    """``responder serve`` on a rule directory and a store, its output kept in memory.

    Output goes through a pipe, not a file: a test that limits the child's file sizes
    must not limit its log. ``env`` is the child's whole environment (see ``clean_env``).
    """

    def __init__(
        self,
        rules: Path,
        store: str,
        env: dict[str, str],
        preexec: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(["--rules", str(rules), "--store", store], env, Path(os.devnull))
        self.preexec = preexec
        self.lines: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    def output(self) -> str:
        return "\n".join(self.lines)

    async def _spawn(self, command: list[str]) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            *command,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=self.preexec,
            limit=1 << 20,
        )
        self._reader = asyncio.create_task(self._read(proc))
        return proc

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            self.lines.append(line.decode("utf-8", "replace").rstrip("\n"))

    async def start(self) -> Serve:
        await super().start()
        return self

    async def stop(self, number: int = signal.SIGTERM) -> int | None:
        code = await super().stop(number)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 10)
        return code


def sms(n: int, text: str | None = None, phone: str | None = None) -> dict[str, str]:
    """A TextIt incoming SMS webhook, event ``n`` (a contact of its own by default)."""
    return {
        "event": "mo_sms",
        "sms": f"S{n}",
        "phone": phone or f"+659{n:07d}",
        "text": text if text is not None else f"m{n}",
        "time": "2026-12-06T00:00:00Z",
    }


async def timed_posts(
    http: aiohttp.ClientSession,
    url: str,
    count: int,
    every: float = 0.0,
    start: int | None = None,
) -> list[float]:
    """``count`` normal webhooks one after another (``every`` seconds apart), each answered
    200; returns their latencies in seconds."""
    first = next(_ids) * 1_000_000 if start is None else start
    latencies: list[float] = []
    for n in range(first, first + count):
        began = time.perf_counter()
        async with http.post(f"{url}/webhooks/textit", data=sms(n)) as resp:
            body = await resp.read()
            assert resp.status == 200, (resp.status, body)
        latencies.append(time.perf_counter() - began)
        if every:
            await asyncio.sleep(every)
    return latencies


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def rows(db: Path, sql: str) -> Any:
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        return conn.execute(sql).fetchall()


def count_rows(db: Path) -> dict[str, int]:
    tables = ("idempotency", "outbox", "hits", "conversations", "timers", "opt_outs", "slots")
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        return {t: int(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in tables}


class PrivateRedis:
    """A redis-server of the test's own on a free loopback port (never the shared one at
    6379), with an append-only file so a stop and start keeps its data."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0?prefix=attack"

    def start(self) -> None:
        server = shutil.which("redis-server")
        assert server is not None, "redis-server is needed (apt-get install redis-server)"
        self.directory.mkdir(parents=True, exist_ok=True)
        self._log = (self.directory / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [
                server,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2) as sock,
            ):
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise AssertionError("private redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # saves the append-only file and exits
            self.proc.wait(10)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


@contextlib.contextmanager
def private_redis(directory: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
