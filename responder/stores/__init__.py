"""Storage backends behind one Store protocol, chosen by URL."""

from __future__ import annotations

from responder.errors import StoreError
from responder.stores.base import Store
from responder.stores.memory import MemoryStore
from responder.stores.redis import RedisStore
from responder.stores.redis_url import check_url
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
        check_url(url)
        return RedisStore(url)
    raise StoreError(
        f"unsupported store URL {without_password(url)!r} "
        "(use memory://, sqlite:///path.db or redis://host:port/db)"
    )


def without_password(url: str) -> str:
    """``url`` with any ``user:password@`` taken out, fit for messages and logs."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    return f"{scheme}{sep}{netloc.rpartition('@')[2]}{slash}{path}"


__all__ = ["Store", "open_store", "without_password"]
