"""The floor for ``benchmarks/http_bench.py``: the durable work of a templated reply, by hand.

    python benchmarks/http_floor.py PORT DB

An aiohttp app that does, for a TextIt ``mo_sms``, only what no correct auto-responder can
skip: read the form, look the message id up in an idempotency table, render the benchmark's
reply template in a sandboxed jinja2 environment, encode the JSON answer and commit the
idempotency record (SQLite in WAL mode, ``synchronous=NORMAL``, commits of concurrent
requests grouped into one transaction on a writer thread) before answering. No rules, no
compliance, no trace line, no metrics. What it reaches against bare aiohttp is the ceiling
for any implementation of that answer on this stack; responder's distance to it is what its
features and layers cost.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from http_setup import serve, webhook_app
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

TEMPLATE = (
    "Hello {{ contact_name or contact }}, you wrote {{ text|length }} characters: {{ text|upper }}"
)
TTL = 86400.0
MAX_BATCH = 128


class Store:
    """An idempotency table with a reader on the loop and a writer thread grouping commits."""

    def __init__(self, path: str) -> None:
        writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("PRAGMA synchronous=NORMAL")
        writer.execute(
            "CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, body BLOB NOT NULL,"
            " expires REAL NOT NULL)"
        )
        self.writer = writer
        self.reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.thread = ThreadPoolExecutor(max_workers=1)
        self.waiting: list[tuple[str, bytes, asyncio.Future[None]]] = []
        self.draining = False

    def get(self, key: str) -> bytes | None:
        rows = self.reader.execute("SELECT body FROM idempotency WHERE key = ?", (key,)).fetchall()
        return bytes(rows[0][0]) if rows else None

    async def put(self, key: str, body: bytes) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append((key, body, future))
        if not self.draining:
            self.draining = True
            asyncio.get_running_loop().create_task(self.drain())
        await future

    async def drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.waiting:
                batch = self.waiting[:MAX_BATCH]
                del self.waiting[:MAX_BATCH]
                rows = [(key, body, time.time() + TTL) for key, body, _ in batch]
                await loop.run_in_executor(self.thread, self.write, rows)
                for _, _, future in batch:
                    future.set_result(None)
        finally:
            self.draining = False

    def write(self, rows: list[tuple[str, bytes, float]]) -> None:
        self.writer.execute("BEGIN IMMEDIATE")
        self.writer.executemany("INSERT OR IGNORE INTO idempotency VALUES (?, ?, ?)", rows)
        self.writer.execute("COMMIT")


def floor_app(path: str) -> Any:
    store = Store(path)
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    template = env.from_string(TEMPLATE)
    dumps: Any = json.dumps
    try:  # the same JSON encoder responder uses when the [speed] extra is installed
        import orjson

        dumps = orjson.dumps
    except ImportError:
        pass

    async def handle(request: web.Request) -> web.Response:
        form = dict(parse_qsl((await request.read()).decode(), keep_blank_values=True))
        key = f"textit:{form['sms']}"
        stored = store.get(key)
        if stored is None:
            text = template.render(
                contact_name=form.get("contact_name"), contact=form["phone"], text=form["text"]
            )
            stored = dumps({"phone": [form["phone"]], "text": text})
            if isinstance(stored, str):
                stored = stored.encode()
            await store.put(key, stored)
        return web.Response(body=stored, content_type="application/json")

    return webhook_app(handle)


if __name__ == "__main__":
    serve(floor_app(sys.argv[2]), int(sys.argv[1]))
