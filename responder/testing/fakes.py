"""Fake Hoiio and TextIt APIs as real aiohttp servers on ephemeral ports.

They record every request and can be told to fail: a status code, a Hoiio error status,
a delay, a share of failures at random, a rate limit. Point ``HOIIO_API_URL`` /
``TEXTIT_API_URL`` at ``fake.url``; ``python -m responder.testing.fakes`` runs one.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

IDEMPOTENCY_HEADER = "Idempotency-Key"
# Failure modes for ``fail_ratio``: an HTTP status, or a Hoiio error status in a 200.
FAIL_MODES = ("500", "503", "429", "error_rate_limit_exceeded", "error_internal_server_error")


@dataclass(frozen=True, slots=True)
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    params: dict[str, str]
    json: Any
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)
    target: str = ""  # the request target as sent: path and query, percent-encoding kept


@dataclass
class Behaviour:
    """How the fake answers the next requests; ``fail_next`` failures come first."""

    fail_next: int = 0
    fail_status: int = 500
    hoiio_status: str = "success_ok"
    delay: float = 0.0
    retry_after: str | None = None
    fail_ratio: float = 0.0  # this share of requests fails, picked at random
    fail_modes: tuple[str, ...] = FAIL_MODES  # how each of those fails (Hoiio statuses: hoiio)
    rate_limit: int | None = None  # at most this many requests in any ``rate_period``
    rate_period: float = 1.0  # ... above that: 429 with Retry-After
    idempotent: bool = False  # a repeated Idempotency-Key gets the first answer back
    # Delays for some endpoints only, by the end of their path ("sms/send": 0.2).
    path_delays: dict[str, float] = field(default_factory=dict)


@dataclass
class FakeProvider:
    """A fake provider API; ``start()`` listens on 127.0.0.1 with an ephemeral port."""

    kind: str  # "hoiio", "textit" or "http"
    requests: list[Recorded] = field(default_factory=list)
    behaviour: Behaviour = field(default_factory=Behaviour)
    seed: int = 0
    # Per Idempotency-Key: how many requests succeeded afresh (replays not counted).
    accepted: collections.Counter[str] = field(default_factory=collections.Counter)
    replays: int = 0  # repeats of a key that had succeeded, answered from memory
    refused: int = 0  # requests answered with a failure on purpose
    in_flight: int = 0
    max_in_flight: int = 0
    # The same by the first path segment after the API base ("ivr", "sms" for Hoiio).
    in_flight_by: collections.Counter[str] = field(default_factory=collections.Counter)
    max_in_flight_by: collections.Counter[str] = field(default_factory=collections.Counter)
    accepted_at: list[float] = field(default_factory=list)  # time.time() of each success
    _answers: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    _window: collections.deque[float] = field(default_factory=collections.deque)
    _rng: random.Random = field(default_factory=random.Random)
    _runner: web.AppRunner | None = None
    port: int = 0
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        base = f"http://{self.host}:{self.port}"
        return {"hoiio": f"{base}/open", "textit": f"{base}/api/v2"}.get(self.kind, base)

    async def start(self) -> FakeProvider:
        self._rng.seed(self.seed)
        app = web.Application()
        app.router.add_get("/_fake/stats", self._stats)
        # Any path, a decoded newline in it too (``.`` would stop at one and answer 404).
        app.router.add_route("*", r"/{tail:[\s\S]*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
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

    def stats(self) -> dict[str, Any]:
        """What a test or a developer wants to know at a glance."""
        per_second = collections.Counter(math.floor(t) for t in self.accepted_at)
        return {
            "requests": len(self.requests),
            "accepted_keys": len(self.accepted),
            "accepted_twice": sorted(k for k, n in self.accepted.items() if n > 1),
            "replays": self.replays,
            "refused": self.refused,
            "max_in_flight": self.max_in_flight,
            "max_accepted_per_second": max(per_second.values(), default=0),
        }

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _handle(self, request: web.Request) -> web.Response:
        parts = request.path.strip("/").split("/")
        group = parts[1] if self.kind != "http" and len(parts) > 2 else parts[0]
        self.in_flight += 1
        self.in_flight_by[group] += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.max_in_flight_by[group] = max(self.max_in_flight_by[group], self.in_flight_by[group])
        try:
            return await self._answer(request)
        finally:
            self.in_flight -= 1
            self.in_flight_by[group] -= 1

    async def _answer(self, request: web.Request) -> web.Response:
        body = await request.read()
        params = dict(request.query)
        payload: Any = None
        if request.content_type == "application/json" and body:
            payload = json.loads(body)
        elif body:
            params.update({k: str(v) for k, v in (await request.post()).items()})
        self.requests.append(
            Recorded(
                request.method,
                request.path,
                params,
                payload,
                dict(request.headers),
                target=request.raw_path,
            )
        )
        b = self.behaviour
        delay = next((d for p, d in b.path_delays.items() if request.path.endswith(p)), b.delay)
        if delay:
            await asyncio.sleep(delay)
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if b.idempotent and key is not None and key in self._answers:
            self.replays += 1
            status, answer = self._answers[key]
            return web.json_response(answer, status=status)
        refusal = self._refusal()
        if refusal is not None:
            self.refused += 1
            return refusal
        status, answer = self._success()
        if key is not None:
            self.accepted[key] += 1
            if b.idempotent:
                self._answers[key] = (status, answer)
        self.accepted_at.append(time.time())
        return web.json_response(answer, status=status)

    def _refusal(self) -> web.Response | None:
        b = self.behaviour
        if b.rate_limit is not None:
            now = time.monotonic()
            while self._window and self._window[0] <= now - b.rate_period:
                self._window.popleft()
            if len(self._window) >= b.rate_limit:
                wait = self._window[0] + b.rate_period - now
                after = {"Retry-After": str(max(1, math.ceil(wait)))}
                return web.json_response({"detail": "rate limited"}, status=429, headers=after)
            self._window.append(now)
        headers: dict[str, str] | None
        if b.fail_next > 0:
            b.fail_next -= 1
            headers = {"Retry-After": b.retry_after} if b.retry_after else None
            return web.json_response(
                {"detail": "fake failure"}, status=b.fail_status, headers=headers
            )
        if b.fail_ratio and self._rng.random() < b.fail_ratio:
            modes = [m for m in b.fail_modes if m.isdigit() or self.kind == "hoiio"]
            mode = self._rng.choice(modes or ["500"])
            if mode.isdigit():
                headers = {"Retry-After": "0"} if mode == "429" else None
                return web.json_response(
                    {"detail": "fake failure"}, status=int(mode), headers=headers
                )
            return web.json_response({"status": mode})
        if self.kind == "hoiio" and b.hoiio_status != "success_ok":
            return web.json_response({"status": b.hoiio_status})
        return None

    def _success(self) -> tuple[int, dict[str, Any]]:
        if self.kind == "hoiio":
            return 200, {"status": "success_ok", "txn_ref": f"AA-S-{len(self.requests)}"}
        if self.kind == "textit":
            return 201, {"id": len(self.requests), "status": "queued"}
        return 200, {"ok": True}


async def serve(fake: FakeProvider) -> None:
    """Run ``fake`` until cancelled, announcing where it listens."""
    async with fake:
        print(f"fake {fake.kind} API at {fake.url} (stats: GET /_fake/stats)", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    """``python -m responder.testing.fakes hoiio --port 8001 --fail-ratio 0.3``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m responder.testing.fakes")
    parser.add_argument("kind", choices=["hoiio", "textit", "http"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="default: any free port")
    parser.add_argument("--fail-ratio", type=float, default=0.0, help="share of requests failing")
    parser.add_argument("--rate-limit", type=int, help="requests per --rate-period, then 429")
    parser.add_argument("--rate-period", type=float, default=1.0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--idempotent", action="store_true", help="honour Idempotency-Key")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    behaviour = Behaviour(
        delay=args.delay,
        fail_ratio=args.fail_ratio,
        rate_limit=args.rate_limit,
        rate_period=args.rate_period,
        idempotent=args.idempotent,
    )
    fake = FakeProvider(args.kind, behaviour=behaviour, seed=args.seed, port=args.port)
    fake.host = args.host
    try:
        asyncio.run(serve(fake))
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
