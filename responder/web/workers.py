"""What runs in a worker process of ``responder serve --workers N`` (see ``supervisor``).

A worker is ``responder serve`` on sockets the parent bound and rules the parent loaded, with
three differences: it takes SIGTERM only (the parent passes Ctrl-C on as SIGTERM), its log
lines say which worker wrote them, and its metrics are counted where a scrape of any worker
sums them. It tells the parent when it serves, and shuts down gracefully when the parent is
gone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from contextlib import suppress
from dataclasses import dataclass, replace

from responder.rules.model import RuleSet
from responder.settings import Settings
from responder.web.logs import setup_logging
from responder.web.metrics import count_across_processes
from responder.web.recording import worker_path

log = logging.getLogger("responder.workers")


@dataclass(frozen=True, slots=True)
class Role:
    """What makes a worker's application one of several: its number and the shared metrics."""

    number: int
    metrics_dir: str


class Worker:
    """What a worker process is given: its settings, role, listening sockets and rules."""

    def __init__(
        self,
        settings: Settings,
        role: Role,
        sockets: tuple[socket.socket, ...],
        rules: RuleSet,
        ready: int,
        lifeline: int,
    ) -> None:
        self.settings = settings
        self.role = role
        self.sockets = sockets
        self.rules = rules
        self._ready = ready
        self._lifeline = lifeline

    def started(self) -> None:
        """Tell the parent this worker serves (call on the event loop, once listening); from
        then on, the parent's end of the lifeline closing stops this worker gracefully."""
        with suppress(OSError):
            os.write(self._ready, b"1")
        os.close(self._ready)
        loop = asyncio.get_running_loop()
        loop.add_reader(self._lifeline, self._orphaned, loop)

    def _orphaned(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.remove_reader(self._lifeline)
        log.error("the parent process is gone: shutting down")
        os.kill(os.getpid(), signal.SIGTERM)  # the one graceful way, as from the parent


def prepare(settings: Settings, role: Role) -> Settings:
    """Make this (just forked) process worker ``role``: its signals, its log lines, its
    metrics; the settings it serves with (a recording file of its own)."""
    # SIGINT (Ctrl-C reaches the whole process group) comes from the parent as SIGTERM;
    # SIGHUP is taken once the worker serves (the parent holds it back till then).
    for number in (signal.SIGTERM, signal.SIGCHLD):
        signal.signal(number, signal.SIG_DFL)
    for number in (signal.SIGINT, signal.SIGHUP):
        signal.signal(number, signal.SIG_IGN)
    setup_logging(settings.log_level, settings.log_format, worker=role.number)
    count_across_processes(role.metrics_dir)
    if settings.record:
        return replace(settings, record=worker_path(settings.record, role.number))
    return settings
