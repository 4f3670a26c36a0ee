"""A real responder server for fuzzing: raw HTTP bytes in, status out, the store watched.

One server serves every example of a property (starting one per example would cost more
than the example). It runs on its own event loop, with a SQLite file for its store and a
clock that never moves, so nothing changes the store between two requests except the
requests themselves: no timer fires and no limit window ends.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer

from responder.rules.loader import load_rules
from responder.settings import Settings
from responder.web.server import STORE, create_app
from tests.conftest import REPO

# 2026-11-25 (a Wednesday) 02:00 UTC: 10:00 in Singapore, inside the example business hours.
NOW = 1795572000.0
STATE_KEY = "fuzz-state-key-0123456789abcdef"
PUBLIC_URL = "https://ivr.example.org"
MAX_BODY = 256 * 1024  # above the field limits, so both are reached
# The default rules and every example; keyword-autoresponder reuses rule names of the
# default set, so it gets a server of its own.
RULE_SETS = {
    "default+examples": (
        REPO / "rules",
        REPO / "examples/callback",
        REPO / "examples/flow-order-status",
        REPO / "examples/ivr-menu",
        REPO / "examples/missed-call",
        REPO / "examples/sms-survey",
    ),
    "keyword-autoresponder": (REPO / "examples/keyword-autoresponder",),
}

# What a webhook may write. Slots are left out: the delivery worker takes and frees them.
SNAPSHOT = {
    "idempotency": "SELECT count(*), total(length(body)) FROM idempotency",
    "outbox": "SELECT count(*) FROM outbox",
    "hits": "SELECT count(*), total(at) FROM hits",
    "conversations": "SELECT count(*), total(version) FROM conversations",
    "timers": "SELECT count(*), total(seq), total(due) FROM timers",
    "opt_outs": "SELECT count(*), total(opted_out), total(updated) FROM opt_outs",
}


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class ErrorRecords(logging.Handler):
    """Every ERROR (or worse) log record, and every record that carries a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.records.append(record)


def raw_request(
    method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
) -> bytes:
    """An HTTP/1.1 request as bytes; Host, Content-Length and Connection: close are added."""
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1"]
    lines += [name + b": " + value for name, value in headers]
    lines += [b"Content-Length: " + str(len(body)).encode(), b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class Server:
    """``create_app`` with the given rules and settings, on an ephemeral port."""

    def __init__(self, db: Path, rules: tuple[Path, ...], **overrides: Any) -> None:
        values: dict[str, Any] = {
            "rules": tuple(str(r) for r in rules),
            "store": f"sqlite:///{db}",
            "state_key": STATE_KEY,
            "public_url": PUBLIC_URL,
            "max_body_bytes": MAX_BODY,
            "metrics": True,
        }
        values.update(overrides)
        self.settings = Settings.from_env({}, **values)
        self.db = db
        self.errors = ErrorRecords()
        logging.getLogger().addHandler(self.errors)
        self.loop = asyncio.new_event_loop()
        app = create_app(self.settings, rules=load_rules(self.settings.rules), clock=lambda: NOW)
        self.app = app
        self.server = TestServer(app)
        self.loop.run_until_complete(self.server.start_server())
        self._conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)

    def close(self) -> None:
        self._conn.close()
        self.loop.run_until_complete(self.server.close())
        self.loop.close()
        logging.getLogger().removeHandler(self.errors)

    def send(self, request: bytes, timeout: float = 10.0) -> Answer:
        """Send raw request bytes on a new connection; the whole answer, parsed."""
        return self.loop.run_until_complete(asyncio.wait_for(self._send(request), timeout))

    async def _send(self, request: bytes) -> Answer:
        assert self.server.port is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        data = b""
        try:
            writer.write(request)
            await writer.drain()
            data = await reader.read()
        except ConnectionError:
            # The server answered (a refusal) and closed before reading everything we sent.
            data += reader._buffer
        finally:
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()
        assert data, "the connection closed without an answer"
        head, _, body = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return Answer(int(status_line.split(" ")[1]), headers, body)

    def snapshot(self) -> dict[str, Any]:
        """Everything a webhook could have written, read through a second connection."""
        out: dict[str, Any] = {
            name: self._conn.execute(sql).fetchone() for name, sql in SNAPSHOT.items()
        }
        depth = self.loop.run_until_complete(self.app[STORE].depth())
        out["depth"] = (depth.conversations, depth.timers)
        return out
