"""The docs' settings tables and the code agree: every variable read is documented, every
documented one is read, and each documented default is the one the code uses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from responder.policy import DeliverySettings, Rate
from responder.retention import Retention
from responder.settings import Settings
from tests.conftest import REPO

# The settings page, and the delivery page with its table of retry, limit and shutdown settings.
PAGES = [REPO / "docs" / "settings.md", REPO / "docs" / "delivery.md"]
DOCS = "\n".join(page.read_text() for page in PAGES)
# Variables read from the environment by the server (tests' own helpers are not settings).
SOURCES = [
    REPO / "responder" / "settings.py",
    REPO / "responder" / "policy.py",
    REPO / "responder" / "retention.py",
]
NAME = re.compile(r"\b((?:RESPONDER|HOIIO|TEXTIT)_[A-Z_]+[A-Z])\b")


def read_in_code() -> set[str]:
    names: set[str] = set()
    for path in SOURCES:
        names.update(re.findall(r'"((?:RESPONDER|HOIIO|TEXTIT)_[A-Z_]+[A-Z])"', path.read_text()))
    return names - {"RESPONDER_WEBHOOK_SECRET_"}


def documented() -> dict[str, str]:
    """Environment variable -> its documented default, from every table row of the pages."""
    rows: dict[str, str] = {}
    for line in DOCS.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        names = NAME.findall(cells[0])
        if not names or "<" in cells[0]:
            continue
        # Settings table: env | flag | default | meaning; Limits table: env | default | meaning.
        default = cells[2] if len(cells) >= 4 else cells[1]
        values = [v.strip("` ") for v in default.split(",")] if len(names) > 1 else [default]
        for name, value in zip(names, values * len(names), strict=False):
            rows[name] = value.strip("`")
    return rows


def shown(value: object) -> str:
    """A default as the docs write it."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Rate):
        return str(value)  # 2500/h
    if isinstance(value, tuple):
        return ":".join(str(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def test_every_variable_read_is_documented_and_every_documented_one_is_read() -> None:
    code, docs = read_in_code(), set(documented())
    assert code - docs == set(), "read but not in the docs"
    assert docs - code == set(), "in the docs but never read"


S, D, R = Settings(), DeliverySettings(), Retention()
DEFAULTS: dict[str, object] = {
    "RESPONDER_RULES": S.rules,
    "RESPONDER_HOST": S.host,
    "RESPONDER_PORT": S.port,
    "RESPONDER_STORE": S.store,
    "RESPONDER_PUBLIC_URL": S.public_url,
    "RESPONDER_CHANNELS": dict(S.channels),
    "RESPONDER_MAX_BODY_BYTES": S.max_body_bytes,
    "RESPONDER_LOG_LEVEL": S.log_level,
    "RESPONDER_LOG_FORMAT": S.log_format,
    "RESPONDER_LOG_CONTACTS": S.log_contacts,
    "RESPONDER_WATCH": S.watch,
    "RESPONDER_WORKERS": S.workers,
    "RESPONDER_METRICS": S.metrics,
    "RESPONDER_METRICS_TOKEN": S.metrics_token,
    "RESPONDER_RECORD": S.record,
    "RESPONDER_RECORD_MAX_BYTES": S.record_max_bytes,
    "RESPONDER_RECORD_KEEP": S.record_keep,
    "RESPONDER_WEBHOOK_SECRET": S.webhook_secret,
    "RESPONDER_CONSOLE_TOKEN": S.console_token,
    "RESPONDER_CONSOLE_COVERAGE": S.console_coverage,
    "HOIIO_VERIFY_SIGNATURE": "false" if not S.hoiio_verify_signature else "true",
    "HOIIO_API_URL": S.hoiio_api_url,
    "TEXTIT_API_URL": S.textit_api_url,
    "TEXTIT_API_TOKEN": S.textit_api_token,
    "HOIIO_MAX_CONCURRENT": D.hoiio_max_concurrent,
    "HOIIO_RATE_LIMIT": D.hoiio_rate,
    "TEXTIT_MAX_CONCURRENT": D.textit_max_concurrent,
    "TEXTIT_RATE_LIMIT": D.textit_rate,
    "RESPONDER_DELIVERY_CONCURRENCY": D.concurrency,
    "RESPONDER_DELIVERY_MAX_ATTEMPTS": D.max_attempts,
    "RESPONDER_DELIVERY_MAX_AGE": D.max_age,
    "RESPONDER_RETRY_BASE": D.retry_base,
    "RESPONDER_RETRY_MAX": D.retry_max,
    "RESPONDER_DELIVERY_LEASE": D.lease,
    "RESPONDER_SHUTDOWN_GRACE": D.shutdown_grace,
    "RESPONDER_IDEMPOTENCY_TTL": S.idempotency_ttl,
    "RESPONDER_HEADER_TIMEOUT": S.header_timeout,
    "RESPONDER_BODY_TIMEOUT": S.body_timeout,
    "RESPONDER_RETAIN_SENT": R.sent,
    "RESPONDER_RETAIN_DEAD": R.dead,
    "RESPONDER_RETAIN_HITS": R.hits,
    "RESPONDER_RETAIN_CONVERSATIONS": R.conversations,
    "RESPONDER_PURGE_EVERY": R.every,
}


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_documented_default_is_the_default(name: str) -> None:
    documented_default = documented()[name]
    expected = shown(DEFAULTS[name])
    if expected in ("—", "off"):
        assert documented_default in ("—", "off")
    else:
        assert documented_default == expected


def test_the_pages_are_where_the_tests_look() -> None:
    assert all(Path(page).is_file() for page in PAGES)
    assert len(documented()) >= 30
