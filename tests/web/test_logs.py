"""Log set-up: JSON lines with the trace id of the webhook being handled, masked contacts."""

from __future__ import annotations

import asyncio
import enum
import io
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from responder.printable import one_line
from responder.testing.process import ServeProcess
from responder.web.logs import (
    TEXT_FORMAT,
    TRACE_ID,
    JsonFormatter,
    TextFormatter,
    TraceFields,
    TraceFilter,
    mask_contact,
    new_trace_id,
    setup_logging,
    text_format,
)
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


@pytest.mark.parametrize(
    "said", ["a\r\n2026-12-06 00:00:00 ERROR forged", "a\x00b", "\x1b[2Jx", "a\u2028b"]
)
def test_text_lines_escape_control_characters_from_webhooks(restore_root: None, said: str) -> None:
    out = io.StringIO()
    setup_logging("INFO", "text", out)
    logging.getLogger("responder.test").warning("contact said %s", said)
    (line,) = out.getvalue().splitlines()
    assert line.endswith(f"responder.test: contact said {one_line(said)}")
    assert "\\" in line


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [("plain", None, "plain"), ("a\r\nb", None, "a\\r\\nb"), ("x" * 10, 6, "xxx...")],
)
def test_one_line(text: str, limit: int | None, expected: str) -> None:
    assert one_line(text, limit) == expected


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


async def _post_all(url: str, count: int, answered: asyncio.Event, after: int) -> list[str]:
    """POST ``count`` SMS webhooks at once: the trace ids of those answered 200."""
    traced: list[str] = []
    async with aiohttp.ClientSession() as http:

        async def one(i: int) -> None:
            data = {"event": "mo_sms", "sms": str(i), "phone": f"+659{i:07d}", "text": "hey"}
            try:
                async with http.post(f"{url}/webhooks/textit", data=data) as resp:
                    await resp.read()
                    if resp.status == 200:
                        traced.append(resp.headers["X-Trace-Id"])
            except aiohttp.ClientError:
                return
            if len(traced) >= after:
                answered.set()

        await asyncio.gather(*(one(i) for i in range(count)))
    return traced


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_serve_stopped_by_sigterm_under_load_logged_every_webhook_it_answered(
    tmp_path: Path, log_format: str
) -> None:
    rules = write_rules(
        tmp_path / "r", 'rules: [{name: hi, on: sms.received, reply: {text: "hi"}}]'
    )
    args = ["--rules", str(rules), "--store", f"sqlite:///{tmp_path / 'db'}"]
    server = await ServeProcess(
        [*args, "--log-format", log_format], {}, tmp_path / "serve.log"
    ).start()
    reloaded, stopping = asyncio.Event(), asyncio.Event()
    first = await _post_all(server.url, 100, reloaded, after=100)
    server.signal(signal.SIGHUP)  # a reload: logged, and the lines keep coming
    sending = asyncio.create_task(_post_all(server.url, 600, stopping, after=150))
    await asyncio.wait_for(stopping.wait(), 60)
    server.signal(signal.SIGTERM)
    assert await server.stop() == 0
    answered = first + await sending
    output = server.output()
    if log_format == "json":
        records = [json.loads(line) for line in output.splitlines()]
        logged = [r["trace_id"] for r in records if r.get("event") == "webhook"]
        messages = [r["message"] for r in records]
        traces = [r.get("event") == "webhook" for r in records]
    else:
        logged = [
            line.rsplit("[trace ", 1)[1][:-1]
            for line in output.splitlines()
            if " responder.trace: " in line
        ]
        messages = output.splitlines()
        traces = [" responder.trace: " in line for line in messages]
    assert len(answered) >= 250
    assert set(answered) <= set(logged)
    assert len(logged) == len(set(logged))
    assert any("reloading rules (SIGHUP)" in m for m in messages), output[-2000:]
    stopped = [n for n, m in enumerate(messages) if m.endswith("stopped")]
    assert len(stopped) == 1, output[-2000:]  # logged as the loop winds down
    # Nothing handled after the store closed: no webhook's trace line after "stopped".
    assert not any(traces[stopped[0] + 1 :]), messages[stopped[0] :]


def reference_json(record: logging.LogRecord) -> str:
    """The JSON line as ``json.dumps`` and ``datetime`` write it: what JsonFormatter must match."""
    data: dict[str, Any] = {
        "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
        "level": record.levelname,
        "logger": record.name,
        "message": record.getMessage(),
    }
    trace_id = getattr(record, "trace_id", None)
    if trace_id:
        data["trace_id"] = trace_id
    fields = getattr(record, "trace", None)
    if isinstance(fields, TraceFields):
        fields = fields.as_dict()
    if isinstance(fields, dict):
        data.update(fields)
    if record.exc_info:
        data["exception"] = logging.Formatter().formatException(record.exc_info)
    return json.dumps(data, ensure_ascii=False, default=str, separators=(",", ":"))


class Colour(enum.Enum):
    RED = "red"


LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.text(),
    st.floats(),
    st.sampled_from(["\ud83d", "a\udc00b", "\u2028", "\x00\x1f\x7f"]),
    st.sampled_from([1e-5, 1e16, 1e-4, 9999999999999998.0, -0.0, 0.1 + 0.2]),
    st.datetimes(),
    st.just(Colour.RED),
    st.just(frozenset({1})),
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner),
        st.lists(inner).map(tuple),
        st.dictionaries(st.text(), inner),
        st.dictionaries(st.integers(0, 3), inner),
    ),
    max_leaves=12,
)
CREATED = st.one_of(
    st.floats(0, 4e9),
    st.integers(0, 4_000_000_000).map(lambda s: s + 0.9999995),
    st.integers(0, 4_000_000_000).map(lambda s: s + 0.0005),
    st.integers(0, 4_000_000_000).map(lambda s: s - 1e-7),
    st.sampled_from([0.0, 1_764_322_262.9999996, 1_764_322_262.0009995, 1_764_322_262.9995]),
)


def _record(created: float, trace: Any = None, trace_id: Any = None) -> logging.LogRecord:
    record = logging.LogRecord("responder.trace", logging.INFO, __file__, 1, "m %s", ("x",), None)
    record.created = created
    record.msecs = (created - int(created)) * 1000
    if trace is not None:
        record.trace = trace
    if trace_id is not None:
        record.trace_id = trace_id
    return record


@settings(max_examples=300)
@given(st.dictionaries(st.text(), VALUES, max_size=6), CREATED, st.sampled_from([None, "ab12", ""]))
def test_json_lines_are_what_json_dumps_writes(
    fields: dict[str, Any], created: float, trace_id: str | None
) -> None:
    record = _record(created, fields, trace_id)
    assert JsonFormatter().format(record) == reference_json(record)


@given(CREATED, st.lists(st.floats(-1.0, 1.0), max_size=3))
def test_json_time_is_what_datetime_writes_across_seconds(
    created: float, steps: list[float]
) -> None:
    formatter = JsonFormatter()  # one formatter, so its cached second is used and replaced
    for when in [created, *(max(0.0, created + step) for step in steps)]:
        assert formatter.format(_record(when)) == reference_json(_record(when))


@given(
    CREATED,
    st.lists(st.floats(-1.0, 1.0), max_size=3),
    st.sampled_from(["", "abc"]),
    st.sampled_from([None, 3]),
)
def test_text_lines_are_what_logging_writes(
    created: float, steps: list[float], trace: str, worker: int | None
) -> None:
    ours, theirs = TextFormatter(worker), logging.Formatter(text_format(worker))
    for when in [created, *(max(0.0, created + step) for step in steps)]:
        record = _record(when, trace_id=trace)
        TraceFilter().filter(record)
        assert ours.format(record) == theirs.format(record)


def test_lines_with_a_traceback_are_what_logging_writes() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "responder.x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    TraceFilter().filter(record)
    assert TextFormatter().format(record) == logging.Formatter(TEXT_FORMAT).format(record)
    assert JsonFormatter().format(record) == reference_json(record)
    assert "ValueError: boom" in JsonFormatter().format(record)


@pytest.mark.parametrize(
    "value",
    [
        1e-5,
        1e16,
        -2.5e-7,
        1.5e300,
        float("nan"),
        float("-inf"),
        2**64,
        -(2**63) - 1,
        "\ud83d",
        datetime(2026, 1, 2, tzinfo=UTC),
        Colour.RED,
        {1: "x"},
        {None: "x"},
        frozenset({1}),
        b"bytes",
    ],
)
def test_values_orjson_would_write_differently_are_written_as_json_dumps_does(value: Any) -> None:
    # Each alone amid plain values, at the top and nested, so nothing else decides the path.
    for fields in ({"v": value, "s": "x"}, {"calls": [{"params": {"n": 1, "v": value}}]}):
        record = _record(1_764_322_262.25, fields, "ab12")
        assert JsonFormatter().format(record) == reference_json(record)


def test_a_workers_lines_say_which_worker_wrote_them(restore_root: None) -> None:
    text, as_json = io.StringIO(), io.StringIO()
    setup_logging("INFO", "text", text, worker=2)
    logging.getLogger("responder.test").info("hello")
    setup_logging("INFO", "json", as_json, worker=2)
    logging.getLogger("responder.test").info("hello")
    assert text.getvalue().split(" ", 2)[2] == "INFO [worker 2] responder.test: hello\n"
    line = json.loads(as_json.getvalue())
    assert (line["level"], line["worker"], line["message"]) == ("INFO", 2, "hello")


def test_a_forked_process_draws_trace_ids_of_its_own() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its ids, then out without running the parent's clean-up
        os.write(write, new_trace_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    assert child
    assert child != new_trace_id()
