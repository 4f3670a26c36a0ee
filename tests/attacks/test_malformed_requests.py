"""Malformed HTTP is logged without a byte of the request: a secret spelled so that no
pattern knows it (``pass%77ord=``), or a token in a header padded past the parser's limit,
never reaches the log."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import pytest

from tests.conftest import write_rules

SECRET = "hook-secret-31-XYZZY"
TOKEN = "metrics-token-42-PLUGH"
LINE = re.compile(r"malformed HTTP request refused \(400\): [A-Za-z0-9 ,-]+")

REQUESTS = {
    "escaped-name-long-query": b"POST /webhooks/textit?pass%77ord="
    + SECRET.encode()
    + b"&"
    + b"x" * 9000
    + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    "padded-authorization": b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
    + TOKEN.encode()
    + b" " * 8200
    + b"\r\n\r\n",
    "long-header-after-token": b"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
    + TOKEN.encode()
    + b"\r\nX-Pad: "
    + b"y" * 9000
    + b"\r\n\r\n",
    "bad-header-name": b"GET /metrics HTTP/1.1\r\nHost: x\r\nBearer "
    + TOKEN.encode()
    + b"\r\n\r\n",
    "bad-query-char": b"POST /webhooks/textit?pass%77ord="
    + SECRET.encode()
    + b"\x01 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    "bad-content-length": b"POST /webhooks/textit HTTP/1.1\r\nHost: x\r\nContent-Length: 1 "
    + SECRET.encode()
    + b"\r\n\r\n",
    "bad-chunk-size": b"POST /webhooks/textit HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
    b"\r\n\r\nZZ " + SECRET.encode() + b"\r\n",
}


async def _raw(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await writer.wait_closed()
    return data


@pytest.mark.parametrize("name", sorted(REQUESTS))
async def test_no_request_byte_is_logged(
    make_client, tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    rules = write_rules(tmp_path / "r", "rules: []\n")
    client = await make_client(rules, webhook_secret=SECRET, metrics_token=TOKEN)
    with caplog.at_level(logging.DEBUG):
        answer = await _raw(client.port, REQUESTS[name])
        await asyncio.sleep(0.05)
    assert answer.split(b" ", 2)[1] == b"400"
    refused = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert refused
    for record in refused:
        assert LINE.fullmatch(record.getMessage()), record.getMessage()
        assert record.exc_info is None
    assert SECRET not in caplog.text
    assert TOKEN not in caplog.text
    assert "XYZZY" not in caplog.text
    assert "PLUGH" not in caplog.text
