"""Delivery settings from the environment: every number has a default, a check and a unit."""

from __future__ import annotations

import pytest

from responder.errors import SettingsError
from responder.outbound import OutboundCall
from responder.policy import DeliverySettings, Rate, parse_rate
from responder.settings import Settings


def call(provider: str, endpoint: str) -> OutboundCall:
    return OutboundCall("k#0", provider, endpoint, {})


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("5/s", Rate(5, 1.0)),
        ("60/m", Rate(60, 60.0)),
        ("2500/h", Rate(2500, 3600.0)),
        ("10000/d", Rate(10000, 86400.0)),
        ("100/10s", Rate(100, 10.0)),
        (" 3/S ", Rate(3, 1.0)),
        ("off", None),
    ],
)
def test_rates_parse(text: str, rate: Rate | None) -> None:
    assert parse_rate("X", text) == rate


@pytest.mark.parametrize("text", ["5", "5/x", "0/s", "-1/s", "a/s", "5/0s", "5/-1s", "5/infs"])
def test_bad_rates_name_the_setting(text: str) -> None:
    with pytest.raises(SettingsError, match=r"^TEXTIT_RATE_LIMIT: .* is not a rate"):
        parse_rate("TEXTIT_RATE_LIMIT", text)


def test_rates_print_as_written() -> None:
    assert [str(Rate(5, 1.0)), str(Rate(2500, 3600.0)), str(Rate(7, 10.0))] == [
        "5/s",
        "2500/h",
        "7/10s",
    ]


def test_defaults() -> None:
    d = Settings.from_env({}).delivery
    assert d == DeliverySettings()
    assert (d.max_attempts, d.max_age, d.retry_base, d.retry_max) == (12, 86400.0, 2.0, 600.0)
    assert (d.lease, d.concurrency, d.shutdown_grace) == (120.0, 16, 10.0)
    assert (d.max_concurrent(call("hoiio", "ivr/start/dial")), d.rate("hoiio")) == (8, None)
    # Hoiio limits the calls going at once: what starts a call waits for a place ...
    for starts in ("ivr/end/transfer", "voice/call", "fax/send"):
        assert d.max_concurrent(call("hoiio", starts)) == 8
    # ... an SMS and a block for a call already connected start none.
    for starts_none in ("sms/send", "ivr/middle/play", "ivr/middle/gather", "ivr/end/hangup"):
        assert d.max_concurrent(call("hoiio", starts_none)) is None
    assert (d.max_concurrent(call("textit", "broadcasts.json")), d.rate("textit")) == (
        8,
        Rate(2500, 3600.0),
    )
    assert (d.max_concurrent(call("http", "https://example.com/h")), d.rate("http")) == (
        None,
        None,
    )


def test_the_environment_sets_every_number() -> None:
    env = {
        "RESPONDER_DELIVERY_MAX_ATTEMPTS": "20",
        "RESPONDER_DELIVERY_MAX_AGE": "3600",
        "RESPONDER_RETRY_BASE": "0.5",
        "RESPONDER_RETRY_MAX": "30",
        "RESPONDER_DELIVERY_LEASE": "10",
        "RESPONDER_DELIVERY_CONCURRENCY": "4",
        "RESPONDER_SHUTDOWN_GRACE": "2.5",
        "HOIIO_MAX_CONCURRENT": "3",
        "HOIIO_RATE_LIMIT": "5/s",
        "TEXTIT_MAX_CONCURRENT": "2",
        "TEXTIT_RATE_LIMIT": "off",
    }
    d = Settings.from_env(env).delivery
    assert d == DeliverySettings(20, 3600.0, 0.5, 30.0, 10.0, 4, 2.5, 3, Rate(5, 1.0), 2, None)
    assert d.call_timeout(10.0) == 5.0  # half the lease
    assert d.call_timeout(2.0) == 2.0


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("RESPONDER_DELIVERY_MAX_ATTEMPTS", "0", "must be 1 to 100"),
        ("RESPONDER_DELIVERY_MAX_ATTEMPTS", "many", "is not a number"),
        ("RESPONDER_DELIVERY_MAX_AGE", "0", "must be more than 0"),
        ("RESPONDER_DELIVERY_MAX_AGE", "nan", "is not a number"),
        ("RESPONDER_RETRY_BASE", "700", "must be 0 < it <= max"),
        ("RESPONDER_DELIVERY_LEASE", "0.5", "must be 1 to 3600 seconds"),
        ("RESPONDER_DELIVERY_CONCURRENCY", "0", "must be 1 to 1000"),
        ("RESPONDER_SHUTDOWN_GRACE", "-1", "must be 0 to 3600 seconds"),
        ("HOIIO_MAX_CONCURRENT", "0", "must be 1 to 1000"),
        ("HOIIO_RATE_LIMIT", "fast", "is not a rate"),
    ],
)
def test_bad_values_name_the_setting(key: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=f"^{key}: .*{message}"):
        Settings.from_env({key: value})


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 9, 12, 80])
def test_backoff_doubles_with_jitter_up_to_the_cap(attempt: int) -> None:
    d = DeliverySettings()
    ceiling = min(600.0, 2.0 * 2 ** (attempt - 1))
    delays = [d.backoff(attempt) for _ in range(200)]
    assert all(ceiling / 2 <= x <= ceiling for x in delays)
    assert max(delays) - min(delays) > ceiling / 10  # jitter spreads the retries out


def test_retry_after_is_a_floor() -> None:
    d = DeliverySettings()
    assert d.backoff(1, retry_after=30.0) == 30.0
    assert 1.0 <= d.backoff(1, retry_after=0.0) <= 2.0
