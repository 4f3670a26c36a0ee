"""The sockets ``serve --workers`` binds before its workers start: one set per worker on one
port, and a port another server listens on is refused as it is without workers."""

from __future__ import annotations

import errno
import socket

import pytest

from responder.web.listeners import REUSE_PORT, bind, close_all


def test_each_worker_gets_its_own_sockets_on_one_port() -> None:
    sets = bind("127.0.0.1", _free(), 3)
    try:
        assert len(sets) == 3
        ports = {sock.getsockname()[1] for sockets in sets for sock in sockets}
        assert len(ports) == 1
        distinct = len({id(sock) for sockets in sets for sock in sockets})
        assert distinct == (3 if REUSE_PORT else 1)
        with socket.create_connection(("127.0.0.1", ports.pop()), timeout=2):
            pass  # listening before any worker has started: the connection waits in a queue
    finally:
        close_all(sets)


@pytest.mark.parametrize("reuse_port", [False, True])
def test_a_port_something_listens_on_is_refused(reuse_port: bool) -> None:
    if reuse_port and not REUSE_PORT:
        pytest.skip("no SO_REUSEPORT here")
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:  # another responder with workers, say
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        with pytest.raises(OSError, match="in use") as caught:
            bind("127.0.0.1", other.getsockname()[1], 2)
    assert caught.value.errno == errno.EADDRINUSE


def test_every_address_of_a_name_is_bound() -> None:
    sets = bind("localhost", _free(), 2)
    try:
        families = {sock.family for sock in sets[0]}
        assert socket.AF_INET in families
    finally:
        close_all(sets)


def _free() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
