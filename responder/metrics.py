"""Prometheus metrics: one registry per application, counted on the hot path, read at scrape.

Label values come from the rules and the providers (channels, kinds, rule and state names,
provider actions), never from what a contact sends, so the number of series stays bounded.
"""

from __future__ import annotations

import hmac
from typing import Final

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from responder.outbound import OutboundCall
from responder.stores.base import Store

# Webhook handling is mostly sub-millisecond; outbound calls take up to their timeout (60 s).
WEBHOOK_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
OUTBOUND_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def action(call: OutboundCall) -> str:
    """The ``action`` label of a call: the provider endpoint, or the method for ``http``
    (a webhook URL may carry tokens and has no bounded set of values)."""
    return call.method if call.provider == "http" else call.endpoint


class Metrics:
    """Every metric responder exports, registered in a registry of its own."""

    def __init__(self) -> None:
        # prometheus_client adds a `<name>_created` gauge beside every counter and histogram
        # by default: twice the series, none of them in the README's table. The switch is
        # the library's own and process-wide; responder wants it off wherever it runs.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        r = self.registry = CollectorRegistry()
        self.events = Counter(
            "responder_events",
            "Webhook events received, by provider, channel and event kind",
            ["provider", "channel", "kind"],
            registry=r,
        )
        self.duplicates = Counter(
            "responder_duplicate_deliveries",
            "Retried webhook deliveries answered with the stored response",
            ["channel"],
            registry=r,
        )
        self.rule_matches = Counter(
            "responder_rule_matches", "Rules that fired, by rule name", ["rule"], registry=r
        )
        self.rule_limited = Counter(
            "responder_rule_limited",
            "Rules that matched but had reached their per-contact limit",
            ["rule"],
            registry=r,
        )
        self.transitions = Counter(
            "responder_dialogue_transitions",
            "Dialogue steps, by dialogue, the state left and the state entered",
            ["dialogue", "source", "dest"],
            registry=r,
        )
        self.replies = Counter(
            "responder_replies",
            "Webhooks answered with a reply body, by channel",
            ["channel"],
            registry=r,
        )
        self.queued = Counter(
            "responder_outbound_queued",
            "Outbound calls put in the outbox, by provider and action",
            ["provider", "action"],
            registry=r,
        )
        self.calls = Counter(
            "responder_outbound_calls",
            "Outbound call attempts by provider, action and outcome (sent, dry_run, retry, failed)",
            ["provider", "action", "outcome"],
            registry=r,
        )
        self.webhook_seconds = Histogram(
            "responder_webhook_seconds",
            "Time to answer a webhook, by channel",
            ["channel"],
            buckets=WEBHOOK_BUCKETS,
            registry=r,
        )
        self.outbound_seconds = Histogram(
            "responder_outbound_seconds",
            "Duration of outbound call attempts, by provider",
            ["provider"],
            buckets=OUTBOUND_BUCKETS,
            registry=r,
        )
        self.reloads = Counter(
            "responder_reloads", "Rule reloads, by result (ok, failed)", ["result"], registry=r
        )
        self.refused = Counter(
            "responder_refused_requests",
            "Webhook requests refused, by reason",
            ["reason"],
            registry=r,
        )
        self.errors = Counter(
            "responder_rule_errors",
            "Rule or dialogue errors (conditions or templates failing at run time)",
            registry=r,
        )
        self.rules = Gauge(
            "responder_rules", "Rules and dialogues being served", ["what"], registry=r
        )
        self.outbox = Gauge(
            "responder_outbox_items",
            "Outbox items by status (pending, dead); read from the store at scrape time",
            ["status"],
            registry=r,
        )
        self.timers = Gauge(
            "responder_timers_pending", "Dialogue timers waiting to fire", registry=r
        )
        self.conversations = Gauge(
            "responder_conversations_active", "Dialogue conversations in progress", registry=r
        )
        for result in ("ok", "failed"):
            self.reloads.labels(result)

    def rules_loaded(self, rules: int, dialogues: int) -> None:
        self.rules.labels("rules").set(rules)
        self.rules.labels("dialogues").set(dialogues)

    async def collect_store(self, store: Store) -> None:
        """Refresh the gauges that live in the store."""
        depth = await store.depth()
        self.outbox.labels("pending").set(depth.outbox_pending)
        self.outbox.labels("dead").set(depth.outbox_dead)
        self.timers.set(depth.timers)
        self.conversations.set(depth.conversations)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def authorized(request: web.Request, token: str | None) -> bool:
    """Whether the request may read /metrics (``Authorization: Bearer <token>`` when set)."""
    if not token:
        return True
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode(), token.encode()
    )


__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "action", "authorized"]
