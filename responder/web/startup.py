"""Starting and stopping ``responder serve``: problems told so the operator can act, signals."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
from contextlib import suppress

from aiohttp import web

from responder.errors import SettingsError, StoreError
from responder.rules.model import RuleSet
from responder.stores import open_store, without_password
from responder.web.recording import Recorder

log = logging.getLogger("responder")

PORT_HINT = "choose another with --port or RESPONDER_PORT"
HOST_HINT = "--host or RESPONDER_HOST; 0.0.0.0 listens on every address"
STORE_HINT = "the store is set with --store or RESPONDER_STORE"


def listen_problem(host: str, port: int, exc: OSError) -> str:
    """Why ``host:port`` could not be listened on, and what to do about it."""
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on {host!r}: not a known host name or address ({HOST_HINT})"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"cannot listen on {host}:{port}: the port is already in use (another responder?); "
            f"stop what uses it or {PORT_HINT}"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {host}:{port}: not an address of this machine ({HOST_HINT})"
    if exc.errno == errno.EACCES:
        return (
            f"cannot listen on {host}:{port}: permission denied (ports below 1024 need "
            f"privileges); {PORT_HINT}"
        )
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def store_problem(exc: StoreError) -> str:
    """A store that could not be opened or written (the error names it), and where it is set."""
    return f"{exc}; {STORE_HINT}"


async def check_store(url: str) -> None:
    """Open the store at ``url`` and close it again: StoreError (once, before any worker of
    ``serve --workers`` starts) when it cannot be opened or written; its tables made once."""
    store = open_store(url)
    await store.open()
    await store.close()


def where(url: str) -> str:
    """A store URL fit for logs: without a password and without query parameters."""
    return without_password(url.split("?")[0])


def open_recording(recorder: Recorder) -> None:
    """Open the webhook recording at start-up; a path that cannot be written stops the start."""
    try:
        recorder.open()
    except OSError as exc:
        raise SettingsError(
            "RESPONDER_RECORD", f"cannot write {str(recorder.path)!r}: {exc.strerror or exc}"
        ) from None


def public_url_warning(public_url: str | None, rules: RuleSet) -> str | None:
    """The warning for IVR dialogues served without ``RESPONDER_PUBLIC_URL``, if it applies."""
    ivr = sorted(name for name, d in rules.dialogues.items() if d.mode == "ivr")
    if public_url or not ivr:
        return None
    names = ", ".join(repr(name) for name in ivr)
    return (
        f"RESPONDER_PUBLIC_URL is not set, so the IVR dialogues ({names}) cannot give Hoiio "
        "a notify_url: their calls are hung up at once. Set RESPONDER_PUBLIC_URL "
        "(or --public-url) to the https:// address Hoiio reaches this server at"
    )


class StopSignals:
    """SIGTERM and SIGINT start one graceful shutdown; more of them cannot cut it short.

    aiohttp's own handlers raise ``GracefulExit`` on every signal: a second one, sent while
    calls in flight were finishing, aborted the shutdown and made the exit code 1.
    """

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.stopping = False

    def install(
        self,
        loop: asyncio.AbstractEventLoop,
        signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT),
    ) -> None:
        with suppress(NotImplementedError, RuntimeError, ValueError):
            # Only the main thread of a real process can take signals; tests run without.
            for number in signals:
                loop.add_signal_handler(number, self.received, number.name)

    def received(self, name: str) -> None:
        if self.stopping:
            log.warning(
                "%s: already shutting down (calls in flight get up to %g s); kill -9 stops at once",
                name,
                self.grace,
            )
            return
        self.stopping = True
        log.info("%s: shutting down", name)
        raise web.GracefulExit()
