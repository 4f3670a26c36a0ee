"""A throwaway corner of a real Redis server for tests and benchmarks: a random key prefix;
and a throwaway Redis Cluster of three local nodes.

Synchronous on purpose: fixtures of any kind (and ``getfixturevalue``) can call it.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis
from redis.exceptions import RedisError

# Tests run against this server; `.ci/run` starts one when none answers.
SERVER = os.environ.get("RESPONDER_TEST_REDIS", "redis://127.0.0.1:6379/0")


def scratch_url(label: str = "test", server: str = SERVER) -> str:
    """The server's URL with a fresh prefix, so parallel runs never share a key."""
    joint = "&" if "?" in server else "?"
    return f"{server}{joint}prefix={label}-{secrets.token_hex(6)}"


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


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _cluster_port(taken: set[int]) -> int:
    """A port free together with its cluster bus port (port + 10000)."""
    for _ in range(200):
        port = random.randint(20000, 29999)  # noqa: S311 (not for secrets)
        if port not in taken and _free(port) and _free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def _wait(check: object, what: str, within: float = 20.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(RedisError, OSError):
            if check():
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"local Redis Cluster: {what} not within {within:.0f}s")
        time.sleep(0.05)


@contextlib.contextmanager
def local_cluster(nodes: int = 3) -> Iterator[str]:
    """Start a Redis Cluster of ``nodes`` masters on loopback; yields a store URL for it."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        raise RuntimeError(
            "the Redis Cluster tests start their own nodes: install redis-server and redis-cli"
        )
    tmp = Path(tempfile.mkdtemp(prefix="responder-cluster-"))
    ports: list[int] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(nodes):
            port = _cluster_port(set(ports))
            ports.append(port)
            home = tmp / str(port)
            home.mkdir()
            procs.append(
                subprocess.Popen(  # noqa: S603
                    [
                        server,
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        str(home / "nodes.conf"),
                        "--dir",
                        str(home),
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        clients = [redis.Redis(port=p, socket_connect_timeout=1) for p in ports]
        for client in clients:
            _wait(client.ping, "nodes answering")
        subprocess.run(  # noqa: S603
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{p}" for p in ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        for client in clients:
            _wait(lambda c=client: c.cluster("info")["cluster_state"] == "ok", "cluster state ok")
            client.close()
        yield f"redis://127.0.0.1:{ports[0]}/0?cluster=yes"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
