"""A throwaway corner of a real Redis server for tests and benchmarks: a random key prefix.

Synchronous on purpose: fixtures of any kind (and ``getfixturevalue``) can call it.
"""

from __future__ import annotations

import os
import secrets

import redis
from redis.exceptions import RedisError

# Tests run against this server; `.ci/run` starts one when none answers.
SERVER = os.environ.get("RESPONDER_TEST_REDIS", "redis://127.0.0.1:6379/0")


def scratch_url(label: str = "test") -> str:
    """The test server's URL with a fresh prefix, so parallel runs never share a key."""
    return f"{SERVER}?prefix={label}-{secrets.token_hex(6)}"


def require_server() -> None:
    """Fail with a clear message when no Redis answers (these tests never skip)."""
    client = redis.Redis.from_url(SERVER, socket_connect_timeout=2)
    try:
        client.ping()
    except RedisError as exc:
        raise RuntimeError(
            f"no Redis server answers at {SERVER} ({exc}); start one (`.ci/run` does) "
            "or point RESPONDER_TEST_REDIS at one"
        ) from exc
    finally:
        client.close()


def drop_prefix(prefix: str) -> int:
    """Delete every key of one store prefix; returns how many went."""
    client = redis.Redis.from_url(SERVER)
    try:
        keys = list(client.scan_iter(match=f"{{{prefix}}}:*", count=1000))
        return int(client.unlink(*keys)) if keys else 0
    finally:
        client.close()
