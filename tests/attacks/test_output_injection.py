"""What the tools print comes from strangers (webhook ids, texts, numbers, logs, recordings):
a CR, LF, ESC or NUL in it is printed escaped, so no line can be forged, overwritten or hide
part of the screen. Each test counts the lines printed against the lines expected."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from urllib.parse import urlencode

import pytest

from responder.cli import main
from responder.outbound import Commit, OutboundCall, StoredResponse
from responder.stores.sqlite import SqliteStore
from responder.web.recording import Record
from tests.conftest import write_rules

EVIL = "k1\r\nFORGED 2026-01-01 dead\x1b[2J\x1b]0;pwned\x07\x00\u2028end"
RAW = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
OK = StoredResponse(200, "text/plain", b"")
T0 = 1_764_000_000.0


def assert_clean(text: str, lines: int) -> None:
    assert not RAW.search(text), repr(text)
    assert "\\x1b[2J" in text
    assert "FORGED" not in text.split("\n")[0] or "\\r\\nFORGED" in text
    assert not [line for line in text.splitlines() if line.startswith("FORGED")]
    assert text.count("\n") == lines, text


async def fill(path: Path) -> None:
    store = SqliteStore(str(path))
    await store.open()
    try:
        call = OutboundCall(EVIL, "hoiio", "sms/send", {"dest": EVIL, "msg": EVIL}, contact=EVIL)
        await store.commit(Commit("e1", OK, (call,), now=T0))
        await store.claim_outbox(T0, 60.0, 10)
        await store.finish_outbox(EVIL, "dead", f"HTTP 400 {EVIL}", T0 + 1)
    finally:
        await store.close()


def test_outbox_listing_and_retry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "responder.db"
    asyncio.run(fill(path))
    assert main(["outbox", "--store", f"sqlite:///{path}"]) == 0
    out = capsys.readouterr().out
    assert_clean(out, 2)  # the header and one row
    assert main(["outbox", "--store", f"sqlite:///{path}", "retry", EVIL + "x"]) == 1
    captured = capsys.readouterr()
    assert_clean(captured.err, 1)
    assert_clean(captured.out + "\\x1b[2J", 1)
    # JSON lines escape as JSON does: one line per item.
    assert main(["outbox", "--store", f"sqlite:///{path}", "--json"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert json.loads(out)["key"] == EVIL


def test_explain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = {
        "time": "2026-01-01T00:00:00",
        "level": "INFO",
        "logger": "responder.trace",
        "message": f"trace {EVIL}",
        "trace_id": "t1",
        "event": "webhook",
        "channel": "textit",
        "kind": "sms.received",
        "contact": "+6591234567",
        "text": EVIL,
        "matched": [EVIL],
        "errors": [EVIL],
        "effects": {"reply": {"text": EVIL}, "calls": [{"provider": EVIL, "endpoint": EVIL}]},
    }
    related = {"level": "WARNING", "logger": EVIL, "message": EVIL, "trace_id": "t1"}
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps(trace) + "\n" + json.dumps(related) + "\n")
    assert main(["explain", "--log", str(log), "--contact", "+6591234567"]) == 0
    assert_clean(capsys.readouterr().out, 7)


def test_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write_rules(tmp_path / "old", "rules: []\n")
    new = write_rules(
        tmp_path / "new",
        """
        rules:
          - name: echo
            on: sms.received
            reply: {text: "{{ text }}"}
        """,
    )
    body = urlencode({"event": "mo_sms", "sms": "1", "phone": "+6591234567", "text": EVIL})
    record = Record(T0, "textit", "textit", (), body.encode(), "application/x-www-form-urlencoded")
    log = tmp_path / "webhooks.jsonl"
    log.write_text(record.to_json() + "\n" + EVIL.replace("\r\n", " ") + "\n")
    args = ["replay", str(log), "--rules", str(new), "--old", str(old)]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert_clean(captured.out, 4)  # the event, its two reply lines, the summary
    assert not RAW.search(captured.err)
    assert captured.err.count("\n") == 1  # the unreadable line, skipped


def test_graph(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = write_rules(
        tmp_path / "rules",
        r"""
        dialogues:
          - name: menu
            start: {on: ivr.answer}
            states:
              hello:
                hangup: {say: "bye\r\nFORGED\e[2J\e]0;pwned\a\0"}
        """,
    )
    code = main(["graph", "--rules", str(rules), "--bare"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert not RAW.search(captured.out)
    assert "\\x1b[2J" in captured.out
    assert not [line for line in captured.out.splitlines() if line.startswith("FORGED")]
