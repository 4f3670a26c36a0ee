"""GET /metrics over real HTTP: what one webhook counts, refused requests, outbound outcomes,
store gauges, dialogue transitions, and the optional bearer token."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from responder.testing.fakes import FakeProvider
from responder.web.metrics import MAX_CACHED_CHILDREN, Metrics
from responder.web.tallies import LocalCounter, LocalHistogram
from tests.conftest import REPO, wait_for, write_rules

RULES = """
rules:
  - name: hours
    on: sms.received
    when: {text: {keyword: hours}}
    reply: {text: "We are open 9-18."}
    sms: {text: "someone asked", to: "+6500000000", via: hoiio}
  - name: capped
    on: sms.received
    when: {text: {keyword: capped}}
    limit: {per_contact: 1, every: 1h}
    reply: {text: "once"}
"""


EVENT = {"provider": "textit", "channel": "textit", "kind": "sms.received"}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def value(all_: dict[Any, float], name: str, **labels: str) -> float:
    return all_.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(client: Any, **headers: str) -> dict[Any, float]:
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    return samples(await resp.text())


async def sms(client: Any, text: str, sms_id: str, contact: str = "+6591234567") -> int:
    data = {"event": "mo_sms", "sms": sms_id, "phone": contact, "text": text}
    resp = await client.post("/webhooks/textit", data=data)
    return int(resp.status)


async def test_one_webhook_counts_event_match_reply_call_and_latency(
    make_client: Any, tmp_path: Path, fake_hoiio: FakeProvider
) -> None:
    client = await make_client(write_rules(tmp_path / "r", RULES))
    assert await sms(client, "hours?", "1") == 200
    assert await sms(client, "hours?", "1") == 200  # TextIt retrying: a duplicate
    await wait_for(lambda: len(fake_hoiio.calls("/sms/send")) == 1)
    m = await scrape(client)
    event = {"provider": "textit", "channel": "textit", "kind": "sms.received"}
    assert value(m, "responder_events_total", **event) == 2
    assert value(m, "responder_duplicate_deliveries_total", channel="textit") == 1
    assert value(m, "responder_rule_matches_total", rule="hours") == 1
    assert value(m, "responder_replies_total", channel="textit") == 1
    assert value(m, "responder_outbound_queued_total", provider="hoiio", action="sms/send") == 1
    assert value(m, "responder_webhook_seconds_count", channel="textit") == 2
    assert value(m, "responder_rules", what="rules") == 2
    assert value(m, "responder_reloads_total", result="ok") == 0

    async def sent() -> bool:
        s = await scrape(client)
        return (
            value(
                s,
                "responder_outbound_calls_total",
                provider="hoiio",
                action="sms/send",
                outcome="sent",
            )
            == 1
        )

    for _ in range(200):
        if await sent():
            break
        await asyncio.sleep(0.05)
    m = await scrape(client)
    assert value(m, "responder_outbound_seconds_count", provider="hoiio") == 1
    assert value(m, "responder_outbox_items", status="pending") == 0


async def test_limited_rules_and_failed_calls_are_counted(
    make_client: Any, tmp_path: Path, fake_hoiio: FakeProvider
) -> None:
    fake_hoiio.behaviour.hoiio_status = "error_invalid_session"
    client = await make_client(write_rules(tmp_path / "r", RULES))
    assert await sms(client, "capped", "1") == 200
    assert await sms(client, "capped", "2") == 200
    assert await sms(client, "hours", "3") == 200
    await wait_for(lambda: len(fake_hoiio.calls("/sms/send")) == 1)
    labels = {"provider": "hoiio", "action": "sms/send", "outcome": "failed"}
    for _ in range(200):
        m = await scrape(client)
        if value(m, "responder_outbox_items", status="dead") == 1:
            break
        await asyncio.sleep(0.05)
    assert value(m, "responder_rule_matches_total", rule="capped") == 1
    assert value(m, "responder_rule_limited_total", rule="capped") == 1
    assert value(m, "responder_outbound_calls_total", **labels) == 1
    assert value(m, "responder_outbox_items", status="dead") == 1


async def test_refused_requests_are_counted_by_reason(make_client: Any, tmp_path: Path) -> None:
    client = await make_client(
        write_rules(tmp_path / "r", RULES), webhook_secret="s3cret-value", max_body_bytes=2048
    )
    assert (await client.post("/webhooks/textit", data={"event": "mo_sms"})).status == 401
    resp = await client.post("/webhooks/textit?secret=wrong", data={"event": "mo_sms"})
    assert resp.status == 403
    resp = await client.post(
        "/webhooks/textit?secret=s3cret-value",
        data=b"[1]",
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 400
    assert (await client.post("/webhooks/nope?secret=s3cret-value")).status == 404
    resp = await client.post("/webhooks/textit?secret=s3cret-value", data=b"x" * 4096)
    assert resp.status == 413
    m = await scrape(client)
    for reason in ("unauthorized", "forbidden", "bad_request", "unknown_channel", "too_large"):
        assert value(m, "responder_refused_requests_total", reason=reason) == 1, reason


async def test_dialogue_steps_count_transitions_and_gauges_read_the_store(
    make_client: Any,
) -> None:
    client = await make_client(REPO / "examples" / "sms-survey")
    assert await sms(client, "JOIN", "1", "+6591110000") == 200
    assert await sms(client, "5", "2", "+6591110000") == 200
    m = await scrape(client)
    transitions = {
        (dict(labels)["source"], dict(labels)["dest"]): v
        for (name, labels), v in m.items()
        if name == "responder_dialogue_transitions_total"
    }
    assert transitions[("(start)", "rating")] == 1
    assert sum(transitions.values()) == 2
    assert value(m, "responder_conversations_active") == 1
    assert value(m, "responder_timers_pending") == 1


async def test_a_token_protects_metrics_and_they_can_be_turned_off(
    make_client: Any, tmp_path: Path
) -> None:
    rules = write_rules(tmp_path / "r", RULES)
    client = await make_client(rules, metrics_token="metrics-token-1")
    resp = await client.get("/metrics")
    assert resp.status == 401
    assert "metrics-token-1" not in await resp.text()
    assert (await client.get("/metrics", headers={"Authorization": "Bearer nope"})).status == 401
    await scrape(client, Authorization="Bearer metrics-token-1")
    off = await make_client(rules, metrics=False)
    assert (await off.get("/metrics")).status == 404


def test_every_metric_is_registered_in_the_app_registry_not_a_global_one() -> None:
    a, b = Metrics(), Metrics()
    a.events.labels("textit", "textit", "sms.received").inc()
    assert a.events.value("textit", "textit", "sms.received") == 1
    assert b.events.value("textit", "textit", "sms.received") == 0
    assert b"responder_events_total{" not in b.exposition()
    names = {f.name for f in a.registry.collect()}
    assert {
        "responder_events",
        "responder_rule_matches",
        "responder_dialogue_transitions",
        "responder_replies",
        "responder_outbound_queued",
        "responder_outbound_calls",
        "responder_outbox_items",
        "responder_timers_pending",
        "responder_webhook_seconds",
        "responder_outbound_seconds",
        "responder_reloads",
        "responder_refused_requests",
    } <= names


def test_no_created_series_beside_the_documented_ones() -> None:
    metrics = Metrics()
    metrics.events.labels("textit", "textit", "sms.received").inc()
    metrics.webhook_seconds.labels("textit").observe(0.01)
    text = metrics.exposition().decode()
    assert "responder_events_total" in text
    assert "_created" not in text


def _plain_twins(metrics: Metrics, registry: CollectorRegistry) -> dict[str, Any]:
    """Every metric of ``metrics`` built again as a plain prometheus_client one."""
    twins: dict[str, Any] = {}
    for name, metric in vars(metrics).items():
        if isinstance(metric, LocalCounter):
            twins[name] = Counter(
                metric.name, metric.documentation, metric.labelnames, registry=registry
            )
        elif isinstance(metric, LocalHistogram):
            twins[name] = Histogram(
                metric.name,
                metric.documentation,
                metric.labelnames,
                buckets=metric.bounds,
                registry=registry,
            )
        elif isinstance(metric, MetricWrapperBase):
            assert isinstance(metric, Gauge)
            twins[name] = Gauge(
                metric._original_name, metric._documentation, metric._labelnames, registry=registry
            )
    for result in ("ok", "failed"):
        twins["reloads"].labels(result)
    return twins


def test_counted_locally_the_exposition_is_prometheus_clients_own() -> None:
    """Counters and histograms counted in plain numbers give, at scrape, the very bytes
    prometheus_client's own metrics give for the same updates."""
    metrics, registry = Metrics(), CollectorRegistry()
    twins = _plain_twins(metrics, registry)
    assert len(twins) == 19
    assert metrics.exposition() == generate_latest(registry)  # nothing counted yet
    for round_ in range(3):
        for kind in ("sms.received", "call.missed"):
            for name, values in (
                ("events", ("textit", "main", kind)),
                ("transitions", ("survey", "(start)", kind)),
                ("webhook_seconds", (kind,)),
                ("outbound_seconds", (kind,)),
                ("rules", (kind,)),
            ):
                metric = getattr(metrics, name)
                child = metric.labels(*values)
                assert child is metric.labels(*values)
                if isinstance(metric, MetricWrapperBase):
                    # The very child prometheus_client's own labels() hands out.
                    assert child is MetricWrapperBase.labels(metric, *values)
                for each in (child, twins[name].labels(*values)):
                    if name.endswith("_seconds"):
                        # On a bound, between two, past the last one.
                        each.observe((0.001, 0.003, 7.5, 90.0)[round_] * (round_ + 1))
                    elif name == "rules":
                        each.set(round_)
                    else:
                        each.inc(round_ + 0.5)
    for each in (metrics.errors, twins["errors"]):
        each.inc(2)
    for each in (metrics.reloads, twins["reloads"]):
        each.labels("ok").inc()
    assert metrics.exposition() == generate_latest(registry)
    text = metrics.exposition()
    assert b'responder_webhook_seconds_bucket{channel="call.missed",le="0.01"} 2.0' in text
    assert b'responder_events_total{channel="main",kind="sms.received",provider="textit"} 4.5' in (
        text
    )


def test_local_series_are_keyed_as_prometheus_client_keys_them() -> None:
    registry, twin = CollectorRegistry(), CollectorRegistry()
    counter = LocalCounter("things", "Things", ["size"], registry=registry)
    plain = Counter("things", "Things", ["size"], registry=twin)
    for each in (counter, plain):
        each.labels(1).inc()  # type: ignore[arg-type]
        each.labels("1").inc()
    assert counter.value("1") == 2
    assert generate_latest(registry) == generate_latest(twin)
    with pytest.raises(ValueError, match="label count"):
        counter.labels("1", "2")
    with pytest.raises(ValueError, match="non-negative"):
        counter.labels("1").inc(-1)


def test_across_processes_every_workers_counts_are_summed(tmp_path: Path) -> None:
    """With ``serve --workers`` each worker counts into its own file, and a scrape of any of
    them reads the sums of all (a worker that has exited included)."""
    shared = tmp_path / "metrics"
    shared.mkdir()
    worker = textwrap.dedent(
        f"""
        import sys
        from responder.web.metrics import Metrics, count_across_processes
        count_across_processes({str(shared)!r})
        metrics = Metrics(shared={str(shared)!r})
        n = int(sys.argv[1])
        for _ in range(n):
            metrics.events.labels("textit", "textit", "sms.received").inc()
            metrics.webhook_seconds.labels("textit").observe(0.002 * n)
        metrics.errors.inc(n)
        metrics.reloads.labels("ok").inc()
        assert metrics.events.value("textit", "textit", "sms.received") == n
        if len(sys.argv) > 2:
            sys.stdout.write(metrics.exposition().decode())
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for n in (2, 3):
        subprocess.run([sys.executable, "-c", worker, str(n)], check=True, env=env)
    done = subprocess.run(
        [sys.executable, "-c", worker, "4", "scrape"],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    m = samples(done.stdout)
    assert value(m, "responder_events_total", **EVENT) == 9
    assert value(m, "responder_rule_errors_total") == 9
    assert value(m, "responder_reloads_total", result="ok") == 3
    assert value(m, "responder_webhook_seconds_count", channel="textit") == 9
    assert value(m, "responder_webhook_seconds_sum", channel="textit") == pytest.approx(
        2 * 0.004 + 3 * 0.006 + 4 * 0.008
    )
    assert value(m, "responder_webhook_seconds_bucket", channel="textit", le="0.005") == 2


def test_cached_children_stay_right_past_the_bound_and_after_remove() -> None:
    metrics = Metrics()
    trips = metrics.round_trips
    for n in range(MAX_CACHED_CHILDREN + 5):
        trips.labels(f"caller-{n}").inc()
    extra = trips.labels(f"caller-{MAX_CACHED_CHILDREN + 1}")
    assert extra is trips.labels(f"caller-{MAX_CACHED_CHILDREN + 1}")
    assert extra._value.get() == 1
    trips.remove("caller-0")
    fresh = trips.labels("caller-0")
    assert fresh._value.get() == 0
    trips.clear()
    assert trips.labels("caller-1")._value.get() == 0
    assert "caller-2" not in metrics.exposition().decode()
