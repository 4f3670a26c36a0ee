"""Redis store URLs: our own options (``prefix``, ``cluster``) and a password-free name."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from responder.errors import StoreError

DEFAULT_PREFIX = "responder"
OWN_OPTIONS = ("prefix", "cluster")  # read here, not passed on to redis-py


def split_url(url: str) -> tuple[str, str]:
    """``redis://host:port/db?prefix=p`` -> (the URL without our options, the prefix)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefixes = [v for k, v in query if k == "prefix"]
    prefix = prefixes[-1] if prefixes else DEFAULT_PREFIX
    if not prefix or any(c in prefix for c in "{}"):
        raise StoreError(f"Redis store prefix {prefix!r} must be non-empty, without braces")
    rest = urlencode([(k, v) for k, v in query if k not in OWN_OPTIONS])
    return urlunsplit(parts._replace(query=rest)), prefix


def wants_cluster(url: str) -> bool:
    """``?cluster=yes``: talk the Cluster protocol (follow MOVED, find the slot's node)."""
    values = [v for k, v in parse_qsl(urlsplit(url).query) if k == "cluster"]
    if not values or values[-1] in ("no", "0", "false"):
        return False
    if values[-1] in ("yes", "1", "true"):
        return True
    raise StoreError(f"Redis store option cluster={values[-1]!r}: use yes or no")


def describe(url: str) -> str:
    """Where the store is, for messages: host, port and db, never a password."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path}"


def check_url(url: str) -> None:
    """A malformed port or database is named plainly (redis-py would quietly use db 0);
    the URL may hold a password, so it is not repeated."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    try:
        _ = parts.port
    except ValueError:
        raise StoreError(
            f"store URL for Redis has a malformed host:port {netloc!r} (write redis://host:6379/0)"
        ) from None
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise StoreError(
            f"store URL for Redis names database {db!r}: it must be a number "
            "(write redis://host:6379/0)"
        )
