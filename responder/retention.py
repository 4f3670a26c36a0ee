"""Retention: how long the store keeps what is done with, each with its number.

Nothing in the store may grow without bound: every table (SQLite) and key family (Redis) is
dropped by the hourly purge once its time is up, or is bounded by something else (one row
per contact that opted out, one per pending timer, one per slot in use). docs/settings.md
has the table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final

from responder.errors import SettingsError

DAY: Final = 86400.0


@dataclass(frozen=True, slots=True)
class Retention:
    """Seconds each kind of finished record is kept (the idempotency records have their
    own ``RESPONDER_IDEMPOTENCY_TTL``)."""

    sent: float = 7 * DAY  # sent and dry-run outbox items, from their last try
    dead: float = 30 * DAY  # dead outbox items, from their last try (``outbox retry``)
    hits: float = 31 * DAY  # rate-limit hits; never less than the longest limit of the rules
    conversations: float = 30 * DAY  # conversations not written for this long, without timer
    every: float = 3600.0  # seconds between two purges (the first at start-up)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Retention:
        values: dict[str, float] = {}
        for key, name in _KEYS.items():
            text = env.get(key, "").strip()
            if text:
                try:
                    values[name] = float(text)
                except ValueError:
                    raise SettingsError(key, f"{text!r} is not a number of seconds") from None
        retention = replace(cls(), **values)
        retention.validate()
        return retention

    def validate(self) -> None:
        for key, name in _KEYS.items():
            if name == "every":
                continue
            value = getattr(self, name)
            if not math.isfinite(value) or not 1 <= value <= 3660 * DAY:
                raise SettingsError(key, "must be between 1 second and 10 years")
        if not math.isfinite(self.every) or not 1 <= self.every <= DAY:
            raise SettingsError("RESPONDER_PURGE_EVERY", "must be between 1 second and a day")

    def keeping_hits(self, seconds: float) -> Retention:
        """This retention, keeping hits at least ``seconds`` (a rule's limit window)."""
        return self if seconds <= self.hits else replace(self, hits=seconds)


_KEYS: Final = {
    "RESPONDER_RETAIN_SENT": "sent",
    "RESPONDER_RETAIN_DEAD": "dead",
    "RESPONDER_RETAIN_HITS": "hits",
    "RESPONDER_RETAIN_CONVERSATIONS": "conversations",
    "RESPONDER_PURGE_EVERY": "every",
}


DEFAULT_RETENTION: Final = Retention()
