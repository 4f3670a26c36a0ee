"""``responder serve --workers N``: a parent process keeps N forked workers serving one port.

The parent loads the rules, checks the store and binds the port once (``listeners``), then
forks the workers: each builds its own application (its own store connections, delivery and
timer workers: the store's transactions, claims and leases make them safe side by side) on
the rules the parent loaded, shared copy-on-write. The parent then only watches:

- SIGTERM or SIGINT: every worker gets SIGTERM and shuts down gracefully (requests in flight
  answered, calls in flight given their grace); the parent exits once all have, 0 when all
  stopped cleanly. More signals cannot cut that short.
- SIGHUP: every worker reloads its rules; a worker started later loads them again too.
- A worker that dies is replaced after a back-off that grows while it keeps dying. A worker
  that dies before any has served is a failed start: the others are stopped and its exit
  code is the parent's.
- A worker whose parent is gone (``kill -9`` of the parent) shuts down gracefully by itself.

The workers (``workers``) write to the parent's standard error, each line tagged with its
worker number, and count metrics in a directory the parent made, summed at every scrape. A
signal's arrival is read from a pipe (``signal.set_wakeup_fd``), so the parent's loop is a
plain ``select``.
"""

from __future__ import annotations

import gc
import logging
import os
import select
import shutil
import signal
import socket
import tempfile
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from types import FrameType
from typing import Final

from prometheus_client.multiprocess import mark_process_dead

from responder.errors import RulesError
from responder.rules.loader import load_rules
from responder.rules.model import RuleSet
from responder.settings import Settings
from responder.web.listeners import close_all
from responder.web.startup import where
from responder.web.workers import Role, Worker, prepare

log = logging.getLogger("responder.supervisor")

SIGNALS: Final = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)
RESTART_FIRST: Final = 0.25  # seconds before a worker that died is replaced...
RESTART_MAX: Final = 30.0  # ... doubled for each death within RESTART_WINDOW, up to this
RESTART_WINDOW: Final = 60.0


@dataclass
class _Slot:
    """One worker's place: its number and sockets stay, its process is replaced."""

    number: int
    sockets: tuple[socket.socket, ...]
    pid: int | None = None
    ready_fd: int | None = None
    ready: bool = False
    reload_pending: bool = False
    restart_at: float | None = None
    deaths: deque[float] = field(default_factory=deque)


def _noted(number: int, frame: FrameType | None) -> None:
    """The parent's handler: the signal's number is in the wake-up pipe already."""


def describe(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}" if code else "exited"


class Supervisor:
    """Starts, watches, restarts and stops the workers; ``serve`` runs in each of them."""

    def __init__(self, settings: Settings, rules: RuleSet, serve: Callable[[Worker], int]) -> None:
        self.settings = settings
        self.rules = rules
        self.serve = serve
        self._slots: list[_Slot] = []
        self._stopping = False
        self._started = False  # every worker has served once: a death now is replaced
        self._rules_stale = False
        self._code = 0
        self._metrics_dir = ""
        self._wake = (-1, -1)
        self._lifeline = (-1, -1)

    def run(self, listeners: list[tuple[socket.socket, ...]]) -> int:
        """Serve until stopped; the exit code. Closes ``listeners`` when done."""
        self._slots = [_Slot(n, sockets) for n, sockets in enumerate(listeners, start=1)]
        self._metrics_dir = tempfile.mkdtemp(prefix="responder-metrics-")
        self._wake = os.pipe()
        self._lifeline = os.pipe()
        for fd in self._wake:
            os.set_blocking(fd, False)
        previous = {number: signal.signal(number, _noted) for number in SIGNALS}
        old_wakeup = signal.set_wakeup_fd(self._wake[1], warn_on_full_buffer=False)
        try:
            log.info("starting %d workers", len(self._slots))
            for slot in self._slots:
                self._start(slot)
            return self._watch()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for number, handler in previous.items():
                signal.signal(number, handler)
            close_all(listeners)
            for fd in (*self._wake, *self._lifeline):
                os.close(fd)
            for slot in self._slots:
                if slot.ready_fd is not None:
                    os.close(slot.ready_fd)
            shutil.rmtree(self._metrics_dir, ignore_errors=True)

    def _watch(self) -> int:
        while not (self._stopping and all(slot.pid is None for slot in self._slots)):
            waiting = {slot.ready_fd: slot for slot in self._slots if slot.ready_fd is not None}
            readable, _, _ = select.select([self._wake[0], *waiting], [], [], self._timeout())
            for fd in readable:
                if fd == self._wake[0]:
                    with suppress(BlockingIOError):
                        for number in os.read(fd, 256):
                            self._signalled(signal.Signals(number))
                else:
                    self._heard(waiting[fd])
            self._reap()
            self._restart_due()
        return self._code

    def _timeout(self) -> float | None:
        due = [slot.restart_at for slot in self._slots if slot.restart_at is not None]
        return max(0.0, min(due) - time.monotonic()) if due else None

    def _signalled(self, number: signal.Signals) -> None:
        if number in (signal.SIGTERM, signal.SIGINT):
            self._stop(number.name)
        elif number == signal.SIGHUP:
            log.info("SIGHUP: reloading the rules in every worker")
            self._rules_stale = True
            for slot in self._slots:
                if slot.ready and slot.pid is not None:
                    os.kill(slot.pid, signal.SIGHUP)
                elif slot.pid is not None:
                    slot.reload_pending = True  # it takes signals once it serves

    def _stop(self, why: str) -> None:
        if self._stopping:
            log.warning("%s: already shutting down; kill -9 stops at once", why)
            return
        self._stopping = True
        log.info("%s: shutting down %d workers", why, len(self._slots))
        # No worker starts again: the port closes as soon as the last worker lets go of it.
        close_all([slot.sockets for slot in self._slots])
        for slot in self._slots:
            slot.restart_at = None
            if slot.pid is not None:
                os.kill(slot.pid, signal.SIGTERM)

    def _heard(self, slot: _Slot) -> None:
        """The worker's ready pipe: a byte once it serves, then (or at its death) the end."""
        assert slot.ready_fd is not None
        said = os.read(slot.ready_fd, 1)
        os.close(slot.ready_fd)
        slot.ready_fd = None
        if not said or slot.pid is None:
            return
        slot.ready = True
        if slot.reload_pending:
            slot.reload_pending = False
            os.kill(slot.pid, signal.SIGHUP)
        if not self._started and all(s.ready for s in self._slots):
            self._started = True
            s = self.settings
            pids = ", ".join(str(slot.pid) for slot in self._slots)
            log.info(
                "serving %s on http://%s:%d (store %s) with %d workers (pids %s) under pid %d",
                ", ".join(s.rules),
                s.host,
                s.port,
                where(s.store),
                len(self._slots),
                pids,
                os.getpid(),
            )
        elif self._started:
            log.info("worker %d serves again (pid %d)", slot.number, slot.pid)

    def _reap(self) -> None:
        for slot in self._slots:
            if slot.pid is None:
                continue
            pid, status = os.waitpid(slot.pid, os.WNOHANG)
            if pid:
                self._exited(slot, pid, os.waitstatus_to_exitcode(status))

    def _exited(self, slot: _Slot, pid: int, code: int) -> None:
        slot.pid = None
        slot.ready = slot.reload_pending = False
        if slot.ready_fd is not None:
            os.close(slot.ready_fd)
            slot.ready_fd = None
        # Its counters stay in the directory (a scrape sums them); its live gauges go.
        mark_process_dead(pid, self._metrics_dir)  # type: ignore[no-untyped-call]
        if self._stopping:
            clean = code in (0, -signal.SIGTERM)
            (log.info if clean else log.error)(
                "worker %d (pid %d) %s", slot.number, pid, describe(code)
            )
            if not clean and not self._code:
                self._code = code if code > 0 else 1
            return
        if not self._started and not any(s.ready for s in self._slots):
            log.error(
                "worker %d (pid %d) %s before serving: stopping", slot.number, pid, describe(code)
            )
            self._code = code if code > 0 else 1
            self._stop("a failed start")
            return
        now = time.monotonic()
        while slot.deaths and slot.deaths[0] < now - RESTART_WINDOW:
            slot.deaths.popleft()
        slot.deaths.append(now)
        delay = min(RESTART_MAX, RESTART_FIRST * 2 ** (len(slot.deaths) - 1))
        log.error(
            "worker %d (pid %d) %s; another starts in %.2g s",
            slot.number,
            pid,
            describe(code),
            delay,
        )
        slot.restart_at = now + delay

    def _restart_due(self) -> None:
        now = time.monotonic()
        for slot in self._slots:
            if slot.restart_at is None or slot.restart_at > now or self._stopping:
                continue
            slot.restart_at = None
            self._fresh_rules()
            try:
                self._start(slot)
            except OSError as exc:  # no memory or processes left for a fork: later
                log.error("cannot start worker %d: %s", slot.number, exc)
                slot.restart_at = now + RESTART_MAX

    def _fresh_rules(self) -> None:
        """The rules a new worker starts on: those the others reloaded since (SIGHUP, or any
        change with --watch), else the ones loaded at start."""
        if not (self._rules_stale or self.settings.watch):
            return
        try:
            self.rules = load_rules(self.settings.rules)
        except RulesError as exc:
            log.warning(
                "the rule files have %d problem(s): the new worker starts on the last good rules",
                len(exc.problems),
            )
            return
        self._rules_stale = False
        gc.freeze()  # shared with the new worker, as at start

    def _start(self, slot: _Slot) -> None:
        for handler in logging.getLogger().handlers:
            handler.flush()  # or the worker would write the parent's held lines again
        ready, told = os.pipe()
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            pid = os.fork()
        except OSError:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            os.close(ready)
            os.close(told)
            raise
        if pid == 0:
            self._child(slot, ready, told, mask)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(told)
        slot.pid, slot.ready_fd, slot.ready = pid, ready, False
        log.debug("worker %d started (pid %d)", slot.number, pid)

    def _child(self, slot: _Slot, ready: int, told: int, mask: set[int | signal.Signals]) -> None:
        """The worker process: never returns into the parent's code, it ends with ``os._exit``
        (a forked child must not run the parent's clean-up a second time)."""
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            own = {sock.fileno() for sock in slot.sockets}
            for other in self._slots:
                if other.ready_fd is not None:
                    os.close(other.ready_fd)
                for sock in other.sockets:
                    if sock.fileno() not in own and sock.fileno() != -1:
                        sock.close()
            for fd in (ready, *self._wake, self._lifeline[1]):
                os.close(fd)
            role = Role(slot.number, self._metrics_dir)
            settings = prepare(self.settings, role)
            # Signals held back since the fork now reach the worker's own handlers.
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            code = self.serve(
                Worker(settings, role, slot.sockets, self.rules, told, self._lifeline[0])
            )
        except BaseException:
            with suppress(BaseException):
                log.exception("worker %d failed", slot.number)
        finally:
            with suppress(BaseException):
                logging.shutdown()
            os._exit(code)
