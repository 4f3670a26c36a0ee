"""Recording incoming webhooks to a JSON-lines file, for ``responder replay``.

One line per webhook: when it arrived, the channel and provider, the method when it is not
POST (TextIt flow webhooks may be GET), the query string and the body as received, and the
trace id. Values of secret-looking parameters (the webhook secret,
passwords, tokens, the IVR state signature) are replaced by ``***``. The file is rotated
when it would grow past its size limit: ``FILE`` -> ``FILE.1`` -> ... -> ``FILE.<keep>``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final
from urllib.parse import parse_qsl, urlencode

from responder.providers.base import decode

log = logging.getLogger("responder.recording")

REDACTED: Final = "***"
SECRET_KEYS: Final = frozenset(
    {"secret", "password", "token", "access_token", "api_key", "apikey", "sig", "signature"}
)
VERSION: Final = 1


def is_secret(name: str) -> bool:
    return name.lower() in SECRET_KEYS


def redact_pairs(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, REDACTED if is_secret(k) else v) for k, v in pairs]


def redact_body(body: bytes, content_type: str) -> bytes:
    """The body with secret-looking form fields or top-level JSON keys redacted; unchanged
    (byte for byte) when it has none."""
    ctype = content_type.split(";")[0].strip().lower()
    if not body:
        return body
    if ctype == "application/x-www-form-urlencoded":
        text = body.decode("latin-1")
        pairs = parse_qsl(text, keep_blank_values=True, encoding="latin-1")
        if not any(is_secret(k) for k, _ in pairs):
            return body
        return urlencode(redact_pairs(pairs), encoding="latin-1").encode("latin-1")
    if ctype == "application/json" or body.lstrip()[:1] == b"{":
        try:
            document = json.loads(decode(body))
        except ValueError:
            return body
        if isinstance(document, dict) and any(is_secret(str(k)) for k in document):
            cleaned = {k: REDACTED if is_secret(str(k)) else v for k, v in document.items()}
            return json.dumps(cleaned, ensure_ascii=False).encode()
    return body


@dataclass(frozen=True, slots=True)
class Record:
    """One recorded webhook."""

    time: float
    channel: str
    provider: str
    query: tuple[tuple[str, str], ...]
    body: bytes
    content_type: str = ""
    trace_id: str | None = None
    method: str = "POST"

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "v": VERSION,
            "time": round(self.time, 6),
            "channel": self.channel,
            "provider": self.provider,
            "query": [list(pair) for pair in self.query],
            "content_type": self.content_type,
        }
        if self.method != "POST":
            data["method"] = self.method
        try:
            data["body"] = self.body.decode("utf-8")
        except UnicodeDecodeError:
            data["body_b64"] = base64.b64encode(self.body).decode("ascii")
        if self.trace_id:
            data["trace_id"] = self.trace_id
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Record:
        """Parse one line; ValueError when it is not a record."""
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        try:
            if "body_b64" in data:
                body = base64.b64decode(data["body_b64"], validate=True)
            else:
                body = str(data.get("body", "")).encode("utf-8")
            return cls(
                time=float(data["time"]),
                channel=str(data["channel"]),
                provider=str(data["provider"]),
                query=tuple((str(k), str(v)) for k, v in data.get("query", [])),
                body=body,
                content_type=str(data.get("content_type", "")),
                trace_id=data.get("trace_id"),
                method=str(data.get("method", "POST")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a webhook record: {exc}") from None


class Recorder:
    """Appends records to ``path``, rotating it before it grows past ``max_bytes``."""

    def __init__(self, path: str | Path, max_bytes: int, keep: int) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = keep
        self._file: IO[str] | None = None
        self._size = 0

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self._size = self._file.tell()
        log.info("recording webhooks to %s", self.path)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def write(self, record: Record) -> None:
        """Append one record; a full disk is logged, never fails the webhook."""
        line = record.to_json() + "\n"
        size = len(line.encode("utf-8"))
        try:
            if self._file is None:
                self.open()
            elif self._size and self._size + size > self.max_bytes:
                self._rotate()
            assert self._file is not None
            self._file.write(line)
            self._file.flush()
            self._size += size
        except OSError as exc:
            log.error("cannot record webhook to %s: %s", self.path, exc.strerror or exc)

    def _rotate(self) -> None:
        self.close()
        if self.keep == 0:
            self.path.unlink(missing_ok=True)
        else:
            for n in range(self.keep - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{n}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{self.path.name}.{n + 1}"))
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self.open()


def worker_path(path: str, worker: int) -> str:
    """``webhooks.jsonl`` -> ``webhooks.worker2.jsonl``: each worker of ``serve --workers``
    records to a file of its own (one file rotated by two processes would lose records)."""
    p = Path(path)
    return str(p.with_name(f"{p.stem}.worker{worker}{p.suffix}"))


def read_records(paths: Sequence[str | Path]) -> tuple[list[Record], list[str]]:
    """Every record of ``paths`` in time order, and the problems (``file:line: why``)."""
    records: list[Record] = []
    problems: list[str] = []
    for path in paths:
        for number, line in _lines(Path(path)):
            if not line.strip():
                continue
            try:
                records.append(Record.from_json(line))
            except ValueError as exc:
                problems.append(f"{path}:{number}: {exc}")
    records.sort(key=lambda r: r.time)
    return records, problems


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8", errors="replace") as handle:
        yield from enumerate(handle, start=1)
