"""Delivery settings: retries, give-up points, limits and shutdown, each with its number."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from responder.errors import SettingsError
from responder.outbound import OutboundCall

# IVR blocks are for a caller on the line: after this long the call is over, so the block
# is dead instead of being retried on into somebody else's afternoon.
IVR_MAX_AGE: Final = 120.0
# More IVR steps than this in flight (sent at once after their commit): each webhook's
# answer waits for its own step to go out, for this many seconds at most.
IVR_PACE_AFTER: Final = 8
IVR_PACE_WAIT: Final = 2.0
# Added to every rate window, so jitter on the way to the provider cannot make it count one
# request more than the limit in its own window.
RATE_MARGIN: Final = 0.1

_UNITS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``count`` requests in any window of ``per`` seconds."""

    count: int
    per: float

    def __str__(self) -> str:
        for unit, seconds in _UNITS.items():
            if self.per == seconds:
                return f"{self.count}/{unit}"
        return f"{self.count}/{self.per:g}s"


def parse_rate(key: str, text: str) -> Rate | None:
    """``5/s``, ``60/m``, ``2500/h``, ``100/10s`` -> Rate; ``off`` -> None."""
    value = text.strip().lower()
    if value in ("off", "none", "0"):
        return None
    count, sep, unit = value.partition("/")
    try:
        n = int(count)
        if unit in _UNITS:
            per = _UNITS[unit]
        elif unit.endswith("s"):
            per = float(unit[:-1])
        else:
            raise ValueError(unit)
    except ValueError:
        raise SettingsError(key, f"{text!r} is not a rate like 5/s, 60/m or 2500/h") from None
    if not sep or n < 1 or not math.isfinite(per) or per <= 0:
        raise SettingsError(key, f"{text!r} is not a rate like 5/s, 60/m or 2500/h")
    return Rate(n, per)


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """How the outbox worker sends: every number here is documented in docs/delivery.md."""

    max_attempts: int = 12  # tries before an item is dead
    max_age: float = 86400.0  # seconds after its commit an item may still be sent
    retry_base: float = 2.0  # first retry waits 1-2 s, doubling from there
    retry_max: float = 600.0  # no wait between two tries is longer (Retry-After aside)
    lease: float = 120.0  # a claimed item is offered again after this if its sender died
    concurrency: int = 16  # calls in flight per process (the in-memory queue bound)
    shutdown_grace: float = 10.0  # seconds in-flight calls get to finish on shutdown
    hoiio_max_concurrent: int = 8  # Hoiio requests starting a call in flight, all processes
    hoiio_rate: Rate | None = None
    textit_max_concurrent: int = 8
    textit_rate: Rate | None = field(default_factory=lambda: Rate(2500, 3600.0))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DeliverySettings:
        values: dict[str, object] = {}
        for key, name in (
            ("RESPONDER_DELIVERY_MAX_ATTEMPTS", "max_attempts"),
            ("RESPONDER_DELIVERY_CONCURRENCY", "concurrency"),
            ("HOIIO_MAX_CONCURRENT", "hoiio_max_concurrent"),
            ("TEXTIT_MAX_CONCURRENT", "textit_max_concurrent"),
        ):
            if env.get(key, "").strip():
                values[name] = _number(key, env[key], int)
        for key, name in (
            ("RESPONDER_DELIVERY_MAX_AGE", "max_age"),
            ("RESPONDER_RETRY_BASE", "retry_base"),
            ("RESPONDER_RETRY_MAX", "retry_max"),
            ("RESPONDER_DELIVERY_LEASE", "lease"),
            ("RESPONDER_SHUTDOWN_GRACE", "shutdown_grace"),
        ):
            if env.get(key, "").strip():
                values[name] = _number(key, env[key], float)
        for key, name in (("HOIIO_RATE_LIMIT", "hoiio_rate"), ("TEXTIT_RATE_LIMIT", "textit_rate")):
            if env.get(key, "").strip():
                values[name] = parse_rate(key, env[key])
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        checks: tuple[tuple[str, bool, str], ...] = (
            ("RESPONDER_DELIVERY_MAX_ATTEMPTS", 1 <= self.max_attempts <= 100, "1 to 100"),
            ("RESPONDER_DELIVERY_CONCURRENCY", 1 <= self.concurrency <= 1000, "1 to 1000"),
            ("HOIIO_MAX_CONCURRENT", 1 <= self.hoiio_max_concurrent <= 1000, "1 to 1000"),
            ("TEXTIT_MAX_CONCURRENT", 1 <= self.textit_max_concurrent <= 1000, "1 to 1000"),
            ("RESPONDER_DELIVERY_MAX_AGE", self.max_age > 0, "more than 0"),
            ("RESPONDER_RETRY_BASE", 0 < self.retry_base <= self.retry_max, "0 < it <= max"),
            ("RESPONDER_RETRY_MAX", self.retry_max <= 86400, "at most 86400"),
            ("RESPONDER_DELIVERY_LEASE", 1 <= self.lease <= 3600, "1 to 3600 seconds"),
            ("RESPONDER_SHUTDOWN_GRACE", 0 <= self.shutdown_grace <= 3600, "0 to 3600 seconds"),
        )
        for key, ok, expected in checks:
            if not ok:
                raise SettingsError(key, f"must be {expected}")

    def max_concurrent(self, call: OutboundCall) -> int | None:
        """How many requests like ``call`` may be in flight at once; None: no limit.

        Hoiio limits the calls an account has going at once, so the requests that start one
        count (dialling out, a transfer, voice calls, faxes); an SMS and a block for a call
        already connected (``ivr/middle/*``, a hang-up) start none and do not wait for a
        place. TextIt counts every request.
        """
        if call.provider == "hoiio":
            endpoint = call.endpoint
            if endpoint.startswith(("sms/", "ivr/middle/")) or endpoint == "ivr/end/hangup":
                return None
            return self.hoiio_max_concurrent
        if call.provider == "textit":
            return self.textit_max_concurrent
        return None

    def rate(self, provider: str) -> Rate | None:
        return {"hoiio": self.hoiio_rate, "textit": self.textit_rate}.get(provider)

    def call_timeout(self, requested: float) -> float:
        """A call's timeout, capped at half the lease so the lease outlives the call."""
        return min(requested, self.lease / 2)

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Wait before try ``attempt + 1``: exponential with jitter (between half and all of
        ``retry_base * 2**(attempt-1)``, at most ``retry_max``); ``Retry-After`` is a floor."""
        ceiling = min(self.retry_max, self.retry_base * 2.0 ** max(0, min(attempt - 1, 60)))
        delay = ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto
        return max(delay, retry_after or 0.0)


def _number(key: str, text: str, kind: type[int] | type[float]) -> float:
    try:
        value: float = kind(text.strip())
    except ValueError:
        raise SettingsError(key, f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise SettingsError(key, f"{text!r} is not a number")
    return value
