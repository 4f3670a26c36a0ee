"""Logging set-up: text or JSON lines, every record tagged with the trace id of its webhook."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import secrets
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final, TextIO

from responder.printable import one_line
from responder.speed import dumps, names
from responder.web.linebuffer import LineBuffer

TRACE_ID: ContextVar[str | None] = ContextVar("trace_id", default=None)
TRACE_HEADER: Final = "X-Trace-Id"
# An id a proxy already gave the request (X-Request-Id) is kept when it looks like one.
_GOOD_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")
_IDS: Final = random.Random(secrets.token_bytes(16))  # noqa: S311 (ids, not secrets)
# A forked worker (``serve --workers``) would otherwise draw the same ids as its siblings.
os.register_at_fork(after_in_child=lambda: _IDS.seed(secrets.token_bytes(16)))
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s%(trace_suffix)s"
# Several processes writing one stream: a write of at most this many bytes to a pipe is never
# interleaved with another process's (POSIX PIPE_BUF), so no line is cut by another's.
ATOMIC_WRITE: Final = 4096
_ORJSON: Final = "orjson" in names()
_ENCODE: Final = json.JSONEncoder(ensure_ascii=False, default=str, separators=(",", ":")).encode
_ID_TYPES: Final = (str, type(None))


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


class TraceFields:
    """Trace fields a record carries (``extra={"trace": ...}``), built only when a JSON line
    is written; a plain dict does as well."""

    __slots__ = ()

    def as_dict(self) -> dict[str, Any]:
        raise NotImplementedError


class TraceFilter(logging.Filter):
    """Adds ``trace_id`` (the webhook being handled, if any) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        trace_id = getattr(record, "trace_id", None) or TRACE_ID.get()
        record.trace_id = trace_id
        record.trace_suffix = f" [trace {trace_id}]" if trace_id else ""
        return True


def text_format(worker: int | None = None) -> str:
    """``TEXT_FORMAT``, with ``[worker N]`` after the level for a worker of ``serve --workers``."""
    if worker is None:
        return TEXT_FORMAT
    return TEXT_FORMAT.replace("%(levelname)s ", f"%(levelname)s [worker {worker}] ", 1)


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT`` lines; the date and time are formatted once a second, not per line."""

    def __init__(self, worker: int | None = None) -> None:
        super().__init__(text_format(worker))
        self._second: tuple[int, str] = (-1, "")
        self._worker = "" if worker is None else f" [worker {worker}]"

    def usesTime(self) -> bool:
        return True  # TEXT_FORMAT starts with the time

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None or record.created < 0:
            return super().formatTime(record, datefmt)
        second = int(record.created)  # what time.localtime() takes of it
        cached, stamp = self._second
        if second != cached:
            stamp = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = (second, stamp)
        msec = self.default_msec_format
        return msec % (stamp, record.msecs) if msec else stamp

    def formatMessage(self, record: logging.LogRecord) -> str:
        # Webhook fields (ids, numbers, texts) reach messages: a CR or LF among them must not
        # start a forged line. A traceback, added after this, keeps its lines.
        # ``text_format(worker) % record.__dict__``, written out: ``%`` with a mapping reads
        # the format again for every line.
        line = (
            f"{record.asctime} {record.levelname}{self._worker} {record.name}: "
            f"{record.message}{record.trace_suffix}"  # type: ignore[attr-defined]
        )
        return line if line.isprintable() else one_line(line)


def utc_millis(created: float) -> str:
    """``datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")``."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, trace_id and trace fields, and
    ``worker`` (its number) from a worker of ``serve --workers``."""

    def __init__(self, worker: int | None = None) -> None:
        super().__init__()
        self._second: tuple[float, str] = (-1.0, "")
        self._worker = worker

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self._worker is not None:
            data["worker"] = self._worker
        trace_id = getattr(record, "trace_id", None)
        if trace_id:
            data["trace_id"] = trace_id
        fields = getattr(record, "trace", None)
        if isinstance(fields, TraceFields):
            fields = fields.as_dict()
        if isinstance(fields, dict):
            data.update(fields)
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        # All but the trace id and the trace fields are strings already.
        if _ORJSON and type(trace_id) in _ID_TYPES and (fields is None or plain(fields)):
            return dumps(data)  # the same text, written faster
        return _ENCODE(data)

    def _time(self, created: float) -> str:
        """``utc_millis(created)``, with the date and time formatted once a second."""
        if created < 0:
            return utc_millis(created)
        # datetime rounds a timestamp to the microsecond half to even, carrying into the second.
        fraction, second = math.modf(created)
        micros = round(fraction * 1e6)
        if micros >= 1_000_000:
            second, micros = second + 1.0, micros - 1_000_000
        cached, stamp = self._second
        if second != cached:
            stamp = datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds")[:-6]
            self._second = (second, stamp)
        return f"{stamp}.{micros // 1000:03d}+00:00"


def plain(value: Any) -> bool:
    """Whether ``value`` holds nothing but what orjson writes exactly as ``json.dumps`` does:
    strings, integers, booleans, None, floats written without an exponent, lists, tuples and
    dicts with string keys."""
    kind = type(value)
    if kind is str:
        return True
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or (type(item) is not str and not plain(item)):
                return False
        return True
    if kind is list or kind is tuple:
        return all(type(item) is str or plain(item) for item in value)
    if kind is float:
        return bool(value == 0.0 or 1e-4 <= abs(value) < 1e16)
    return kind is int or kind is bool or value is None


def setup_logging(
    level: str, fmt: str, stream: TextIO | None = None, *, worker: int | None = None
) -> None:
    """Configure the root logger once for the process: ``fmt`` is ``text`` or ``json``.

    Lines are written in batches (see ``LineBuffer``): once per event-loop iteration, at once
    outside a loop and for warnings and errors, and at exit. A worker of ``serve --workers``
    (``worker``: its number) tags its lines with it and shares the stream with the others: its
    batches are written ``ATOMIC_WRITE`` bytes at most at a time.
    """
    # No line shows the thread or the process a record came from: logging's own switches
    # spare looking them up for every record.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = LineBuffer(stream or sys.stderr, max_write=None if worker is None else ATOMIC_WRITE)
    handler.addFilter(TraceFilter())
    handler.setFormatter(JsonFormatter(worker) if fmt == "json" else TextFormatter(worker))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if isinstance(old, LineBuffer):
            old.close()  # its lines go out first
    root.addHandler(handler)
    root.setLevel(level)
    # transitions logs every state change at INFO; our traces already carry each step.
    noisy = logging.getLogger("transitions")
    noisy.setLevel(logging.DEBUG if root.getEffectiveLevel() <= logging.DEBUG else logging.WARNING)
