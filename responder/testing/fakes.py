"""Fake Hoiio and TextIt APIs as real aiohttp servers on ephemeral ports.

They record every request and can be told to fail: a status code, a Hoiio error status,
a delay. Point ``HOIIO_API_URL`` / ``TEXTIT_API_URL`` at ``fake.url``.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(frozen=True, slots=True)
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    params: dict[str, str]
    json: Any
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)


@dataclass
class Behaviour:
    """How the fake answers the next requests; ``fail_next`` failures come first."""

    fail_next: int = 0
    fail_status: int = 500
    hoiio_status: str = "success_ok"
    delay: float = 0.0
    retry_after: str | None = None


@dataclass
class FakeProvider:
    """A fake provider API; ``start()`` listens on 127.0.0.1 with an ephemeral port."""

    kind: str  # "hoiio", "textit" or "http"
    requests: list[Recorded] = field(default_factory=list)
    behaviour: Behaviour = field(default_factory=Behaviour)
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        base = f"http://127.0.0.1:{self.port}"
        return {"hoiio": f"{base}/open", "textit": f"{base}/api/v2"}.get(self.kind, base)

    async def start(self) -> FakeProvider:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        addresses = self._runner.addresses
        self.port = int(addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeProvider:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def calls(self, path_suffix: str = "") -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith(path_suffix)]

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        params = dict(request.query)
        payload: Any = None
        if request.content_type == "application/json" and body:
            payload = json.loads(body)
        elif body:
            params.update({k: str(v) for k, v in (await request.post()).items()})
        self.requests.append(
            Recorded(request.method, request.path, params, payload, dict(request.headers))
        )
        b = self.behaviour
        if b.delay:
            await asyncio.sleep(b.delay)
        if b.fail_next > 0:
            b.fail_next -= 1
            headers = {"Retry-After": b.retry_after} if b.retry_after else None
            return web.json_response(
                {"detail": "fake failure"}, status=b.fail_status, headers=headers
            )
        if self.kind == "hoiio":
            answer: dict[str, Any] = {"status": b.hoiio_status}
            if b.hoiio_status == "success_ok":
                answer["txn_ref"] = f"AA-S-{len(self.requests)}"
            return web.json_response(answer)
        if self.kind == "textit":
            return web.json_response({"id": len(self.requests), "status": "queued"}, status=201)
        return web.json_response({"ok": True})
