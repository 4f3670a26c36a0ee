"""A Sender that counts and times every outbound call attempt for /metrics."""

from __future__ import annotations

import time

import aiohttp

from responder.clients.sender import Sender
from responder.errors import DeliveryError
from responder.outbound import OutboundCall
from responder.settings import Settings
from responder.web.metrics import Metrics, action


class MeteredSender(Sender):
    """Outcomes: ``sent``, ``dry_run``, ``retry`` (will be tried again if attempts remain)
    and ``failed`` (a permanent failure)."""

    def __init__(
        self, settings: Settings, session: aiohttp.ClientSession, metrics: Metrics
    ) -> None:
        super().__init__(settings, session)
        self.metrics = metrics

    async def send(self, call: OutboundCall, within: float | None = None) -> str:
        started = time.perf_counter()
        outcome = "failed"
        try:
            outcome = await super().send(call, within)
        except DeliveryError as exc:
            outcome = "retry" if exc.retry else "failed"
            raise
        finally:
            if outcome != "dry_run":
                self.metrics.outbound_seconds.labels(call.provider).observe(
                    time.perf_counter() - started
                )
            self.metrics.calls.labels(call.provider, action(call), outcome).inc()
        return outcome
