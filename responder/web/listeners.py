"""Listening sockets bound once, before any worker of ``serve --workers`` starts.

On Linux each worker gets sockets of its own on the one port (SO_REUSEPORT), so the kernel
spreads new connections evenly over them; one shared socket would let the first worker to
wake take a whole burst of connections. The parent keeps every socket open, so connections
that arrive while a worker is being replaced wait in its socket's queue for the replacement.
Elsewhere the workers share one socket.
"""

from __future__ import annotations

import socket
import sys
from typing import Final

BACKLOG: Final = 128  # as aiohttp's own sites
REUSE_PORT: Final = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")

Address = tuple[int, tuple[object, ...]]


def addresses(host: str, port: int) -> list[Address]:
    """Where ``host:port`` listens (a name may stand for several): family and address each,
    as asyncio's ``create_server`` finds them. ``socket.gaierror`` for an unknown name."""
    found = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    out: list[Address] = []
    for family, _, _, _, address in found:
        if (family, address) not in out:
            out.append((family, tuple(address)))
    return out


def _socket(family: int, address: tuple[object, ...], reuse_port: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            # One socket per family, as asyncio does: "::" must not take the IPv4 port too.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


def _listening(found: list[Address], reuse_port: bool) -> tuple[socket.socket, ...]:
    sockets: list[socket.socket] = []
    try:
        for family, address in found:
            sockets.append(_socket(family, address, reuse_port))
            sockets[-1].listen(BACKLOG)
    except BaseException:
        close_all([tuple(sockets)])
        raise
    return tuple(sockets)


def bind(host: str, port: int, count: int) -> list[tuple[socket.socket, ...]]:
    """``count`` sets of listening sockets on ``host:port``, one set per worker (the same set
    for all where SO_REUSEPORT does not spread connections). ``OSError`` when the port is
    taken, the address is not this machine's, and so on (see ``startup.listen_problem``)."""
    found = addresses(host, port)
    if not REUSE_PORT or count == 1:
        return [_listening(found, reuse_port=False)] * count
    # Sockets with SO_REUSEPORT share a port with any other such socket of this user, another
    # responder's included: a plain bind first fails as usual if anything listens there.
    for family, address in found:
        _socket(family, address, reuse_port=False).close()
    sets: list[tuple[socket.socket, ...]] = []
    try:
        for _ in range(count):
            sets.append(_listening(found, reuse_port=True))
    except BaseException:
        close_all(sets)
        raise
    return sets


def close_all(sets: list[tuple[socket.socket, ...]]) -> None:
    for sockets in sets:
        for sock in sockets:
            sock.close()
