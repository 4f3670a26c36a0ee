"""Real stores that record the reads made on them, to count a webhook's trips to the store."""

from __future__ import annotations

from typing import Any

from responder.stores.memory import MemoryStore
from responder.stores.sqlite import SqliteStore


class CountingReads:
    """Mixed in ahead of a store class: lists every read call, by method name, in ``reads``."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.reads: list[str] = []

    async def get_response(self, key: str) -> Any:
        self.reads.append("get_response")
        return await super().get_response(key)  # type: ignore[misc]

    async def snapshot(self, wanted: Any) -> Any:
        self.reads.append("snapshot")
        return await super().snapshot(wanted)  # type: ignore[misc]

    async def get_conversation(self, key: str) -> Any:
        self.reads.append("get_conversation")
        return await super().get_conversation(key)  # type: ignore[misc]

    async def opted_out(self, keys: list[str]) -> Any:
        self.reads.append("opted_out")
        return await super().opted_out(keys)  # type: ignore[misc]

    async def count_hits(self, key: str, since: float) -> Any:
        self.reads.append("count_hits")
        return await super().count_hits(key, since)  # type: ignore[misc]


class CountingMemoryStore(CountingReads, MemoryStore):
    """A MemoryStore that counts its reads."""


class CountingSqliteStore(CountingReads, SqliteStore):
    """A SqliteStore that counts its reads."""
