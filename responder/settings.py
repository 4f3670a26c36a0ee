"""Settings: one frozen object built from the environment and command-line flags."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from responder.errors import SettingsError
from responder.policy import DeliverySettings
from responder.retention import Retention

DEFAULT_CHANNELS: Mapping[str, str] = {"textit": "textit", "hoiio": "hoiio"}
PROVIDER_NAMES = frozenset({"textit", "hoiio"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
MAX_WORKERS = 64
# ``RESPONDER_WEBHOOK_SECRET_<CHANNEL>``: the channel name upper-cased, ``-`` as ``_``.
CHANNEL_SECRET_PREFIX = "RESPONDER_WEBHOOK_SECRET_"  # noqa: S105 (a name, not a secret)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Settings:
    rules: tuple[str, ...] = ("rules",)
    host: str = "0.0.0.0"  # noqa: S104 - a webhook receiver must be reachable
    port: int = 8080
    store: str = "sqlite:///responder.db"
    public_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    # Per-channel webhook secrets; a channel listed here uses its own instead of the global.
    webhook_secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    # Check Hoiio's X-Hoiio-Signature (HMAC-SHA256 of the raw body, keyed by the token).
    hoiio_verify_signature: bool = False
    # When not empty, webhooks are accepted only from these addresses / networks.
    allow_ips: tuple[IPNetwork, ...] = ()
    # Proxies whose X-Forwarded-For is believed when checking ``allow_ips``.
    trusted_proxies: tuple[IPNetwork, ...] = ()
    state_key: str | None = field(default=None, repr=False)
    hoiio_app_id: str | None = None
    hoiio_access_token: str | None = field(default=None, repr=False)
    hoiio_api_url: str = "https://secure.hoiio.com/open"
    textit_api_token: str | None = field(default=None, repr=False)
    textit_api_url: str = "https://textit.in/api/v2"
    channels: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_CHANNELS))
    max_body_bytes: int = 1024 * 1024
    # Seconds a connection may go without a complete request head (idle keep-alive
    # connections, headers sent a byte at a time): then it is closed.
    header_timeout: float = 15.0
    # Seconds a request's body may take to arrive (one that never ends): then 408, closed.
    body_timeout: float = 30.0
    idempotency_ttl: float = 7 * 86400.0
    log_level: str = "INFO"
    log_format: str = "text"  # or "json": one JSON object per line
    # "masked" logs contact numbers as +6591****67 (traces, explain, metrics never hold them)
    log_contacts: str = "full"
    # Reload the rules when a rule file changes (SIGHUP always reloads).
    watch: bool = False
    # Processes serving the port (``serve --workers``); 1 serves in this process alone.
    workers: int = 1
    metrics: bool = True
    # When set, GET /metrics needs ``Authorization: Bearer <token>``.
    metrics_token: str | None = field(default=None, repr=False)
    # Record incoming webhooks as JSON lines to this file (rotated at record_max_bytes).
    record: str | None = None
    record_max_bytes: int = 100 * 1024 * 1024
    record_keep: int = 5
    # The web console at /console/ is served only when this token is set (or --console).
    console_token: str | None = field(default=None, repr=False)
    # The coverage of the last ``responder test --coverage-json FILE`` run, shown by the console.
    console_coverage: str = "responder-coverage.json"
    # Simulation only: send the rules' own http calls here instead of their real URLs.
    capture_http_url: str | None = None
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    # How long finished records stay in the store (docs/settings.md, Retention).
    retention: Retention = field(default_factory=Retention)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``RESPONDER_*``, ``HOIIO_*`` and ``TEXTIT_*``; ``overrides`` (flags) win."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}

        def text(key: str, name: str) -> None:
            value = env.get(key)
            if value is not None and value.strip():
                values[name] = value.strip()

        text("RESPONDER_STORE", "store")
        text("RESPONDER_PUBLIC_URL", "public_url")
        text("RESPONDER_WEBHOOK_SECRET", "webhook_secret")
        text("RESPONDER_STATE_KEY", "state_key")
        text("RESPONDER_HOST", "host")
        text("RESPONDER_LOG_LEVEL", "log_level")
        text("RESPONDER_LOG_FORMAT", "log_format")
        text("RESPONDER_LOG_CONTACTS", "log_contacts")
        text("RESPONDER_METRICS_TOKEN", "metrics_token")
        text("RESPONDER_RECORD", "record")
        text("RESPONDER_CONSOLE_TOKEN", "console_token")
        text("RESPONDER_CONSOLE_COVERAGE", "console_coverage")
        text("HOIIO_APP_ID", "hoiio_app_id")
        text("HOIIO_ACCESS_TOKEN", "hoiio_access_token")
        text("HOIIO_API_URL", "hoiio_api_url")
        text("TEXTIT_API_TOKEN", "textit_api_token")
        text("TEXTIT_API_URL", "textit_api_url")
        if env.get("RESPONDER_RULES"):
            values["rules"] = tuple(p for p in env["RESPONDER_RULES"].split(os.pathsep) if p)
        for key, name in (
            ("RESPONDER_PORT", "port"),
            ("RESPONDER_MAX_BODY_BYTES", "max_body_bytes"),
            ("RESPONDER_RECORD_MAX_BYTES", "record_max_bytes"),
            ("RESPONDER_RECORD_KEEP", "record_keep"),
            ("RESPONDER_WORKERS", "workers"),
        ):
            if env.get(key):
                values[name] = _int(key, env[key])
        if env.get("RESPONDER_CHANNELS"):
            values["channels"] = parse_channels(env["RESPONDER_CHANNELS"])
        for key, name in (("RESPONDER_WATCH", "watch"), ("RESPONDER_METRICS", "metrics")):
            if env.get(key, "").strip():
                values[name] = _bool(key, env[key])
        if env.get("HOIIO_VERIFY_SIGNATURE", "").strip():
            values["hoiio_verify_signature"] = _bool(
                "HOIIO_VERIFY_SIGNATURE", env["HOIIO_VERIFY_SIGNATURE"]
            )
        for key, name in (
            ("RESPONDER_ALLOW_IPS", "allow_ips"),
            ("RESPONDER_TRUSTED_PROXIES", "trusted_proxies"),
        ):
            if env.get(key, "").strip():
                values[name] = parse_networks(key, env[key])
        values["delivery"] = DeliverySettings.from_env(env)
        values["retention"] = Retention.from_env(env)
        for key, name in (
            ("RESPONDER_HEADER_TIMEOUT", "header_timeout"),
            ("RESPONDER_BODY_TIMEOUT", "body_timeout"),
        ):
            if env.get(key, "").strip():
                values[name] = _float(key, env[key])
        if env.get("RESPONDER_IDEMPOTENCY_TTL", "").strip():
            values["idempotency_ttl"] = _float(
                "RESPONDER_IDEMPOTENCY_TTL", env["RESPONDER_IDEMPOTENCY_TTL"]
            )
        channels = values.get("channels", overrides.get("channels")) or DEFAULT_CHANNELS
        secrets = channel_secrets(env, channels)
        if secrets:
            values["webhook_secrets"] = secrets
        values.update({k: v for k, v in overrides.items() if v is not None})
        for key, name in (
            ("RESPONDER_ALLOW_IPS", "allow_ips"),
            ("RESPONDER_TRUSTED_PROXIES", "trusted_proxies"),
        ):
            if isinstance(values.get(name), str):  # a flag or a test passes the env syntax
                values[name] = parse_networks(key, values[name])
        values["log_level"] = str(values.get("log_level", "INFO")).upper()
        settings = replace(cls(), **values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not 0 < self.port < 65536:
            raise SettingsError("RESPONDER_PORT", f"{self.port} is not a TCP port")
        if self.max_body_bytes < 1024:
            raise SettingsError("RESPONDER_MAX_BODY_BYTES", "must be at least 1024")
        for key, url in (
            ("HOIIO_API_URL", self.hoiio_api_url),
            ("TEXTIT_API_URL", self.textit_api_url),
        ):
            if not url.startswith(("http://", "https://")):
                raise SettingsError(key, f"{url!r} is not an http(s) URL")
        if self.log_level not in LOG_LEVELS:
            raise SettingsError(
                "RESPONDER_LOG_LEVEL", f"{self.log_level!r} is not one of {', '.join(LOG_LEVELS)}"
            )
        if self.log_format not in ("text", "json"):
            raise SettingsError("RESPONDER_LOG_FORMAT", f"{self.log_format!r} is not text or json")
        if self.log_contacts not in ("full", "masked"):
            raise SettingsError(
                "RESPONDER_LOG_CONTACTS", f"{self.log_contacts!r} is not full or masked"
            )
        for key, seconds in (
            ("RESPONDER_HEADER_TIMEOUT", self.header_timeout),
            ("RESPONDER_BODY_TIMEOUT", self.body_timeout),
        ):
            if not 0.1 <= seconds <= 3600:
                raise SettingsError(key, "must be 0.1 to 3600 seconds")
        if not 1 <= self.idempotency_ttl <= 3660 * 86400:
            raise SettingsError("RESPONDER_IDEMPOTENCY_TTL", "must be 1 second to 10 years")
        if self.record_max_bytes < 4096:
            raise SettingsError("RESPONDER_RECORD_MAX_BYTES", "must be at least 4096")
        if not 0 <= self.record_keep <= 100:
            raise SettingsError("RESPONDER_RECORD_KEEP", "must be between 0 and 100")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise SettingsError("RESPONDER_WORKERS", f"must be between 1 and {MAX_WORKERS}")
        if self.workers > 1 and self.store.startswith("memory:"):
            raise SettingsError(
                "RESPONDER_WORKERS",
                "several workers need a store they share (sqlite:///FILE or redis://): "
                "each would have its own memory://",
            )
        if self.state_key is not None and len(self.state_key) < 16:
            raise SettingsError("RESPONDER_STATE_KEY", "must be at least 16 characters")
        if self.console_token is not None and len(self.console_token) < 16:
            raise SettingsError("RESPONDER_CONSOLE_TOKEN", "must be at least 16 characters")
        if self.public_url and not self.public_url.startswith(("http://", "https://")):
            raise SettingsError("RESPONDER_PUBLIC_URL", "must start with http:// or https://")
        for name, secret in self.webhook_secrets.items():
            if name not in self.channels:
                raise SettingsError(secret_env_key(name), f"there is no channel named {name!r}")
            if not secret:
                raise SettingsError(secret_env_key(name), "must not be empty")
        if self.hoiio_verify_signature and not self.hoiio_access_token:
            raise SettingsError(
                "HOIIO_VERIFY_SIGNATURE", "needs HOIIO_ACCESS_TOKEN (the key Hoiio signs with)"
            )

    def secret_for(self, channel: str) -> str | None:
        """The webhook secret of ``channel``: its own, else the global one, else None."""
        return self.webhook_secrets.get(channel) or self.webhook_secret or None

    def verifies_signature(self, channel: str) -> bool:
        """Whether requests on ``channel`` must carry a valid ``X-Hoiio-Signature``."""
        return self.hoiio_verify_signature and self.channels.get(channel) == "hoiio"

    def is_open(self, channel: str) -> bool:
        """True when ``channel`` has no secret, no signature check and no allow-list."""
        return not (self.secret_for(channel) or self.verifies_signature(channel) or self.allow_ips)

    @property
    def hoiio_credentials(self) -> tuple[str, str] | None:
        if self.hoiio_app_id and self.hoiio_access_token:
            return self.hoiio_app_id, self.hoiio_access_token
        return None


def parse_channels(text: str) -> dict[str, str]:
    """``sales=textit,support=hoiio`` -> channel name to provider (defaults stay unless renamed)."""
    channels = dict(DEFAULT_CHANNELS)
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, provider = item.partition("=")
        name, provider = name.strip(), provider.strip()
        if not sep or not name.replace("-", "").replace("_", "").isalnum():
            raise SettingsError("RESPONDER_CHANNELS", f"{item!r} is not name=provider")
        if provider not in PROVIDER_NAMES:
            raise SettingsError("RESPONDER_CHANNELS", f"unknown provider {provider!r}")
        channels[name] = provider
    return channels


def secret_env_key(channel: str) -> str:
    """The environment variable holding ``channel``'s own webhook secret."""
    return CHANNEL_SECRET_PREFIX + channel.upper().replace("-", "_")


def channel_secrets(env: Mapping[str, str], channels: Mapping[str, str]) -> dict[str, str]:
    """``RESPONDER_WEBHOOK_SECRET_<CHANNEL>`` variables -> channel name to secret.

    A variable that names no channel is an error: a typo must not leave a channel open.
    """
    by_key: dict[str, list[str]] = {}
    for name in channels:
        by_key.setdefault(secret_env_key(name), []).append(name)
    out: dict[str, str] = {}
    for key, value in env.items():
        if not key.startswith(CHANNEL_SECRET_PREFIX) or not value.strip():
            continue
        names = by_key.get(key)
        if not names:
            raise SettingsError(key, "names no channel (see RESPONDER_CHANNELS)")
        if len(names) > 1:
            raise SettingsError(key, f"is ambiguous: channels {sorted(names)}")
        out[names[0]] = value.strip()
    return out


def parse_networks(key: str, text: str) -> tuple[IPNetwork, ...]:
    """``10.0.0.0/8, 203.0.113.7, 2001:db8::/32`` -> networks (a bare address is a /32 or /128)."""
    out: list[IPNetwork] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise SettingsError(key, f"{item!r} is not an IP address or network") from None
    return tuple(out)


def _bool(key: str, value: str) -> bool:
    folded = value.strip().lower()
    if folded in ("1", "true", "yes", "on"):
        return True
    if folded in ("0", "false", "no", "off"):
        return False
    raise SettingsError(key, f"{value!r} is not true or false")


def _float(key: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise SettingsError(key, f"{value!r} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise SettingsError(key, f"{value!r} is not a number")
    return number


def _int(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise SettingsError(key, f"{value!r} is not an integer") from None
