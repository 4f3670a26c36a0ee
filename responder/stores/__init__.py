"""Storage backends behind one Store protocol, chosen by URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from responder.errors import StoreError
from responder.stores.base import Store
from responder.stores.memory import MemoryStore
from responder.stores.redis import RedisStore
from responder.stores.sqlite import SqliteStore


def open_store(url: str) -> Store:
    """``memory://``, ``sqlite:///path/to.db`` (relative) / ``sqlite:////abs/path.db``, or
    ``redis://host:port/db`` / ``rediss://...`` (``?prefix=name`` keeps stores apart)."""
    if url.startswith("memory://"):
        return MemoryStore()
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if not path:
            raise StoreError(f"store URL {url!r} names no database file")
        return SqliteStore(path)
    if url.startswith(("redis://", "rediss://")):
        _check_port(url)
        return RedisStore(url)
    raise StoreError(
        f"unsupported store URL {url!r} (use memory://, sqlite:///path.db or redis://host:port/db)"
    )


def _check_port(url: str) -> None:
    """A malformed port is named plainly (the URL may hold a password: it is not repeated)."""
    parts = urlsplit(url)
    try:
        _ = parts.port
    except ValueError:
        netloc = parts.netloc.rpartition("@")[2]
        raise StoreError(
            f"store URL for Redis has a malformed host:port {netloc!r} (write redis://host:6379/0)"
        ) from None


__all__ = ["Store", "open_store"]
