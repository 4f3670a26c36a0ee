"""Logging set-up: text or JSON lines, every record tagged with the trace id of its webhook."""

from __future__ import annotations

import json
import logging
import random
import re
import secrets
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final, TextIO

TRACE_ID: ContextVar[str | None] = ContextVar("trace_id", default=None)
TRACE_HEADER: Final = "X-Trace-Id"
# An id a proxy already gave the request (X-Request-Id) is kept when it looks like one.
_GOOD_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
_IDS: Final = random.Random(secrets.token_bytes(16))  # noqa: S311 (ids, not secrets)
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s%(trace_suffix)s"


def new_trace_id(given: str | None = None) -> str:
    if given and _GOOD_ID.fullmatch(given):
        return given
    # Unique, not secret: a seeded generator spares a system call per webhook.
    return f"{_IDS.getrandbits(64):016x}"


def mask_contact(contact: str | None) -> str | None:
    """``+6591234567`` -> ``+65*****567``: enough to tell contacts apart in a log, not to call."""
    if not contact:
        return contact
    keep = max(0, min(4, (len(contact) - 4) // 2))
    if keep == 0:
        return "*" * len(contact)
    return contact[:keep] + "*" * (len(contact) - 2 * keep) + contact[-keep:]


class TraceFilter(logging.Filter):
    """Adds ``trace_id`` (the webhook being handled, if any) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        trace_id = getattr(record, "trace_id", None) or TRACE_ID.get()
        record.trace_id = trace_id
        record.trace_suffix = f" [trace {trace_id}]" if trace_id else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, trace_id and trace fields."""

    def format(self, record: logging.LogRecord) -> str:
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
        if isinstance(fields, dict):
            data.update(fields)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str, separators=(",", ":"))


def setup_logging(level: str, fmt: str, stream: TextIO | None = None) -> None:
    """Configure the root logger once for the process: ``fmt`` is ``text`` or ``json``."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(TraceFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # transitions logs every state change at INFO; our traces already carry each step.
    noisy = logging.getLogger("transitions")
    noisy.setLevel(logging.DEBUG if root.getEffectiveLevel() <= logging.DEBUG else logging.WARNING)
