"""Optional speed-ups, used when installed (``pip install 'responder[speed]'``), never needed:
uvloop runs the event loop, orjson encodes JSON. Without them the standard library does both,
with the same results (but for infinities and NaN, which are not JSON: orjson writes null).
hiredis, which redis-py reads Redis replies with, is a dependency on CPython: named among the
speed-ups when it is there."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any


def _optional(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


_orjson = _optional("orjson")


def _dumps_std(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _dumps_orjson(value: Any) -> str:
    try:
        return str(_orjson.dumps(value, option=_orjson.OPT_NON_STR_KEYS).decode())
    except (TypeError, _orjson.JSONEncodeError):  # integers beyond 64 bits, and the like
        return _dumps_std(value)


# Compact JSON (no spaces, UTF-8 kept as is), as json.dumps with these options writes it.
dumps: Callable[[Any], str] = _dumps_orjson if _orjson is not None else _dumps_std


def event_loop_policy() -> Any:
    """uvloop's event loop policy when installed, else None (asyncio's own loop)."""
    uvloop = _optional("uvloop")
    return None if uvloop is None else uvloop.EventLoopPolicy()


def names() -> list[str]:
    """The speed-ups in use, for the start-up log line."""
    found = ["orjson"] if _orjson is not None else []
    return found + [name for name in ("uvloop", "hiredis") if _optional(name) is not None]
