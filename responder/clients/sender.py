"""Send one OutboundCall to Hoiio, TextIt or an HTTP webhook, classifying every failure."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote_plus, urlsplit

import aiohttp

from responder.errors import DeliveryError
from responder.outbound import OutboundCall
from responder.printable import one_line
from responder.settings import Settings

log = logging.getLogger("responder.delivery")

# Hoiio answers 200 with an error status; these ones are worth another try.
HOIIO_RETRYABLE: Final = frozenset(
    {
        "error_rate_limit_exceeded",
        "error_internal_server_error",
        "error_concurrent_call_limit_reached",
        "error_session_not_ready",
    }
)
SECRET_PARAMS: Final = frozenset({"access_token", "app_id", "token", "password", "secret"})
MAX_RESPONSE_BYTES: Final = 256 * 1024
# A provider asking us to wait longer than this is capped, not obeyed to the letter.
MAX_RETRY_AFTER: Final = 86400.0
# Besides 5xx, these HTTP statuses say "try again later".
RETRY_HTTP: Final = frozenset({408, 425, 429})
# Sent with every request, the same on every retry, so a receiver can drop a repeat.
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
FORM_TYPE: Final = "application/x-www-form-urlencoded"


# ``secret=...`` inside a URL parameter (a notify_url carries the channel's webhook secret).
_SECRET_IN_URL: Final = re.compile(
    "((?:^|[?&])(?:" + "|".join(sorted(SECRET_PARAMS)) + ")=)[^&#]*", re.IGNORECASE
)


# An idempotency key sent as it is: visible ASCII, no longer than this. Any other key (it is
# made of ids a webhook sender chose) is sent as a digest, so it can never break the header.
_HEADER_SAFE: Final = re.compile(r"[!-~]{1,200}")
# Errors raised while a request is built or written, before any answer: sending the same call
# again raises them again.
_UNSENDABLE: Final = (ValueError, TypeError, LookupError)


def header_key(key: str) -> str:
    """The ``Idempotency-Key`` header value of a call: its key when that is safe in a header,
    else ``sha256-`` and the key's digest; the same value on every try of the call."""
    if _HEADER_SAFE.fullmatch(key):
        return key
    return "sha256-" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


# What quote_plus leaves as it is: such text is used without calling it.
_PLAIN: Final = re.compile(r"[A-Za-z0-9_.~-]*")


def _quote(text: str) -> str:
    return text if _PLAIN.fullmatch(text) else quote_plus(text)


def form_body(fields: Mapping[str, str]) -> bytes:
    """The bytes of ``urlencode(fields)``, made with less work for the plain names and values
    most fields have."""
    return "&".join([f"{_quote(k)}={_quote(v)}" for k, v in fields.items()]).encode()


def redact(params: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``params`` safe to log."""
    return {
        k: "***"
        if k.lower() in SECRET_PARAMS
        else _SECRET_IN_URL.sub(r"\1***", v)
        if isinstance(v, str)
        else v
        for k, v in params.items()
    }


def loggable_endpoint(call: OutboundCall) -> str:
    """``call.endpoint`` safe to log or store as an error: a webhook URL loses its user info,
    query and fragment, where rule authors tend to put tokens."""
    if call.provider != "http":
        return call.endpoint
    try:
        parts = urlsplit(call.endpoint)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "<unparsable url>"
    if ":" in host:
        host = f"[{host}]"
    query = "?..." if parts.query else ""
    return f"{parts.scheme}://{host}{port}{parts.path}{query}"


class Sender:
    """Performs outbound calls over one aiohttp session; dry-runs providers without credentials."""

    def __init__(self, settings: Settings, session: aiohttp.ClientSession) -> None:
        self.settings = settings
        self.session = session

    def is_dry_run(self, call: OutboundCall) -> bool:
        if call.provider == "hoiio":
            return self.settings.hoiio_credentials is None
        if call.provider == "textit":
            return not self.settings.textit_api_token
        return False

    async def send(self, call: OutboundCall, within: float | None = None) -> str:
        """Make the call; returns "sent" or "dry_run"; raises DeliveryError on failure.

        ``within`` seconds (default: the call's timeout) bound the whole request. Every request
        carries ``Idempotency-Key`` (``header_key(call.key)``), the same on every retry of the
        call. A call that can never be sent as it is fails permanently (``retry=False``).
        """
        if self.is_dry_run(call):
            log.info(
                "dry run (no %s credentials): %s %s %s",
                call.provider,
                call.provider,
                call.endpoint,
                json.dumps(redact(call.params), ensure_ascii=False),
            )
            return "dry_run"
        limit = aiohttp.ClientTimeout(total=call.timeout if within is None else within)
        try:
            if call.provider == "hoiio":
                await self._hoiio(call, limit)
            elif call.provider == "textit":
                await self._textit(call, limit)
            elif call.provider == "http":
                await self._http(call, limit)
            else:
                raise DeliveryError(f"unknown provider {call.provider!r}", retry=False)
        except aiohttp.InvalidURL as exc:
            raise _unsendable(call, exc) from None
        except TimeoutError:
            raise DeliveryError(
                f"{call.provider} {loggable_endpoint(call)}: no answer within {limit.total:g}s",
                retry=True,
            ) from None
        except aiohttp.ClientError as exc:
            raise DeliveryError(
                f"{call.provider} {loggable_endpoint(call)}: transport error: {type(exc).__name__}",
                retry=True,
            ) from None
        except _UNSENDABLE as exc:
            raise _unsendable(call, exc) from None
        return "sent"

    async def _hoiio(self, call: OutboundCall, limit: aiohttp.ClientTimeout) -> None:
        creds = self.settings.hoiio_credentials
        assert creds is not None
        url = f"{self.settings.hoiio_api_url.rstrip('/')}/{call.endpoint}"
        form = {
            "app_id": creds[0],
            "access_token": creds[1],
            **{k: str(v) for k, v in call.params.items()},
        }
        # Encoded here in one step: the same bytes aiohttp's form encoding makes, without
        # building a FormData for every call.
        body = form_body(form)
        headers = {"Content-Type": FORM_TYPE, IDEMPOTENCY_HEADER: header_key(call.key)}
        async with self.session.post(url, data=body, headers=headers, timeout=limit) as resp:
            text = await _read(resp)
            if resp.status in RETRY_HTTP or resp.status >= 500:
                raise DeliveryError(
                    f"hoiio {call.endpoint}: HTTP {resp.status}",
                    retry=True,
                    retry_after=_retry_after(resp),
                )
            try:
                status = str(json.loads(text).get("status", ""))
            except (ValueError, AttributeError):
                raise DeliveryError(
                    f"hoiio {call.endpoint}: HTTP {resp.status}, unreadable answer",
                    retry=resp.status >= 500,
                ) from None
        if status != "success_ok":
            raise DeliveryError(
                f"hoiio {call.endpoint}: {status or 'no status'}", retry=status in HOIIO_RETRYABLE
            )

    async def _textit(self, call: OutboundCall, limit: aiohttp.ClientTimeout) -> None:
        token = self.settings.textit_api_token
        url = f"{self.settings.textit_api_url.rstrip('/')}/{call.endpoint}"
        headers = {
            "Authorization": f"Token {token}",
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: header_key(call.key),
        }
        async with self.session.post(url, json=call.params, headers=headers, timeout=limit) as resp:
            await _read(resp)
            _check_http(f"textit {call.endpoint}", resp)

    async def _http(self, call: OutboundCall, limit: aiohttp.ClientTimeout) -> None:
        headers = {IDEMPOTENCY_HEADER: header_key(call.key), **call.headers}
        kwargs: dict[str, Any] = {"headers": headers, "timeout": limit}
        if "json" in call.params:
            kwargs["json"] = call.params["json"]
        url = call.endpoint
        if self.settings.capture_http_url:
            url = f"{self.settings.capture_http_url.rstrip('/')}/{call.endpoint}"
        async with self.session.request(call.method, url, **kwargs) as resp:
            await _read(resp)
            _check_http(f"http {call.method}", resp)


async def _read(resp: aiohttp.ClientResponse) -> str:
    data = await resp.content.read(MAX_RESPONSE_BYTES)
    return data.decode("utf-8", "replace")


def _unsendable(call: OutboundCall, exc: Exception) -> DeliveryError:
    """A call that can never be sent as it is (a header, URL or body aiohttp refuses): trying
    again would fail the same way, so it is a permanent failure."""
    reason = one_line(f"{type(exc).__name__}: {exc}", 300)
    return DeliveryError(
        f"{call.provider} {loggable_endpoint(call)}: cannot be sent: {reason}", retry=False
    )


def _retry_after(resp: aiohttp.ClientResponse) -> float | None:
    """Retry-After in seconds (HTTP dates are ignored), clamped to [0, MAX_RETRY_AFTER]."""
    value = resp.headers.get("Retry-After")
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    if seconds is None or not math.isfinite(seconds):
        return None  # "inf" or "nan" would park the item forever or make its due time NaN
    return min(MAX_RETRY_AFTER, max(0.0, seconds))


def _check_http(what: str, resp: aiohttp.ClientResponse) -> None:
    if resp.status < 300:
        return
    retry = resp.status in RETRY_HTTP or resp.status >= 500
    raise DeliveryError(f"{what}: HTTP {resp.status}", retry=retry, retry_after=_retry_after(resp))


__all__ = ["Sender", "form_body", "header_key", "loggable_endpoint", "redact"]
