"""Prometheus metrics: one registry per application, counted on the hot path, read at scrape.

Label values come from the rules and the providers (channels, kinds, rule and state names,
provider actions), never from what a contact sends, so the number of series stays bounded.
"""

from __future__ import annotations

import hmac
import os
from typing import Final

from aiohttp import web
from prometheus_client import CollectorRegistry, disable_created_metrics, values
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from responder.outbound import OutboundCall
from responder.stores.base import Store
from responder.web.children import MAX_CACHED_CHILDREN, CachedGauge
from responder.web.tallies import LocalCounter, LocalHistogram

# Webhook handling is mostly sub-millisecond; outbound calls take up to their timeout (60 s).
WEBHOOK_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
OUTBOUND_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def action(call: OutboundCall) -> str:
    """The ``action`` label of a call: the provider endpoint, or the method for ``http``
    (a webhook URL may carry tokens and has no bounded set of values)."""
    return call.method if call.provider == "http" else call.endpoint


def count_across_processes(directory: str) -> None:
    """Make every metric value made from now on in this process live in ``directory``, where
    a scrape sums it with the other processes' (prometheus_client's multiprocess mode).

    Process-wide, as the library's mode is (it reads PROMETHEUS_MULTIPROC_DIR once, when it is
    imported): each worker of ``serve --workers`` calls this before its application is built.
    """
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    # The library asks for the process id at every increment, to notice a fork; a worker
    # forks no more, and the system call would cost more than the increment.
    pid = os.getpid()
    values.ValueClass = values.MultiProcessValue(lambda: pid)  # type: ignore[no-untyped-call]


class Metrics:
    """Every metric responder exports, registered in a registry of its own.

    ``shared``: the directory of ``count_across_processes``; a scrape then reads the sums of
    every worker's values there (counters of a worker that has died included) instead of this
    process's own. The registration order is the order of the exposition.
    """

    def __init__(self, shared: str | None = None) -> None:
        # prometheus_client adds a `<name>_created` gauge beside every counter and histogram
        # by default: twice the series, none of them in docs/operating.md's table. The switch is
        # the library's own and process-wide; responder wants it off wherever it runs.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        r = self.registry = CollectorRegistry()
        # Counters and histograms are counted in plain numbers and read at scrape; across
        # processes every update goes to prometheus_client's file of this process instead.
        across = shared is not None
        self.events = LocalCounter(
            "responder_events",
            "Webhook events received, by provider, channel and event kind",
            ["provider", "channel", "kind"],
            registry=r,
            shared=across,
        )
        self.duplicates = LocalCounter(
            "responder_duplicate_deliveries",
            "Retried webhook deliveries answered with the stored response",
            ["channel"],
            registry=r,
            shared=across,
        )
        self.rule_matches = LocalCounter(
            "responder_rule_matches",
            "Rules that fired, by rule name",
            ["rule"],
            registry=r,
            shared=across,
        )
        self.rule_limited = LocalCounter(
            "responder_rule_limited",
            "Rules that matched but had reached their per-contact limit",
            ["rule"],
            registry=r,
            shared=across,
        )
        self.blank_texts = LocalCounter(
            "responder_blank_texts",
            "Replies and SMS not sent because their text rendered blank, by rule "
            "(dialogue:NAME for a dialogue's)",
            ["rule"],
            registry=r,
            shared=across,
        )
        self.transitions = LocalCounter(
            "responder_dialogue_transitions",
            "Dialogue steps, by dialogue, the state left and the state entered",
            ["dialogue", "source", "dest"],
            registry=r,
            shared=across,
        )
        self.replies = LocalCounter(
            "responder_replies",
            "Webhooks answered with a reply body, by channel",
            ["channel"],
            registry=r,
            shared=across,
        )
        self.queued = LocalCounter(
            "responder_outbound_queued",
            "Outbound calls put in the outbox, by provider and action",
            ["provider", "action"],
            registry=r,
            shared=across,
        )
        self.calls = LocalCounter(
            "responder_outbound_calls",
            "Outbound call attempts by provider, action and outcome (sent, dry_run, retry, failed)",
            ["provider", "action", "outcome"],
            registry=r,
            shared=across,
        )
        self.webhook_seconds = LocalHistogram(
            "responder_webhook_seconds",
            "Time to answer a webhook, by channel",
            ["channel"],
            buckets=WEBHOOK_BUCKETS,
            registry=r,
            shared=across,
        )
        self.outbound_seconds = LocalHistogram(
            "responder_outbound_seconds",
            "Duration of outbound call attempts, by provider",
            ["provider"],
            buckets=OUTBOUND_BUCKETS,
            registry=r,
            shared=across,
        )
        self.reloads = LocalCounter(
            "responder_reloads",
            "Rule reloads, by result (ok, failed)",
            ["result"],
            registry=r,
            shared=across,
        )
        self.refused = LocalCounter(
            "responder_refused_requests",
            "Webhook requests refused, by reason",
            ["reason"],
            registry=r,
            shared=across,
        )
        self.errors = LocalCounter(
            "responder_rule_errors",
            "Rule or dialogue errors (conditions or templates failing at run time)",
            registry=r,
            shared=across,
        )
        # Every worker sets the same gauges: across workers, the value set last is the one.
        self.rules = CachedGauge(
            "responder_rules",
            "Rules and dialogues being served",
            ["what"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.outbox = CachedGauge(
            "responder_outbox_items",
            "Outbox items by status (pending, dead); read from the store at scrape time",
            ["status"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.timers = CachedGauge(
            "responder_timers_pending",
            "Dialogue timers waiting to fire",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.conversations = CachedGauge(
            "responder_conversations_active",
            "Dialogue conversations in progress",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.round_trips = CachedGauge(
            "responder_store_round_trips",
            "Requests made to a networked store (Redis) since start, by who made them "
            "(webhook, delivery, timer, other); read at scrape time",
            ["caller"],
            registry=r,
        )
        for result in ("ok", "failed"):
            self.reloads.labels(result)
        self._scraped = r
        if shared is not None:
            self._scraped = CollectorRegistry()
            MultiProcessCollector(self._scraped, shared)  # type: ignore[no-untyped-call]

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
        for caller, count in store.round_trips.items():
            self.round_trips.labels(caller).set(count)

    def exposition(self) -> bytes:
        return generate_latest(self._scraped)


def authorized(request: web.Request, token: str | None) -> bool:
    """Whether the request may read /metrics (``Authorization: Bearer <token>`` when set)."""
    if not token:
        return True
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode(), token.encode()
    )


__all__ = ["CONTENT_TYPE_LATEST", "MAX_CACHED_CHILDREN", "Metrics", "action", "authorized"]
