"""The store failing under traffic: a disk full to the last byte, the SQLite files made
read-only while serving, Redis stopped and started. A webhook is answered 200 only when what
it decided is stored: otherwise 503, so the provider sends it again. When the store comes
back, so does the service; every event answered 200 is delivered exactly once and the SQLite
file passes ``PRAGMA integrity_check``.

The full disk is a 16 MiB tmpfs mounted for the test (root only); where mounting is not
allowed the test limits the server's file sizes instead (``RLIMIT_FSIZE``, raised again with
``prlimit``), which SQLite sees as the same failure to write.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from responder.testing.fakes import FakeProvider
from tests.attacks.support import (
    ACK_RULES,
    Serve,
    clean_env,
    private_redis,
    rows,
    sms,
)
from tests.conftest import wait_for, write_rules


class Disk:
    """A small file system the server's SQLite file lives on, filled and freed at will."""

    def __init__(self, where: Path) -> None:
        self.where = where
        self.mounted = False
        self.limited_pid: int | None = None

    def mount(self) -> None:
        self.where.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0 and shutil.which("mount"):
            done = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(self.where)],
                capture_output=True,
                check=False,
            )
            self.mounted = done.returncode == 0

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.where)], check=False)

    def preexec(self) -> None:
        """In the child: nothing on a tmpfs; without one, file sizes are held at 16 MiB."""
        if not self.mounted:
            resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, resource.RLIM_INFINITY))

    def fill(self, pid: int) -> int:
        """Fill the disk to the last byte; returns the bytes written to fill it."""
        if not self.mounted:
            # The limit is the disk: lower it to what the files already take.
            used = sum(p.stat().st_size for p in self.where.iterdir())
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (used, resource.RLIM_INFINITY))
            return 0
        written = 0
        with (self.where / "filler").open("wb", buffering=0) as filler:
            for size in (1 << 16, 1 << 10, 1):
                with contextlib.suppress(OSError):
                    while True:
                        written += filler.write(b"\0" * size)
        return written

    def free(self, pid: int) -> None:
        if self.mounted:
            (self.where / "filler").unlink()
        else:
            resource.prlimit(
                pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
            )

    @property
    def kind(self) -> str:
        return "16 MiB tmpfs" if self.mounted else "RLIMIT_FSIZE (no tmpfs could be mounted)"


@contextlib.contextmanager
def small_disk(where: Path) -> Iterator[Disk]:
    disk = Disk(where)
    disk.mount()
    try:
        yield disk
    finally:
        disk.unmount()


async def post(http: aiohttp.ClientSession, url: str, n: int, text: str = "") -> int:
    try:
        async with http.post(f"{url}/webhooks/textit", data=sms(n, text or f"m{n}")) as resp:
            await resp.read()
            return resp.status
    except aiohttp.ClientError:
        return 0


def delivered(fake: FakeProvider) -> Counter[str]:
    """How many times each event's reply was accepted by the provider, by event number."""
    out: Counter[str] = Counter()
    for key, times in fake.accepted.items():
        out[key.split(":S", 1)[1].split("#")[0]] += times
    return out


def stored(db: Path) -> set[str]:
    return {key.split(":S", 1)[1] for (key,) in rows(db, "SELECT key FROM idempotency")}


def env_for(fake: FakeProvider) -> dict[str, str]:
    return clean_env(
        HOIIO_APP_ID="app-1",
        HOIIO_ACCESS_TOKEN="token-1",
        HOIIO_API_URL=fake.url,
        RESPONDER_RETRY_BASE="0.05",
        RESPONDER_RETRY_MAX="0.5",
        RESPONDER_DELIVERY_MAX_ATTEMPTS="100",
        RESPONDER_DELIVERY_LEASE="2",  # calls claimed while the store failed come back soon
        RESPONDER_LOG_LEVEL="WARNING",
    )


async def test_sqlite_on_a_full_disk(tmp_path: Path, record_figure) -> None:
    behaviour_fake = FakeProvider("hoiio")
    behaviour_fake.behaviour.idempotent = True
    async with behaviour_fake as fake, aiohttp.ClientSession() as http:
        with small_disk(tmp_path / "disk") as disk:
            db = disk.where / "responder.db"
            rules = write_rules(tmp_path / "rules", ACK_RULES)
            server = await Serve(rules, f"sqlite:///{db}", env_for(fake), disk.preexec).start()
            try:
                ok = [n for n in range(50) if await post(http, server.url, n) == 200]
                assert len(ok) == 50
                filler = disk.fill(server.pid)
                text = "x" * 3000  # each webhook needs room the disk has not got
                answers = {n: await post(http, server.url, n, text) for n in range(50, 250)}
                refused = [n for n, status in answers.items() if status == 503]
                accepted = [n for n, status in answers.items() if status == 200]
                assert set(answers.values()) <= {200, 503}
                assert len(refused) >= 150, Counter(answers.values())
                disk.free(server.pid)
                again = {n: await post(http, server.url, n, text) for n in refused}
                assert set(again.values()) == {200}, Counter(again.values())
                later = [n for n in range(250, 300) if await post(http, server.url, n) == 200]
                assert len(later) == 50
                answered = {str(n) for n in ok + accepted + refused + later}
                await wait_for(
                    lambda: set(delivered(fake)) >= answered,
                    60,
                    f"deliveries (missing {sorted(answered - set(delivered(fake)))[:20]})",
                )
            finally:
                assert await server.stop() == 0
            # Every webhook answered 200 was stored, and delivered exactly once.
            assert stored(db) == answered
            assert set(delivered(fake).values()) == {1}
            assert set(delivered(fake)) == answered
            assert rows(db, "PRAGMA integrity_check") == [("ok",)]
            warnings = server.output().count("store unavailable")
    record_figure(
        f"full disk ({disk.kind}, {filler:,} bytes of filler): {len(refused)} of 200 webhooks "
        f"answered 503 while full, {len(accepted)} answered 200 (room left in the file), none "
        f"200 without its record; all 200 once space returned; {warnings} 'store unavailable' "
        f"errors logged; {len(answered)} events delivered once each; integrity_check ok"
    )


async def test_sqlite_files_made_read_only_while_serving(tmp_path: Path, record_figure) -> None:
    if shutil.which("chattr") is None or os.geteuid() != 0:
        pytest.skip("needs chattr and root: file modes alone do not stop root from writing")
    async with FakeProvider("hoiio") as fake, aiohttp.ClientSession() as http:
        db = tmp_path / "store" / "responder.db"
        rules = write_rules(tmp_path / "rules", ACK_RULES)
        server = await Serve(rules, f"sqlite:///{db}", env_for(fake)).start()
        # Not the -shm file: SQLite maps it into memory, and a write to a page of an
        # immutable file is a SIGBUS that no program can catch (measured: the server dies).
        files = [str(db), f"{db}-wal"]
        try:
            assert [await post(http, server.url, n) for n in range(20)] == [200] * 20
            done = await asyncio.to_thread(
                subprocess.run, ["chattr", "+i", *files], capture_output=True, check=False
            )
            if done.returncode:
                pytest.skip(f"chattr +i refused here: {done.stderr.decode().strip()}")
            try:
                answers = [await post(http, server.url, n) for n in range(20, 60)]
            finally:
                await asyncio.to_thread(subprocess.run, ["chattr", "-i", *files], check=True)
            again = [await post(http, server.url, n) for n in range(20, 80)]
            wanted = {str(n) for n in range(80)}
            await wait_for(lambda: set(delivered(fake)) == wanted, 60, "deliveries")
        finally:
            assert await server.stop() == 0
        assert set(answers) == {503}
        assert set(again) == {200}
        assert stored(db) == {str(n) for n in range(80)}
        assert set(delivered(fake).values()) == {1}
        assert rows(db, "PRAGMA integrity_check") == [("ok",)]
    record_figure(
        f"SQLite files made immutable while serving (chattr +i): {answers.count(503)} of 40 "
        "webhooks answered 503, none 200; all 200 once writable again; 80 delivered once each"
    )


async def test_redis_stopped_and_started(tmp_path: Path, record_figure) -> None:
    async with FakeProvider("hoiio") as fake, aiohttp.ClientSession() as http:
        with private_redis(tmp_path / "redis") as redis:
            rules = write_rules(tmp_path / "rules", ACK_RULES)
            server = await Serve(rules, redis.url, env_for(fake)).start()
            try:
                first = [await post(http, server.url, n) for n in range(30)]
                redis.stop()
                down = [await post(http, server.url, n) for n in range(30, 60)]
                metrics_ok = False
                async with http.get(f"{server.url}/healthz") as resp:
                    metrics_ok = resp.status == 200
                redis.start()
                back = [await post(http, server.url, n) for n in range(30, 90)]
                await wait_for(
                    lambda: set(delivered(fake)) == {str(n) for n in range(90)}, 60, "deliveries"
                )
            finally:
                assert await server.stop() == 0
            errors = server.output().count("store unavailable")
    assert first == [200] * 30
    assert set(down) == {503}
    assert back == [200] * 60
    assert metrics_ok
    assert set(delivered(fake).values()) == {1}
    record_figure(
        f"Redis stopped while serving: {down.count(503)} of 30 webhooks answered 503 (none 200), "
        f"{errors} 'store unavailable' errors logged; after the restart all 60 answered 200 and "
        "90 events delivered once each"
    )
