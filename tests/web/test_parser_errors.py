"""HTTP that aiohttp cannot parse is refused with 400 and logged as one WARNING line."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from tests.conftest import write_rules

SECRET = "parser-secret-31"


async def _raw(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    return data


@pytest.mark.parametrize(
    ("request_bytes", "reason"),
    [
        (
            b"POST /webhooks/textit?secret=" + SECRET.encode() + b" HTTP/1.1\r\n"
            b"Host: x\r\nX-Request-Id: \x01bad\r\nContent-Length: 0\r\n\r\n",
            "Invalid header value char",
        ),
        (
            b"POST /webhooks/textit?secret=" + SECRET.encode() + b"&x=\x01 HTTP/1.1\r\n"
            b"Host: x\r\nContent-Length: 0\r\n\r\n",
            "Invalid char in url query",
        ),
        (
            b"POST /webhooks/textit?secret=" + SECRET.encode() + b" HTTP/1.1\r\nHost: x\r\n"
            b"Content-Encoding: br\r\nContent-Length: 5\r\n\r\nhello",
            "Can not decode content-encoding",
        ),
    ],
)
async def test_malformed_http_is_one_warning_without_secret(
    make_client, tmp_path: Path, caplog: pytest.LogCaptureFixture, request_bytes: bytes, reason: str
) -> None:
    rules = write_rules(tmp_path / "r", "rules: []\n")
    client = await make_client(rules, webhook_secret=SECRET)
    with caplog.at_level(logging.WARNING):
        answer = await _raw(client.port, request_bytes)
        await asyncio.sleep(0.05)
    assert answer.split(b"\r\n")[0].split(b" ")[1] == b"400"
    records = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert records, "the refusal is logged"
    for record in records:
        assert record.levelno == logging.WARNING
        assert record.exc_info is None
        message = record.getMessage()
        assert message.startswith("malformed HTTP request refused (400): ")
        assert reason in message
        assert SECRET not in message


async def test_body_that_does_not_match_its_content_encoding_is_a_bad_request(
    make_client, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rules = write_rules(tmp_path / "r", "rules: []\n")
    client = await make_client(rules)
    with caplog.at_level(logging.WARNING):
        resp = await client.post(
            "/webhooks/textit",
            data=b"event=mo_sms&text=hi",
            headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"},
            skip_auto_headers=["Content-Encoding"],
        )
    assert resp.status == 400
    assert (await resp.json())["error"] == (
        "the body cannot be decoded as its Content-Encoding says"
    )
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
