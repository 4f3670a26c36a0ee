"""Who may make responder act: IP allow-list, webhook secret, Hoiio body signature.

Pure functions over plain data (addresses, query values, headers, body bytes); the server
calls them in this order and maps ``Unauthorized`` to 401/403. No reason given here ever
contains a secret, a signature or a value the caller sent.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping, Sequence

from responder.errors import Unauthorized
from responder.settings import IPNetwork, Settings, secret_env_key

# The query parameters that may carry the webhook secret (TextIt's docs use ``password``).
SECRET_PARAMS: tuple[str, ...] = ("secret", "password")
SIGNATURE_HEADER = "X-Hoiio-Signature"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_address(text: str) -> IPAddress | None:
    """An address as proxies write it (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``), or None."""
    text = text.strip()
    if text.startswith("["):
        text, closed, _ = text[1:].partition("]")
        if not closed:
            return None
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _within(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


def client_address(
    peer: str | None, forwarded_for: Sequence[str], trusted_proxies: Sequence[IPNetwork]
) -> IPAddress | None:
    """The address a request came from, or None when it cannot be told.

    When the peer is a trusted proxy, ``X-Forwarded-For`` is walked from the right (the hop
    the proxy itself added) past every trusted proxy; the first other hop is the client.
    Hops further left were written by the client and could be anything, so they never count.
    """
    address = parse_address(peer or "")
    if address is None or not _within(address, trusted_proxies):
        return address
    hops = [hop for header in forwarded_for for hop in header.split(",") if hop.strip()]
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None or not _within(address, trusted_proxies):
            return address
    # Every hop is a trusted proxy: the left-most one is where the request entered.
    return address


def check_address(settings: Settings, address: IPAddress | None) -> None:
    """Refuse (403) an address outside ``RESPONDER_ALLOW_IPS`` when that list is set."""
    if not settings.allow_ips:
        return
    if address is None:
        raise Unauthorized("client address cannot be determined", status=403)
    if not _within(address, settings.allow_ips):
        raise Unauthorized(f"address {address} is not allowed", status=403)


def check_secret(settings: Settings, channel: str, query: Mapping[str, str]) -> None:
    """Refuse a request without the channel's secret (401) or with a wrong one (403)."""
    secret = settings.secret_for(channel)
    if not secret:
        return
    given = next((query[name] for name in SECRET_PARAMS if query.get(name)), "")
    if not given:
        raise Unauthorized("missing webhook secret (?secret= or ?password=)", status=401)
    if not hmac.compare_digest(given.encode("utf-8"), secret.encode("utf-8")):
        raise Unauthorized("wrong webhook secret", status=403)


def body_signature(key: str, body: bytes) -> str:
    """Hoiio's signature of a notification: hex HMAC-SHA256 of the raw body."""
    return hmac.new(key.encode("utf-8"), body, hashlib.sha256).hexdigest()


def check_signature(
    settings: Settings, channel: str, headers: Mapping[str, str], body: bytes
) -> None:
    """Refuse a Hoiio request without ``X-Hoiio-Signature`` (401) or with a wrong one (403)."""
    if not settings.verifies_signature(channel):
        return
    assert settings.hoiio_access_token is not None  # Settings.validate makes sure
    given = headers.get(SIGNATURE_HEADER, "").strip()
    if not given:
        raise Unauthorized(f"missing {SIGNATURE_HEADER} header", status=401)
    expected = body_signature(settings.hoiio_access_token, body)
    # Hex is case-insensitive; non-ASCII input must still be compared, not crash: aiohttp
    # hands over undecodable header bytes as lone surrogates, which plain UTF-8 refuses.
    given_bytes = given.lower().encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(given_bytes, expected.encode("ascii")):
        raise Unauthorized(f"{SIGNATURE_HEADER} does not match the body", status=403)


def open_channels(settings: Settings) -> list[str]:
    """One warning per channel anyone can post to, naming the setting that would close it."""
    out = []
    for channel, provider in sorted(settings.channels.items()):
        if not settings.is_open(channel):
            continue
        fixes = [secret_env_key(channel), "RESPONDER_WEBHOOK_SECRET", "RESPONDER_ALLOW_IPS"]
        if provider == "hoiio":
            fixes.append("HOIIO_VERIFY_SIGNATURE=true")
        out.append(
            f"channel {channel!r} is unauthenticated: anyone who can reach "
            f"/webhooks/{channel} can make responder act; to close it set one of "
            f"{', '.join(fixes)}"
        )
    return out
