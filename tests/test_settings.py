"""Settings from the environment: authentication per channel, allow-lists, clear errors."""

from __future__ import annotations

import ipaddress

import pytest

from responder.errors import SettingsError
from responder.settings import Settings, parse_networks, secret_env_key

HOIIO_CREDS = {"HOIIO_APP_ID": "app", "HOIIO_ACCESS_TOKEN": "tok-123"}


def test_defaults_leave_every_channel_open() -> None:
    settings = Settings.from_env({})
    assert settings.webhook_secret is None
    assert settings.webhook_secrets == {}
    assert settings.allow_ips == ()
    assert settings.trusted_proxies == ()
    assert not settings.hoiio_verify_signature
    assert settings.is_open("textit")
    assert settings.is_open("hoiio")


def test_global_secret_applies_to_every_channel() -> None:
    settings = Settings.from_env({"RESPONDER_WEBHOOK_SECRET": "  s3cret  "})
    assert settings.webhook_secret == "s3cret"
    assert settings.secret_for("textit") == "s3cret"
    assert settings.secret_for("hoiio") == "s3cret"
    assert not settings.is_open("textit")


def test_channel_secret_wins_over_the_global_one() -> None:
    env = {
        "RESPONDER_CHANNELS": "sales-sg=hoiio",
        "RESPONDER_WEBHOOK_SECRET": "global",
        "RESPONDER_WEBHOOK_SECRET_TEXTIT": "for-textit",
        "RESPONDER_WEBHOOK_SECRET_SALES_SG": "for-sales",
    }
    settings = Settings.from_env(env)
    assert settings.webhook_secrets == {"textit": "for-textit", "sales-sg": "for-sales"}
    assert settings.secret_for("textit") == "for-textit"
    assert settings.secret_for("sales-sg") == "for-sales"
    assert settings.secret_for("hoiio") == "global"


def test_channel_secret_alone_closes_only_its_channel() -> None:
    settings = Settings.from_env({"RESPONDER_WEBHOOK_SECRET_HOIIO": "h"})
    assert not settings.is_open("hoiio")
    assert settings.is_open("textit")
    assert settings.secret_for("textit") is None


def test_secret_env_key_spelling() -> None:
    assert secret_env_key("textit") == "RESPONDER_WEBHOOK_SECRET_TEXTIT"
    assert secret_env_key("sales-sg") == "RESPONDER_WEBHOOK_SECRET_SALES_SG"


def test_secret_for_an_unknown_channel_is_an_error() -> None:
    with pytest.raises(SettingsError) as exc:
        Settings.from_env({"RESPONDER_WEBHOOK_SECRET_TEXIT": "typo"})
    assert exc.value.key == "RESPONDER_WEBHOOK_SECRET_TEXIT"
    assert "names no channel" in str(exc.value)
    assert "typo" not in str(exc.value)  # the value is a secret, never echoed


def test_ambiguous_channel_secret_is_an_error() -> None:
    env = {"RESPONDER_CHANNELS": "a-b=textit,a_b=hoiio", "RESPONDER_WEBHOOK_SECRET_A_B": "x"}
    with pytest.raises(SettingsError, match="ambiguous"):
        Settings.from_env(env)


def test_blank_channel_secret_is_ignored() -> None:
    settings = Settings.from_env({"RESPONDER_WEBHOOK_SECRET_TEXTIT": "   "})
    assert settings.webhook_secrets == {}
    assert settings.is_open("textit")


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("yes", True), ("off", False)])
def test_hoiio_verify_signature(raw: str, expected: bool) -> None:
    settings = Settings.from_env({**HOIIO_CREDS, "HOIIO_VERIFY_SIGNATURE": raw})
    assert settings.hoiio_verify_signature is expected
    assert settings.verifies_signature("hoiio") is expected
    assert not settings.verifies_signature("textit")  # a TextIt channel has no signature


def test_signature_applies_to_every_hoiio_channel() -> None:
    env = {**HOIIO_CREDS, "HOIIO_VERIFY_SIGNATURE": "true", "RESPONDER_CHANNELS": "ivr=hoiio"}
    settings = Settings.from_env(env)
    assert settings.verifies_signature("ivr")
    assert not settings.is_open("ivr")
    assert settings.is_open("textit")


def test_signature_needs_the_access_token() -> None:
    with pytest.raises(SettingsError) as exc:
        Settings.from_env({"HOIIO_VERIFY_SIGNATURE": "true"})
    assert exc.value.key == "HOIIO_VERIFY_SIGNATURE"
    assert "HOIIO_ACCESS_TOKEN" in str(exc.value)


def test_signature_flag_must_be_a_boolean() -> None:
    with pytest.raises(SettingsError, match="'maybe' is not true or false"):
        Settings.from_env({**HOIIO_CREDS, "HOIIO_VERIFY_SIGNATURE": "maybe"})


def test_allow_ips_and_trusted_proxies() -> None:
    env = {
        "RESPONDER_ALLOW_IPS": "203.0.113.7, 10.0.0.0/8,2001:db8::/32,",
        "RESPONDER_TRUSTED_PROXIES": "127.0.0.1",
    }
    settings = Settings.from_env(env)
    assert settings.allow_ips == (
        ipaddress.ip_network("203.0.113.7/32"),
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("2001:db8::/32"),
    )
    assert settings.trusted_proxies == (ipaddress.ip_network("127.0.0.1/32"),)
    assert not settings.is_open("textit")
    assert not settings.is_open("hoiio")


def test_network_with_host_bits_is_widened() -> None:
    assert parse_networks("K", "10.1.2.3/8") == (ipaddress.ip_network("10.0.0.0/8"),)


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "example", "1.2.3.4.5", "::g"])
def test_bad_network_names_the_setting(bad: str) -> None:
    with pytest.raises(SettingsError) as exc:
        Settings.from_env({"RESPONDER_ALLOW_IPS": f"10.0.0.1, {bad}"})
    assert exc.value.key == "RESPONDER_ALLOW_IPS"
    assert f"{bad!r} is not an IP address or network" in str(exc.value)


def test_networks_given_as_flags_use_the_env_syntax() -> None:
    settings = Settings.from_env({}, allow_ips="192.0.2.0/24", trusted_proxies="::1")
    assert settings.allow_ips == (ipaddress.ip_network("192.0.2.0/24"),)
    assert settings.trusted_proxies == (ipaddress.ip_network("::1/128"),)


def test_secrets_stay_out_of_repr() -> None:
    env = {
        **HOIIO_CREDS,
        "RESPONDER_WEBHOOK_SECRET": "global-secret-value",
        "RESPONDER_WEBHOOK_SECRET_TEXTIT": "textit-secret-value",
        "TEXTIT_API_TOKEN": "textit-token-value",
        "RESPONDER_STATE_KEY": "state-key-value-0123456789",
        "RESPONDER_CONSOLE_TOKEN": "console-token-value-0123",
    }
    text = repr(Settings.from_env(env))
    secrets = [v for k, v in env.items() if k != "HOIIO_APP_ID"]
    assert len(secrets) == 6
    for value in secrets:
        assert value not in text


def test_the_console_is_off_without_a_token_and_a_short_token_is_refused() -> None:
    assert Settings.from_env({}).console_token is None
    assert (
        Settings.from_env({"RESPONDER_CONSOLE_TOKEN": " t" * 10}).console_token
        == "t t t t t t t t t t"
    )
    with pytest.raises(SettingsError, match=r"RESPONDER_CONSOLE_TOKEN.*at least 16"):
        Settings.from_env({"RESPONDER_CONSOLE_TOKEN": "short"})


def test_workers_from_the_env_or_the_flag() -> None:
    assert Settings.from_env({}).workers == 1
    assert Settings.from_env({"RESPONDER_WORKERS": "4"}).workers == 4
    assert Settings.from_env({"RESPONDER_WORKERS": "4"}, workers=2).workers == 2


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RESPONDER_WORKERS": "0"}, "must be between 1 and 64"),
        ({"RESPONDER_WORKERS": "two"}, "'two' is not an integer"),
        (
            {"RESPONDER_WORKERS": "2", "RESPONDER_STORE": "memory://"},
            "several workers need a store they share",
        ),
    ],
)
def test_bad_workers_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match="RESPONDER_WORKERS") as caught:
        Settings.from_env(env)
    assert message in str(caught.value)
