"""Storage backends behind one Store protocol, chosen by URL."""

from __future__ import annotations

from responder.errors import StoreError
from responder.stores.base import Store
from responder.stores.memory import MemoryStore
from responder.stores.sqlite import SqliteStore


def open_store(url: str) -> Store:
    """``memory://`` or ``sqlite:///path/to.db`` (relative) / ``sqlite:////abs/path.db``."""
    if url.startswith("memory://"):
        return MemoryStore()
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if not path:
            raise StoreError(f"store URL {url!r} names no database file")
        return SqliteStore(path)
    raise StoreError(f"unsupported store URL {url!r} (use memory:// or sqlite:///path.db)")


__all__ = ["Store", "open_store"]
