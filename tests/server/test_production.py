"""``responder serve`` as an operator meets it: real processes, real ports, real SQLite files.

Start-up mistakes get one clear line and exit 2 (never a traceback); SIGTERM under load exits 0
having answered every request it took; two processes on one SQLite file share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from responder.stores.sqlite import SqliteStore
from responder.testing.fakes import FakeProvider
from responder.testing.process import ServeProcess, free_port
from tests.conftest import write_rules

RULES = 'rules: [{name: hi, on: sms.received, reply: {text: "hi {{ contact }}"}}]'
IVR = """
dialogues:
  - name: menu
    start: {on: ivr.answer}
    states:
      ask:
        gather: {say: "Press 1.", max_digits: 1}
        on:
          - {digits: "1", goto: bye}
          - {otherwise: true, goto: bye}
      bye: {hangup: {say: "Bye."}}
"""


def serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``responder serve`` to its end; (exit code, everything it printed)."""
    rules = write_rules(tmp_path / "rules", RULES)
    result = subprocess.run(
        [sys.executable, "-m", "responder", "serve", "--rules", str(rules), *args],
        cwd=tmp_path,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return result.returncode, result.stdout + result.stderr


def assert_plain(output: str) -> None:
    assert "Traceback" not in output
    assert "Unclosed" not in output


def test_a_port_in_use_is_named_with_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, output = serve(
            tmp_path, "--host", "127.0.0.1", "--port", str(port), "--store", "memory://"
        )
    assert code == 2
    assert f"cannot listen on 127.0.0.1:{port}: the port is already in use" in output
    assert "--port or RESPONDER_PORT" in output
    assert "serving" not in output  # nothing claims to serve before the port is bound
    assert_plain(output)


def test_an_unknown_host_is_named(tmp_path: Path) -> None:
    code, output = serve(tmp_path, "--host", "no-such-host.invalid", "--store", "memory://")
    assert code == 2
    assert "not a known host name or address (--host or RESPONDER_HOST" in output
    assert_plain(output)


@contextlib.contextmanager
def read_only(path: Path, what: str) -> Iterator[Path]:
    """``path`` unwritable while inside: chmod, or immutable (chattr +i) when running as root."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(mode & ~0o222)
        try:
            yield path
        finally:
            path.chmod(mode)
        return
    if (
        shutil.which("chattr") is None
        or subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False).returncode
    ):
        pytest.skip(f"running as root without chattr +i: no way to make a {what} read-only")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def sqlite_file(path: Path) -> Path:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.close()
    return path


@pytest.fixture
def read_only_db(tmp_path: Path) -> Iterator[Path]:
    """A SQLite store file this process may not write."""
    with read_only(sqlite_file(tmp_path / "ro.db"), "file") as path:
        yield path


def test_a_read_only_store_stops_the_start_with_what_to_do(
    tmp_path: Path, read_only_db: Path
) -> None:
    code, output = serve(
        tmp_path, "--port", str(free_port()), "--store", f"sqlite:///{read_only_db}"
    )
    assert code == 2
    assert f"SQLite store {str(read_only_db)!r} cannot be written" in output
    assert "make the file and its directory writable" in output
    assert "--store or RESPONDER_STORE" in output
    assert_plain(output)


@pytest.fixture
def read_only_directory(tmp_path: Path) -> Iterator[Path]:
    """A directory holding a SQLite file, where this process may create no file."""
    directory = tmp_path / "ro"
    directory.mkdir()
    sqlite_file(directory / "a.db")
    with read_only(directory, "directory") as path:
        yield path


def test_a_store_in_a_read_only_directory_says_the_directory_must_be_writable(
    tmp_path: Path, read_only_directory: Path
) -> None:
    path = read_only_directory / "a.db"
    code, output = serve(tmp_path, "--port", str(free_port()), "--store", f"sqlite:///{path}")
    assert code == 2
    assert f"cannot open SQLite store {str(path)!r}" in output
    assert "its directory must be writable by this user too" in output
    assert_plain(output)


def test_a_store_whose_directory_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    code, output = serve(
        tmp_path, "--port", str(free_port()), "--store", f"sqlite:///{tmp_path}/file/x.db"
    )
    assert code == 2
    assert "cannot open SQLite store" in output
    assert "--store or RESPONDER_STORE" in output
    assert_plain(output)


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("redis://:pw@localhost:notaport/0", "malformed host:port 'localhost:notaport'"),
        ("postgres://u:pw@db/x", "unsupported store URL 'postgres://db/x'"),
        ("redis://:pw@localhost:6379/abc", "names database 'abc': it must be a number"),
        ("sqlite:///", "names no database file"),
    ],
)
def test_a_malformed_store_url_is_named(tmp_path: Path, store: str, message: str) -> None:
    code, output = serve(tmp_path, "--store", store)
    assert code == 2
    assert message in output
    assert ":pw@" not in output
    assert_plain(output)


def test_a_recording_that_cannot_be_written_stops_the_start(tmp_path: Path) -> None:
    env = {"RESPONDER_RECORD": str(tmp_path)}  # a directory
    code, output = serve(tmp_path, "--port", str(free_port()), "--store", "memory://", env=env)
    assert code == 2
    assert f"setting RESPONDER_RECORD: cannot write {str(tmp_path)!r}: Is a directory" in output
    assert "cannot listen" not in output
    assert_plain(output)


def test_log_level_is_case_insensitive_and_checked(tmp_path: Path) -> None:
    env = {"RESPONDER_LOG_LEVEL": "loud"}
    code, output = serve(tmp_path, "--store", "memory://", env=env)
    assert code == 2
    assert "setting RESPONDER_LOG_LEVEL: 'LOUD' is not one of DEBUG, INFO, WARNING, ERROR" in output
    assert_plain(output)


def test_missing_rules_say_where_they_were_looked_for(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "responder", "serve", "--store", "memory://"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 1
    assert "rules:0: no such file or directory" in result.stderr
    assert (
        f"--rules PATH or RESPONDER_RULES (default: rules/ in the current directory, {tmp_path})"
        in result.stderr
    )


async def test_ivr_dialogues_without_a_public_url_warn_and_hang_up(
    tmp_path: Path, fake_hoiio: FakeProvider
) -> None:
    rules = write_rules(tmp_path / "rules", IVR)
    env = {"HOIIO_APP_ID": "app", "HOIIO_ACCESS_TOKEN": "token", "HOIIO_API_URL": fake_hoiio.url}
    args = ["--rules", str(rules), "--store", f"sqlite:///{tmp_path / 'db'}"]
    async with ServeProcess(args, env, tmp_path / "log") as server, aiohttp.ClientSession() as http:
        data = {"ivr_block": "answer", "session": "S-1", "txn_ref": "T-1", "from": "+6591234567"}
        async with http.post(f"{server.url}/webhooks/hoiio", data=data) as resp:
            assert resp.status == 200
        for _ in range(100):
            if fake_hoiio.requests:
                break
            await asyncio.sleep(0.05)
    assert "RESPONDER_PUBLIC_URL is not set, so the IVR dialogues ('menu')" in server.output()
    assert "Set RESPONDER_PUBLIC_URL (or --public-url)" in server.output()
    assert [(r.path, r.params["session"]) for r in fake_hoiio.requests] == [
        ("/open/ivr/end/hangup", "S-1")
    ]


async def post_many(
    url: str, count: int, answered: asyncio.Event | None = None, after: int = 0
) -> list[int | str]:
    """POST ``count`` SMS webhooks at once; ``answered`` is set after ``after`` answers."""
    done = 0
    async with aiohttp.ClientSession() as http:

        async def one(i: int) -> int | str:
            nonlocal done
            data = {"event": "mo_sms", "sms": str(i), "phone": f"+659{i:07d}", "text": "x"}
            try:
                async with http.post(f"{url}/webhooks/textit", data=data) as resp:
                    await resp.read()
                    done += 1
                    if answered is not None and done >= after:
                        answered.set()
                    return resp.status
            except aiohttp.ClientError as exc:
                return type(exc).__name__

        return list(await asyncio.gather(*(one(i) for i in range(count))))


async def test_sigterm_under_load_exits_0_and_answers_every_request_it_took(
    tmp_path: Path,
) -> None:
    rules = write_rules(tmp_path / "rules", RULES)
    args = ["--rules", str(rules), "--store", f"sqlite:///{tmp_path / 'db'}"]
    server = await ServeProcess(args, {}, tmp_path / "log").start()
    some_answered = asyncio.Event()
    sending = asyncio.create_task(post_many(server.url, 1000, some_answered, after=100))
    await asyncio.wait_for(some_answered.wait(), 60)
    server.signal(signal.SIGTERM)
    signalled = time.monotonic()
    assert await server.stop() == 0
    stopped = time.monotonic() - signalled
    results = await sending
    answered = Counter(results)[200]
    print(f"SIGTERM under load: exit 0 after {stopped * 1000:.0f} ms; {dict(Counter(results))}")
    assert answered > 0
    assert set(results) <= {200, "ClientConnectorError", "ServerDisconnectedError", "ClientOSError"}
    # Every answered webhook was committed: after a restart on the same file, the same 1,000
    # deliveries are answered again, the answered ones from the store without a new reply.
    async with ServeProcess(args, {}, tmp_path / "log2") as again:
        assert set(await post_many(again.url, 1000)) == {200}
    duplicates = again.output().count("retried delivery answered with the stored response")
    # Every 200 was committed; a webhook committed while its connection was being closed
    # may also be in the store (its retry gets the stored answer, which is right too).
    assert answered <= duplicates <= len(results) - Counter(results)["ClientConnectorError"]
    assert "Traceback" not in server.output()


async def test_two_processes_share_one_sqlite_file(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules", RULES + IVR)
    args = [
        "--rules",
        str(rules),
        "--store",
        f"sqlite:///{tmp_path / 'shared.db'}",
        "--public-url",
        "https://example.test",
    ]
    a, b = ServeProcess(args, {}, tmp_path / "a.log"), ServeProcess(args, {}, tmp_path / "b.log")
    async with a, b, aiohttp.ClientSession() as http:

        async def post(server: ServeProcess, query: str, data: dict[str, str]) -> str:
            async with http.post(f"{server.url}/webhooks/{query}", data=data) as resp:
                assert resp.status == 200
                return await resp.text()

        # One delivery retried at both processes at once: one reply, the same answer four times.
        sms = {"event": "mo_sms", "sms": "7", "phone": "+6591111111", "text": "x"}
        answers = await asyncio.gather(*(post(s, "textit", sms) for s in (a, b, a, b)))
        assert len(set(answers)) == 1
        assert "hi +6591111111" in answers[0]
        # An IVR call answered by a, its key press posted to b, continues where a left it.
        answer = {"ivr_block": "answer", "session": "S-1", "txn_ref": "T1", "from": "+6591234567"}
        await post(a, "hoiio", answer)
        for _ in range(100):
            if "app_state=" in a.output():
                break
            await asyncio.sleep(0.05)
        notify = a.output().split("https://example.test/webhooks/")[1].split('"')[0]
        await post(
            b, notify, {"ivr_block": "gather", "session": "S-1", "txn_ref": "T2", "digits": "1"}
        )
    replied = (a.output() + b.output()).count(
        "sms.received from +6591111111: rules ['hi'], replied"
    )
    assert replied == 1
    assert "ivr/end/hangup" in b.output()
    assert "app_state refused" not in b.output()


async def test_a_second_sigterm_does_not_cut_the_shutdown_short(
    tmp_path: Path, fake_hoiio: FakeProvider
) -> None:
    rules = write_rules(
        tmp_path / "rules",
        'rules: [{name: fwd, on: sms.received, sms: {to: "+6590000000", text: "{{ text }}"}}]',
    )
    fake_hoiio.behaviour.delay = 1.5
    env = {"HOIIO_APP_ID": "app", "HOIIO_ACCESS_TOKEN": "token", "HOIIO_API_URL": fake_hoiio.url}
    db = tmp_path / "db"
    args = ["--rules", str(rules), "--store", f"sqlite:///{db}"]
    server = await ServeProcess(args, env, tmp_path / "log").start()
    sms = {"from": "+6591234567", "to": "+6531234567", "msg": "hello", "txn_ref": "T-1"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server.url}/webhooks/hoiio", data=sms) as resp,
    ):
        assert resp.status == 200
    for _ in range(100):
        if fake_hoiio.in_flight:
            break
        await asyncio.sleep(0.02)
    server.signal(signal.SIGTERM)
    await asyncio.sleep(0.3)
    server.signal(signal.SIGTERM)
    assert await server.stop() == 0
    assert "SIGTERM: already shutting down" in server.output()
    store = SqliteStore(str(db))
    await store.open()
    try:
        items = await store.outbox()
    finally:
        await store.close()
    assert [item.status for item in items] == ["sent"]
