"""Malformed HTTP refused by aiohttp's parser is logged as a one-line WARNING, not a crash.

aiohttp answers a request it cannot parse (bad header bytes, a body it cannot decompress,
an over-long line) with 400 and logs it at ERROR with a traceback and the offending raw
bytes, which may hold the webhook secret or the metrics token. A body that does not
decompress as its Content-Encoding says is answered 400 by the server, and aiohttp logs
another ERROR when it drains the rest of it. Anyone can send such requests, so each one
becomes one WARNING line naming the problem, like every other refusal.
"""

from __future__ import annotations

import logging
import re
from typing import Final

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import RequestPayloadError

SERVER_LOGGER: Final = "aiohttp.server"
_SECRET_VALUE = re.compile(r"(secret|password|sig)=[^&\s'\"\\]*", re.IGNORECASE)
MAX_REASON: Final = 120
_WORDS: Final = re.compile(r"[A-Za-z0-9 ,-]*")


def reason(exc: HttpProcessingError) -> str:
    """What the parser refused, in its own words up to the first character that is not a
    letter, digit, space or comma: the raw bytes that follow (``Got more than 8190 bytes
    when reading: b'Bearer ...'``, ``Invalid header token:\\n  b'...'``) are never logged,
    since they may hold a secret however it is spelled (``pass%77ord=``, a padded
    ``Authorization`` header)."""
    lines = (exc.message or "").strip().splitlines()
    words = _WORDS.match(lines[0].strip() if lines else "")
    text = words.group().strip() if words else ""
    return _SECRET_VALUE.sub(r"\1=***", text or type(exc).__name__)[:MAX_REASON]


class MalformedRequests(logging.Filter):
    """Turns aiohttp's ERROR for a 4xx parser refusal into a WARNING without traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, RequestPayloadError) and isinstance(exc.__cause__, HttpProcessingError):
            exc = exc.__cause__
        if isinstance(exc, HttpProcessingError) and 400 <= (exc.code or 400) < 500:
            record.msg = "malformed HTTP request refused (%d): %s"
            record.args = (exc.code or 400, reason(exc))
            record.levelno = logging.WARNING
            record.levelname = logging.getLevelName(logging.WARNING)
            record.exc_info = None
            record.exc_text = None
        return True
