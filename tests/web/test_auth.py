"""Authentication decisions as pure functions: addresses, secrets, Hoiio signatures."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

import pytest

from responder.errors import Unauthorized
from responder.settings import Settings, parse_networks
from responder.web.auth import (
    body_signature,
    check_address,
    check_secret,
    check_signature,
    client_address,
    open_channels,
    parse_address,
)

TOKEN = "hoiio-token-value"
PROXIES = parse_networks("K", "10.0.0.0/8, fd00::/8")


def settings(**env: str) -> Settings:
    return Settings.from_env(env)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("203.0.113.7:4711", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("unknown", None),
        ("", None),
        ("999.1.1.1", None),
        ("[2001:db8::1", None),
    ],
)
def test_parse_address(text: str, expected: str | None) -> None:
    address = parse_address(text)
    assert (str(address) if address else None) == expected


def test_peer_is_the_client_without_trusted_proxies() -> None:
    assert str(client_address("198.51.100.1", ["203.0.113.7"], ())) == "198.51.100.1"


def test_forwarded_for_is_believed_only_from_a_trusted_proxy() -> None:
    assert str(client_address("10.1.1.1", ["203.0.113.7"], PROXIES)) == "203.0.113.7"
    assert str(client_address("198.51.100.1", ["203.0.113.7"], PROXIES)) == "198.51.100.1"


def test_client_written_hops_never_count() -> None:
    # The client sent "X-Forwarded-For: 10.0.0.5, 192.0.2.1"; our proxy appended its peer.
    hops = ["10.0.0.5, 192.0.2.1, 203.0.113.7"]
    assert str(client_address("10.1.1.1", hops, PROXIES)) == "203.0.113.7"


def test_chains_of_trusted_proxies_are_walked() -> None:
    hops = ["203.0.113.7, 10.2.2.2", "10.3.3.3"]  # two headers, read in order
    assert str(client_address("10.1.1.1", hops, PROXIES)) == "203.0.113.7"
    assert str(client_address("fd00::1", ["2001:db8::7, fd00::2"], PROXIES)) == "2001:db8::7"


def test_all_trusted_hops_give_the_left_most() -> None:
    assert str(client_address("10.1.1.1", ["10.9.9.9, 10.2.2.2"], PROXIES)) == "10.9.9.9"
    assert str(client_address("10.1.1.1", [], PROXIES)) == "10.1.1.1"


def test_unreadable_hop_is_no_address() -> None:
    assert client_address("10.1.1.1", ["203.0.113.7, garbage"], PROXIES) is None
    assert client_address(None, [], PROXIES) is None


def test_check_address() -> None:
    open_ = settings()
    check_address(open_, None)  # no allow-list: anything goes
    closed = settings(RESPONDER_ALLOW_IPS="203.0.113.0/24, 2001:db8::/32")
    check_address(closed, ipaddress.ip_address("203.0.113.9"))
    check_address(closed, ipaddress.ip_address("2001:db8::9"))
    for address in (ipaddress.ip_address("198.51.100.1"), None):
        with pytest.raises(Unauthorized) as exc:
            check_address(closed, address)
        assert exc.value.status == 403


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ({}, 401),
        ({"secret": ""}, 401),
        ({"password": ""}, 401),
        ({"secret": "nope"}, 403),
        ({"secret": "s3cret-é"}, None),
        ({"password": "s3cret-é"}, None),
        ({"secret": "nope", "password": "s3cret-é"}, 403),  # secret= is read first
        ({"secret": "", "password": "s3cret-é"}, None),
        ({"secret": "s3cret-é "}, 403),
        ({"secret": "S3CRET-É"}, 403),
    ],
)
def test_check_secret(query: dict[str, str], status: int | None) -> None:
    s = settings(RESPONDER_WEBHOOK_SECRET="s3cret-é")
    if status is None:
        check_secret(s, "textit", query)
        return
    with pytest.raises(Unauthorized) as exc:
        check_secret(s, "textit", query)
    assert exc.value.status == status
    assert "s3cret" not in exc.value.reason


def test_channel_secret_replaces_the_global_one() -> None:
    s = settings(RESPONDER_WEBHOOK_SECRET="global", RESPONDER_WEBHOOK_SECRET_HOIIO="own")
    check_secret(s, "hoiio", {"secret": "own"})
    check_secret(s, "textit", {"secret": "global"})
    with pytest.raises(Unauthorized):
        check_secret(s, "hoiio", {"secret": "global"})
    check_secret(settings(), "textit", {})  # no secret anywhere: open


def test_body_signature_is_hex_hmac_sha256_of_the_raw_body() -> None:
    body = b"session=S-1&txn_ref=AA-1"
    expected = hmac.new(TOKEN.encode(), body, hashlib.sha256).hexdigest()
    assert body_signature(TOKEN, body) == expected
    assert len(expected) == 64


@pytest.mark.parametrize(
    ("header", "status"),
    [
        (None, 401),
        ("", 401),
        ("0" * 64, 403),
        ("not hex at all", 403),
        ("é" * 64, 403),
        ("SIGNED", None),
        ("SIGNED-UPPER", None),
        ("  SIGNED  ", None),
    ],
)
def test_check_signature(header: str | None, status: int | None) -> None:
    s = settings(HOIIO_ACCESS_TOKEN=TOKEN, HOIIO_VERIFY_SIGNATURE="true")
    body = b"msg=hello&from=%2B6591234567"
    good = body_signature(TOKEN, body)
    headers = {}
    if header is not None:
        headers["X-Hoiio-Signature"] = header.replace("SIGNED-UPPER", good.upper()).replace(
            "SIGNED", good
        )
    if status is None:
        check_signature(s, "hoiio", headers, body)
        return
    with pytest.raises(Unauthorized) as exc:
        check_signature(s, "hoiio", headers, body)
    assert exc.value.status == status
    assert good not in exc.value.reason


def test_signature_is_of_this_body_only() -> None:
    s = settings(HOIIO_ACCESS_TOKEN=TOKEN, HOIIO_VERIFY_SIGNATURE="true")
    signed = body_signature(TOKEN, b"msg=hello")
    with pytest.raises(Unauthorized):
        check_signature(s, "hoiio", {"X-Hoiio-Signature": signed}, b"msg=hello!")
    with pytest.raises(Unauthorized):  # another key
        check_signature(
            s, "hoiio", {"X-Hoiio-Signature": body_signature("other", b"msg=hello")}, b"msg=hello"
        )


def test_signature_not_checked_when_disabled_or_on_textit() -> None:
    check_signature(settings(HOIIO_ACCESS_TOKEN=TOKEN), "hoiio", {}, b"x")
    on = settings(HOIIO_ACCESS_TOKEN=TOKEN, HOIIO_VERIFY_SIGNATURE="true")
    check_signature(on, "textit", {}, b"x")


def test_open_channels_name_the_settings_that_close_them() -> None:
    warnings = open_channels(settings(RESPONDER_CHANNELS="sales-sg=textit"))
    assert len(warnings) == 3
    by_channel = {w.split("'")[1]: w for w in warnings}
    assert set(by_channel) == {"hoiio", "sales-sg", "textit"}
    assert "RESPONDER_WEBHOOK_SECRET_SALES_SG" in by_channel["sales-sg"]
    assert "HOIIO_VERIFY_SIGNATURE=true" in by_channel["hoiio"]
    assert "HOIIO_VERIFY_SIGNATURE" not in by_channel["textit"]
    assert by_channel["sales-sg"] == (
        "channel 'sales-sg' is unauthenticated: anyone who can reach /webhooks/sales-sg can "
        "make responder act; to close it set one of RESPONDER_WEBHOOK_SECRET_SALES_SG, "
        "RESPONDER_WEBHOOK_SECRET, RESPONDER_ALLOW_IPS"
    )


def test_closed_channels_give_no_warning() -> None:
    assert open_channels(settings(RESPONDER_WEBHOOK_SECRET="x")) == []
    assert open_channels(settings(RESPONDER_ALLOW_IPS="10.0.0.0/8")) == []
    partly = settings(
        HOIIO_ACCESS_TOKEN=TOKEN, HOIIO_VERIFY_SIGNATURE="1", RESPONDER_WEBHOOK_SECRET_TEXTIT="t"
    )
    assert open_channels(partly) == []
