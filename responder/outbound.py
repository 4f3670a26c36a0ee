"""Outbound calls: what the engine asks to be sent, as plain data the outbox can store."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from responder.conversations import Conversation, TimerWrite
from responder.frozen import quick_init
from responder.speed import dumps


@dataclass(frozen=True, slots=True)
class OutboundCall:
    """One API call to make: a provider endpoint and its parameters.

    ``key`` is stable for a given webhook and action, so a retried webhook can never
    enqueue the same call twice.
    """

    key: str
    provider: str  # "hoiio", "textit" or "http"
    endpoint: str  # "sms/send", "ivr/end/hangup", "broadcasts.json" or a URL for "http"
    params: dict[str, Any]
    rule: str = ""
    contact: str | None = None
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    not_before: float | None = None  # quiet hours: hold the call until then

    def to_json(self) -> str:
        return dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> OutboundCall:
        data = json.loads(text)
        return cls(**data)


@quick_init
@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The exact HTTP answer given to a webhook, replayed byte for byte on a retry."""

    status: int
    content_type: str
    body: bytes


@quick_init
@dataclass(frozen=True, slots=True)
class HitLimit:
    """A limit the commit must still respect: at most ``most`` hits of ``key`` since ``since``,
    this commit's own hits included. Checked when writing, so a limit decided on a count that
    another process has raised meanwhile fails the commit (ConflictError) instead of passing."""

    key: str
    since: float
    most: int


@quick_init
@dataclass(frozen=True, slots=True)
class Commit:
    """Everything one webhook changes, written together or not at all.

    ``conversation`` is written only if the stored one still has ``expected_version``
    (0: there is none yet), and ``hits`` only while every one of ``limits`` holds; otherwise
    the commit fails with ConflictError.

    With ``hold_until``, each IVR step (``is_ivr_step``) that is first in its lane once
    written is written claimed until then, for the committing process to send at once
    instead of waiting for a claim; ``Committed.held`` names them.
    """

    key: str
    response: StoredResponse
    calls: tuple[OutboundCall, ...] = ()
    hits: tuple[str, ...] = ()
    now: float = 0.0
    ttl: float = 7 * 86400.0
    conversation: Conversation | None = None
    expected_version: int = 0
    timer: TimerWrite | None = None
    opt_outs: tuple[tuple[str, bool], ...] = ()  # (contact key, opted out) to record
    limits: tuple[HitLimit, ...] = ()
    hold_until: float = 0.0

    def over_limit(self, count_hits: Callable[[str, float], int]) -> HitLimit | None:
        """The first limit this commit would break, given a count of the hits stored."""
        for limit in self.limits:
            if count_hits(limit.key, limit.since) + self.hits.count(limit.key) > limit.most:
                return limit
        return None


class Committed(NamedTuple):
    """What ``Store.commit`` did: the stored response, whether this commit wrote it, and the
    keys of the IVR steps it wrote already claimed for the committer (``Commit.hold_until``)."""

    response: StoredResponse
    fresh: bool
    held: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One outbox row as read back: the call, its attempts so far and where it stands."""

    call: OutboundCall
    attempts: int
    status: str  # pending, sent, dry_run, dead
    last_error: str | None = None
    created: float = 0.0  # when its webhook committed
    enqueued: float = 0.0  # when it last entered the queue (its commit, or an operator's retry)


def is_ivr_step(call: OutboundCall) -> bool:
    """An IVR block for a live call: a caller is waiting for it."""
    return call.provider == "hoiio" and call.endpoint.startswith(("ivr/middle/", "ivr/end/"))


def lane_of(call: OutboundCall) -> str:
    """Calls of one lane go out one after the other, in the order they were committed."""
    return call.contact or call.key


def holdable(commit: Commit) -> dict[str, str]:
    """The calls ``commit`` may write claimed (``Commit.hold_until``), key -> lane: each IVR
    step due at once that comes first in its lane among the commit's calls. A store holds
    one only when its lane has nothing pending already, so the lane keeps its order."""
    if not commit.hold_until:
        return {}
    found: dict[str, str] = {}
    lanes: set[str] = set()
    for call in commit.calls:
        lane = lane_of(call)
        if lane not in lanes and is_ivr_step(call) and (call.not_before or 0.0) <= commit.now:
            found[call.key] = lane
        lanes.add(lane)
    return found
