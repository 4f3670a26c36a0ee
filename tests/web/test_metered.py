"""MeteredSender against real fake-provider servers: every attempt counted by outcome and timed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from responder.errors import DeliveryError
from responder.outbound import OutboundCall
from responder.settings import Settings
from responder.testing.fakes import FakeProvider
from responder.web.metered import MeteredSender
from responder.web.metrics import Metrics

ALICE = "+6591234567"
SMS = OutboundCall("e#0", "hoiio", "sms/send", {"dest": ALICE, "msg": "hi"}, contact=ALICE)
HOOK = OutboundCall("e#1", "http", "http://127.0.0.1:9/hook?token=x", {}, method="PUT")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def count(metrics: Metrics, provider: str, action: str, outcome: str) -> float:
    return float(metrics.calls.value(provider, action, outcome))


def timed(metrics: Metrics, provider: str) -> float:
    for metric in metrics.outbound_seconds.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count") and sample.labels["provider"] == provider:
                return float(sample.value)
    return 0.0


async def test_outcomes_are_counted_and_attempts_timed(
    session: aiohttp.ClientSession, fake_hoiio: FakeProvider
) -> None:
    metrics = Metrics()
    settings = Settings.from_env(
        {}, hoiio_app_id="a", hoiio_access_token="t-secret", hoiio_api_url=fake_hoiio.url
    )
    sender = MeteredSender(settings, session, metrics)
    assert await sender.send(SMS) == "sent"
    fake_hoiio.behaviour.fail_next = 1
    with pytest.raises(DeliveryError):
        await sender.send(SMS)
    fake_hoiio.behaviour.hoiio_status = "error_invalid_session"
    with pytest.raises(DeliveryError):
        await sender.send(SMS)
    with pytest.raises(DeliveryError):
        await sender.send(HOOK)  # nothing listens on port 9: a transport error, retried
    assert count(metrics, "hoiio", "sms/send", "sent") == 1
    assert count(metrics, "hoiio", "sms/send", "retry") == 1
    assert count(metrics, "hoiio", "sms/send", "failed") == 1
    assert count(metrics, "http", "PUT", "retry") == 1
    assert timed(metrics, "hoiio") == 3
    assert timed(metrics, "http") == 1


async def test_dry_runs_are_counted_but_not_timed(session: aiohttp.ClientSession) -> None:
    metrics = Metrics()
    sender = MeteredSender(Settings.from_env({}), session, metrics)
    assert await sender.send(SMS) == "dry_run"
    assert count(metrics, "hoiio", "sms/send", "dry_run") == 1
    assert timed(metrics, "hoiio") == 0
