"""Log set-up: JSON lines with the trace id of the webhook being handled, masked contacts."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from responder.logs import TRACE_ID, mask_contact, new_trace_id, setup_logging
from responder.testing.process import ServeProcess
from tests.conftest import write_rules


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    noisy_level = logging.getLogger("transitions").level
    yield
    logging.getLogger("transitions").setLevel(noisy_level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_lines_carry_the_trace_id_and_trace_fields(restore_root: None) -> None:
    out = io.StringIO()
    setup_logging("INFO", "json", out)
    log = logging.getLogger("responder.test")
    token = TRACE_ID.set("abcdef0123456789")
    try:
        log.info("matched %s", "hours", extra={"trace": {"kind": "sms.received"}})
    finally:
        TRACE_ID.reset(token)
    log.debug("not shown at INFO")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("crashed")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert first["message"] == "matched hours"
    assert first["trace_id"] == "abcdef0123456789"
    assert first["kind"] == "sms.received"
    assert first["level"] == "INFO"
    assert first["logger"] == "responder.test"
    assert first["time"].endswith("+00:00")
    assert "trace_id" not in second
    assert "ValueError: boom" in second["exception"]


def test_text_lines_end_with_the_trace_id(restore_root: None) -> None:
    out = io.StringIO()
    setup_logging("INFO", "text", out)
    token = TRACE_ID.set("0011223344556677")
    try:
        logging.getLogger("responder.test").warning("careful")
    finally:
        TRACE_ID.reset(token)
    assert out.getvalue().rstrip().endswith("responder.test: careful [trace 0011223344556677]")


@pytest.mark.parametrize(("level", "shown"), [("INFO", False), ("DEBUG", True)])
def test_state_machine_chatter_only_at_debug(restore_root: None, level: str, shown: bool) -> None:
    out = io.StringIO()
    setup_logging(level, "text", out)
    logging.getLogger("transitions.core").info("Finished processing state menu exit callbacks.")
    logging.getLogger("transitions.core").warning("a real problem")
    assert ("Finished processing" in out.getvalue()) is shown
    assert "a real problem" in out.getvalue()


@pytest.mark.parametrize(
    ("contact", "masked"),
    [
        ("+6591234567", "+65*****567"),
        ("+250788123123", "+250*****3123"),
        ("12345", "*****"),
        ("", ""),
        (None, None),
    ],
)
def test_mask_contact(contact: str | None, masked: str | None) -> None:
    assert mask_contact(contact) == masked


def test_trace_ids_are_new_unless_a_proxy_gave_a_sane_one() -> None:
    a, b = new_trace_id(), new_trace_id()
    assert a != b
    assert len(a) == 16
    assert new_trace_id("req-12345678") == "req-12345678"
    assert new_trace_id("bad id with spaces") != "bad id with spaces"
    assert len(new_trace_id("x" * 200)) == 16


async def test_serve_with_log_format_json_writes_only_json_lines(tmp_path: Path) -> None:
    rules = write_rules(
        tmp_path / "r", 'rules: [{name: hi, on: sms.received, reply: {text: "hi"}}]'
    )
    args = [
        "--rules",
        str(rules),
        "--store",
        f"sqlite:///{tmp_path / 'db'}",
        "--log-format",
        "json",
    ]
    server = ServeProcess(args, {"RESPONDER_LOG_CONTACTS": "masked"}, tmp_path / "serve.log")
    async with server, aiohttp.ClientSession() as http:
        data = {"event": "mo_sms", "sms": "1", "phone": "+6591234567", "text": "hey"}
        async with http.post(f"{server.url}/webhooks/textit", data=data) as resp:
            trace_id = resp.headers["X-Trace-Id"]
    lines = [json.loads(line) for line in server.output().splitlines() if line.strip()]
    (trace,) = [line for line in lines if line.get("event") == "webhook"]
    assert trace["trace_id"] == trace_id
    assert trace["contact"] == "+65*****567"
    assert "+6591234567" not in server.output()
