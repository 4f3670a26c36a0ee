"""Sender against real fake-provider servers: what goes on the wire and how failures classify."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest

from responder.clients.sender import Sender, form_body, loggable_endpoint, redact
from responder.errors import DeliveryError
from responder.outbound import OutboundCall
from responder.settings import Settings
from responder.testing.fakes import FakeProvider

HOIIO_TOKEN = "token-secret-1"
TEXTIT_TOKEN = "textit-secret-1"
ALICE = "+6591234567"


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def settings_for(hoiio: FakeProvider | None, textit: FakeProvider | None, **kw: Any) -> Settings:
    values: dict[str, Any] = {}
    if hoiio is not None:
        values.update(hoiio_app_id="app-1", hoiio_access_token=HOIIO_TOKEN, hoiio_api_url=hoiio.url)
    if textit is not None:
        values.update(textit_api_token=TEXTIT_TOKEN, textit_api_url=textit.url)
    values.update(kw)
    return Settings.from_env({}, **values)


def hoiio_sms(key: str = "e#0", msg: str = "hello ✓") -> OutboundCall:
    return OutboundCall(key, "hoiio", "sms/send", {"dest": ALICE, "msg": msg}, contact=ALICE)


def textit_sms(key: str = "e#0") -> OutboundCall:
    return OutboundCall(
        key, "textit", "broadcasts.json", {"urns": [f"tel:{ALICE}"], "text": "hi"}, contact=ALICE
    )


@pytest.fixture
def sender(
    session: aiohttp.ClientSession, fake_hoiio: FakeProvider, fake_textit: FakeProvider
) -> Sender:
    return Sender(settings_for(fake_hoiio, fake_textit), session)


# -- Hoiio ----------------------------------------------------------------------------------


async def test_hoiio_form_post_carries_credentials_and_params(
    sender: Sender, fake_hoiio: FakeProvider
) -> None:
    call = OutboundCall("e#0", "hoiio", "ivr/end/hangup", {"session": "S-1", "n": 3})
    assert await sender.send(call) == "sent"
    (request,) = fake_hoiio.requests
    assert request.method == "POST"
    assert request.path == "/open/ivr/end/hangup"
    assert request.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    assert request.params == {
        "app_id": "app-1",
        "access_token": HOIIO_TOKEN,
        "session": "S-1",
        "n": "3",
    }


@pytest.mark.parametrize(
    "value",
    ["", "S-1.2_x~", "Ça va? ✓ 50% & more", "a+b=c", "http://h:9/p?q=1&secret=s#f", "٣", "\n\t "],
)
def test_form_body_is_what_urlencode_makes(value: str) -> None:
    fields = {"app_id": "app-1", "msg": value, value or "empty": "x", "n": "3"}
    assert form_body(fields) == urlencode(fields).encode()


async def test_hoiio_sms_params_survive_unicode(sender: Sender, fake_hoiio: FakeProvider) -> None:
    assert await sender.send(hoiio_sms(msg="Ça va? ✓ 50% & more")) == "sent"
    assert fake_hoiio.requests[0].params["msg"] == "Ça va? ✓ 50% & more"
    assert fake_hoiio.requests[0].params["dest"] == ALICE


@pytest.mark.parametrize(
    ("status", "retry"),
    [
        ("error_invalid_session", False),
        ("error_session_ended", False),
        ("error_msg_invalid_length", False),
        ("error_insufficient_credit", False),
        ("error_rate_limit_exceeded", True),
        ("error_internal_server_error", True),
        ("error_session_not_ready", True),
    ],
)
async def test_hoiio_error_statuses_classify(
    sender: Sender, fake_hoiio: FakeProvider, status: str, retry: bool
) -> None:
    fake_hoiio.behaviour.hoiio_status = status
    with pytest.raises(DeliveryError) as caught:
        await sender.send(hoiio_sms())
    assert caught.value.retry is retry
    assert status in str(caught.value)
    assert HOIIO_TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    ("http_status", "retry_after", "retry", "expected_after"),
    [
        (500, None, True, None),
        (503, "12", True, 12.0),
        (429, "7", True, 7.0),
        (429, "1.5", True, 1.5),
        (429, "Wed, 21 Oct 2015 07:28:00 GMT", True, None),
        (429, "-5", True, 0.0),
        (429, "inf", True, None),
        (429, "nan", True, None),
        (429, "1e12", True, 86400.0),
        (400, None, False, None),
        (403, None, False, None),
        (408, None, True, None),
        (425, None, True, None),
        (422, None, False, None),
    ],
)
async def test_hoiio_http_failures_classify(
    sender: Sender,
    fake_hoiio: FakeProvider,
    http_status: int,
    retry_after: str | None,
    retry: bool,
    expected_after: float | None,
) -> None:
    fake_hoiio.behaviour.fail_next = 1
    fake_hoiio.behaviour.fail_status = http_status
    fake_hoiio.behaviour.retry_after = retry_after
    with pytest.raises(DeliveryError) as caught:
        await sender.send(hoiio_sms())
    assert caught.value.retry is retry
    assert caught.value.retry_after == expected_after
    # The failure was only the first request.
    assert await sender.send(hoiio_sms()) == "sent"


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_transport_errors_are_retryable(
    session: aiohttp.ClientSession, unused_port: int
) -> None:
    port = unused_port
    settings = Settings.from_env(
        {},
        hoiio_app_id="app-1",
        hoiio_access_token=HOIIO_TOKEN,
        hoiio_api_url=f"http://127.0.0.1:{port}/open",
    )
    with pytest.raises(DeliveryError) as caught:
        await Sender(settings, session).send(hoiio_sms())
    assert caught.value.retry is True
    assert "transport error" in str(caught.value)
    assert HOIIO_TOKEN not in str(caught.value)


async def test_transport_error_of_a_webhook_hides_the_url_query(
    sender: Sender, unused_port: int
) -> None:
    call = OutboundCall(
        "e#0", "http", f"http://user:pw-secret@127.0.0.1:{unused_port}/h?token=q-secret", {}
    )
    with pytest.raises(DeliveryError) as caught:
        await sender.send(call)
    assert caught.value.retry is True
    assert f"http://127.0.0.1:{unused_port}/h?..." in str(caught.value)
    assert "q-secret" not in str(caught.value)
    assert "pw-secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("provider", "endpoint", "shown"),
    [
        ("hoiio", "sms/send", "sms/send"),
        ("textit", "broadcasts.json", "broadcasts.json"),
        ("http", "https://example.com/a/b", "https://example.com/a/b"),
        ("http", "https://example.com:8443/a?api_key=s&x=1#frag", "https://example.com:8443/a?..."),
        ("http", "https://u:p@example.com/a", "https://example.com/a"),
        ("http", "http://[::1]:8080/x?k=v", "http://[::1]:8080/x?..."),
        ("http", "http://example.com:99999/x", "<unparsable url>"),
    ],
)
def test_loggable_endpoint(provider: str, endpoint: str, shown: str) -> None:
    assert loggable_endpoint(OutboundCall("k", provider, endpoint, {})) == shown


async def test_a_timeout_is_retryable(sender: Sender, fake_http: FakeProvider) -> None:
    fake_http.behaviour.delay = 1.0
    call = OutboundCall("e#0", "http", f"{fake_http.url}/slow", {}, timeout=0.1)
    with pytest.raises(DeliveryError) as caught:
        await sender.send(call)
    assert caught.value.retry is True


# -- TextIt ---------------------------------------------------------------------------------


async def test_textit_sends_token_header_and_json(
    sender: Sender, fake_textit: FakeProvider
) -> None:
    assert await sender.send(textit_sms()) == "sent"
    (request,) = fake_textit.requests
    assert (request.method, request.path) == ("POST", "/api/v2/broadcasts.json")
    assert request.headers["Authorization"] == f"Token {TEXTIT_TOKEN}"
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.json == {"urns": [f"tel:{ALICE}"], "text": "hi"}
    assert request.params == {}


@pytest.mark.parametrize(
    ("http_status", "retry"), [(500, True), (502, True), (429, True), (400, False), (401, False)]
)
async def test_textit_failures_classify(
    sender: Sender, fake_textit: FakeProvider, http_status: int, retry: bool
) -> None:
    fake_textit.behaviour.fail_next = 1
    fake_textit.behaviour.fail_status = http_status
    fake_textit.behaviour.retry_after = "30" if http_status == 429 else None
    with pytest.raises(DeliveryError) as caught:
        await sender.send(textit_sms())
    assert caught.value.retry is retry
    assert caught.value.retry_after == (30.0 if http_status == 429 else None)
    assert str(http_status) in str(caught.value)
    assert TEXTIT_TOKEN not in str(caught.value)


# -- HTTP webhooks --------------------------------------------------------------------------


async def test_http_call_uses_method_headers_and_json(
    sender: Sender, fake_http: FakeProvider
) -> None:
    call = OutboundCall(
        "e#0",
        "http",
        f"{fake_http.url}/hooks/order?x=1",
        {"json": {"order": "123", "n": [1, 2]}},
        method="PUT",
        headers={"X-Api-Key": "k-1"},
    )
    assert await sender.send(call) == "sent"
    (request,) = fake_http.requests
    assert (request.method, request.path) == ("PUT", "/hooks/order")
    assert request.params == {"x": "1"}
    assert request.headers["X-Api-Key"] == "k-1"
    assert request.json == {"order": "123", "n": [1, 2]}
    assert "app_id" not in request.params  # provider credentials never go to webhooks
    assert "Authorization" not in request.headers


async def test_http_get_without_body(sender: Sender, fake_http: FakeProvider) -> None:
    call = OutboundCall("e#0", "http", f"{fake_http.url}/ping", {}, method="GET")
    assert await sender.send(call) == "sent"
    assert fake_http.requests[0].method == "GET"
    assert fake_http.requests[0].json is None


async def test_http_failures_classify(sender: Sender, fake_http: FakeProvider) -> None:
    fake_http.behaviour.fail_next = 2
    fake_http.behaviour.fail_status = 404
    call = OutboundCall("e#0", "http", f"{fake_http.url}/x", {})
    with pytest.raises(DeliveryError) as caught:
        await sender.send(call)
    assert caught.value.retry is False
    fake_http.behaviour.fail_status = 503
    with pytest.raises(DeliveryError) as caught:
        await sender.send(call)
    assert caught.value.retry is True


async def test_unknown_provider_is_permanent(sender: Sender) -> None:
    with pytest.raises(DeliveryError) as caught:
        await sender.send(OutboundCall("e#0", "carrier-pigeon", "x", {}))
    assert caught.value.retry is False


# -- dry run and redaction ------------------------------------------------------------------


async def test_dry_run_without_credentials_sends_nothing(
    session: aiohttp.ClientSession,
    fake_hoiio: FakeProvider,
    fake_textit: FakeProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings.from_env(
        {},
        hoiio_app_id="app-1",  # no access token: still no usable credentials
        hoiio_api_url=fake_hoiio.url,
        textit_api_url=fake_textit.url,
    )
    sender = Sender(settings, session)
    caplog.set_level(logging.DEBUG)
    assert sender.is_dry_run(hoiio_sms())
    assert await sender.send(hoiio_sms()) == "dry_run"
    assert await sender.send(textit_sms()) == "dry_run"
    assert fake_hoiio.requests == []
    assert fake_textit.requests == []
    assert "dry run" in caplog.text
    assert "sms/send" in caplog.text


async def test_dry_run_logs_params_redacted(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    sender = Sender(Settings.from_env({}), session)
    caplog.set_level(logging.DEBUG)
    call = OutboundCall("e#0", "hoiio", "sms/send", {"dest": ALICE, "access_token": "leak-me"})
    assert await sender.send(call) == "dry_run"
    assert "leak-me" not in caplog.text
    assert ALICE in caplog.text


def test_redact_hides_secrets_and_keeps_the_rest() -> None:
    params = {
        "app_id": "app-1",
        "access_token": HOIIO_TOKEN,
        "Access_Token": "other",
        "token": "t",
        "password": "p",
        "msg": "hello",
        "dest": ALICE,
    }
    safe = redact(params)
    assert safe == {
        "app_id": "***",
        "access_token": "***",
        "Access_Token": "***",
        "token": "***",
        "password": "***",
        "msg": "hello",
        "dest": ALICE,
    }
    assert params["access_token"] == HOIIO_TOKEN  # the original is untouched


def test_redact_hides_secrets_inside_urls() -> None:
    notify = "https://ivr.example.org/webhooks/hoiio?secret=s3cr%2Bt&app_state=m:menu:1&sig=ab"
    params = {
        "notify_url": notify,
        "other": "http://x/?a=1&password=pw#frag",
        "msg": "my secret=shh stays: it is text, not a URL parameter",
        "session": "S-1",
        "max_digits": 1,
    }
    safe = redact(params)
    assert safe["notify_url"] == (
        "https://ivr.example.org/webhooks/hoiio?secret=***&app_state=m:menu:1&sig=ab"
    )
    assert safe["other"] == "http://x/?a=1&password=***#frag"
    assert safe["msg"] == params["msg"]
    assert safe["session"] == "S-1"
    assert safe["max_digits"] == 1


async def test_dry_run_log_hides_the_secret_in_notify_url(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    sender = Sender(Settings.from_env({}), session)
    caplog.set_level(logging.DEBUG)
    notify = "https://ivr.example.org/webhooks/hoiio?secret=webhook-secret-9&app_state=a:b:1"
    call = OutboundCall("e#0", "hoiio", "ivr/middle/play", {"session": "S-1", "notify_url": notify})
    assert await sender.send(call) == "dry_run"
    assert "webhook-secret-9" not in caplog.text
    assert "secret=***&app_state=a:b:1" in caplog.text


# -- every provider -------------------------------------------------------------------------


async def test_every_request_carries_the_calls_idempotency_key(
    sender: Sender, fake_hoiio: FakeProvider, fake_textit: FakeProvider, fake_http: FakeProvider
) -> None:
    await sender.send(hoiio_sms("e1#0"))
    await sender.send(textit_sms("e1#1"))
    hook = OutboundCall("e1#2", "http", f"{fake_http.url}/h", {}, headers={"X-A": "1"})
    await sender.send(hook)
    for fake, key in ((fake_hoiio, "e1#0"), (fake_textit, "e1#1"), (fake_http, "e1#2")):
        assert fake.requests[0].headers["Idempotency-Key"] == key
    assert "idempotency" not in str(fake_hoiio.requests[0].params).lower()


@pytest.mark.parametrize(
    ("endpoint", "params"),
    [
        ("messages.json", {"contact": "d33e9ad5-5c35-414c-abd4-e7451c69ff1d", "text": "Hi Bob"}),
        (
            "flow_starts.json",
            {"flow": "f5901b62-ba76-4003-9c62-72fdacc1b7b7", "urns": [f"tel:{ALICE}"]},
        ),
    ],
)
async def test_textit_v2_endpoints(
    sender: Sender, fake_textit: FakeProvider, endpoint: str, params: dict[str, Any]
) -> None:
    call = OutboundCall("e#0", "textit", endpoint, params, contact=ALICE)
    assert await sender.send(call) == "sent"
    (request,) = fake_textit.requests
    assert request.path == f"/api/v2/{endpoint}"
    assert request.headers["Authorization"] == f"Token {TEXTIT_TOKEN}"
    assert request.json == params


async def test_the_worker_can_shorten_a_calls_timeout(
    sender: Sender, fake_http: FakeProvider
) -> None:
    fake_http.behaviour.delay = 2.0
    call = OutboundCall("e#0", "http", f"{fake_http.url}/slow", {}, timeout=30)
    with pytest.raises(DeliveryError, match=r"no answer within 0\.1s") as caught:
        await sender.send(call, within=0.1)
    assert caught.value.retry is True
