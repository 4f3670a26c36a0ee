"""``responder outbox``: the operator's view of the outbox and the way to send dead calls again,
run through the real command line on a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from responder.cli import main
from responder.outbound import Commit, OutboundCall, StoredResponse
from responder.stores.sqlite import SqliteStore
from tests.conftest import REPO

OK = StoredResponse(200, "text/plain", b"")
T0 = 1_764_000_000.0  # 2025-11-24 16:00:00 UTC


def sms(key: str, to: str, msg: str = "hi") -> OutboundCall:
    return OutboundCall(key, "hoiio", "sms/send", {"dest": to, "msg": msg}, rule="r", contact=to)


async def fill(path: Path) -> None:
    store = SqliteStore(str(path))
    await store.open()
    try:
        hook = OutboundCall("e3#0", "http", "https://example.com/h?token=s3cret", {"json": {}})
        await store.commit(Commit("e1", OK, (sms("e1#0", "+6591234567"),), now=T0))
        await store.commit(Commit("e2", OK, (sms("e2#0", "+6598765432"),), now=T0 + 60))
        await store.commit(Commit("e3", OK, (hook,), now=T0 + 120))
        await store.claim_outbox(T0 + 200, 60.0, 10)
        await store.retry_outbox("e1#0", T0 + 201, "hoiio sms/send: HTTP 503")
        await store.finish_outbox(
            "e1#0", "dead", "hoiio sms/send: error_insufficient_credit", T0 + 300
        )
        await store.finish_outbox("e2#0", "sent", None, T0 + 300)
        await store.finish_outbox("e3#0", "dead", "http POST: HTTP 404", T0 + 300)
    finally:
        await store.close()


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = tmp_path / "responder.db"
    asyncio.run(fill(path))
    return f"sqlite:///{path}"


def test_lists_dead_items_newest_first_with_their_errors(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["outbox", "--store", db, "--status", "dead"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "KEY",
        "STATUS",
        "TRIES",
        "CALL",
        "CONTACT",
        "CREATED",
        "(UTC)",
        "LAST",
        "ERROR",
    ]
    assert lines[1].split()[:5] == ["e3#0", "dead", "1", "http", "https://example.com/h?..."]
    assert lines[1].endswith("http POST: HTTP 404")
    assert lines[2].split()[:6] == ["e1#0", "dead", "2", "hoiio", "sms/send", "+6591234567"]
    assert "2025-11-24 16:00:00" in lines[2]
    assert lines[2].endswith("hoiio sms/send: error_insufficient_credit")
    assert len(lines) == 3
    assert "s3cret" not in "\n".join(lines)


def test_lists_everything_as_json_lines(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["outbox", "--store", db, "--json", "--limit", "2"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["key"], r["status"], r["tries"]) for r in records] == [
        ("e3#0", "dead", 1),
        ("e2#0", "sent", 1),
    ]
    assert records[1]["params"] == {"dest": "+6598765432", "msg": "hi"}
    assert records[1]["created"] == "2025-11-24 16:01:00"


def test_an_empty_list_says_so(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["outbox", "--store", db, "--status", "pending"]) == 0
    assert capsys.readouterr().out == "no pending items\n"


def test_retry_requeues_named_dead_items_and_reports_the_rest(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["outbox", "--store", db, "retry", "e1#0", "e2#0", "nope#0"]) == 1
    captured = capsys.readouterr()
    assert (
        captured.out == "requeued 1 dead item(s); a running responder sends them within a second\n"
    )
    assert captured.err.splitlines() == [
        "e2#0: no dead item with this key",
        "nope#0: no dead item with this key",
    ]
    assert main(["outbox", "--store", db, "--status", "pending", "--json"]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (record["key"], record["tries"]) == ("e1#0", 0)


def test_retry_all_dead(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["outbox", "--store", db, "retry", "--all-dead"]) == 0
    assert capsys.readouterr().out.startswith("requeued 2 dead item(s)")
    assert main(["outbox", "--store", db, "--status", "dead"]) == 0
    assert capsys.readouterr().out == "no dead items\n"
    assert main(["outbox", "--store", db, "retry", "--all-dead"]) == 0
    assert capsys.readouterr().out == "nothing to requeue\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["outbox", "retry"], "name KEY(s) or --all-dead"),
        (["outbox", "--limit", "0"], "--limit must be at least 1"),
        (["outbox", "--store", "postgres://x"], "unsupported store URL"),
    ],
)
def test_bad_usage_is_refused_with_a_reason(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_the_installed_command_reads_the_store_from_the_environment(db: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "responder", "outbox", "--status", "sent"],
        cwd=REPO,
        env={"RESPONDER_STORE": db, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].split()[:2] == ["e2#0", "sent"]


def test_a_store_file_that_is_not_there_is_named_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "responder.bd"
    assert main(["outbox", "--store", f"sqlite:///{typo}"]) == 2
    err = capsys.readouterr().err
    assert f"there is no SQLite store at {str(typo)!r}" in err
    assert "--store or RESPONDER_STORE" in err
    assert not typo.exists()


def test_a_memory_store_is_refused_with_a_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["outbox", "--store", "memory://"]) == 2
    assert "a memory:// store lives only inside the process" in capsys.readouterr().err
