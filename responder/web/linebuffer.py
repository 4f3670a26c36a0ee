"""A logging handler that writes its lines in batches: one write per event-loop iteration,
not one system call per line."""

from __future__ import annotations

import asyncio
import logging
from typing import Final, TextIO

# Held lines are written once they reach this many characters, whatever else happens.
MAX_CHARS: Final = 65_536


class LineBuffer(logging.StreamHandler[TextIO]):
    """Formats each record at once and writes the lines held so far together.

    They go out at the end of the event loop's current iteration, at once for a record of
    WARNING or worse, for a record logged outside a running event loop (commands, other
    threads) and when ``MAX_CHARS`` are held, and on ``flush()``, ``close()`` and at exit
    (logging flushes every handler then). The order of the lines is kept. Killed outright
    (SIGKILL), a process loses at most the lines of the iteration it was in.
    """

    def __init__(
        self, stream: TextIO, max_chars: int = MAX_CHARS, max_write: int | None = None
    ) -> None:
        super().__init__(stream)
        self.max_chars = max_chars
        # When set: lines go out in writes of whole lines of at most this many bytes (UTF-8),
        # a longer line alone; for a stream other processes write too (see ``logs``).
        self.max_write = max_write
        self._lines: list[str] = []
        self._chars = 0
        # The loop a write is scheduled on: another loop (or none) never waits for it.
        self._loop: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        """Called by ``handle()`` with the handler's lock held."""
        try:
            line = self.format(record) + self.terminator
            self._lines.append(line)
            self._chars += len(line)
            loop = asyncio._get_running_loop()
            if loop is None or record.levelno >= logging.WARNING or self._chars >= self.max_chars:
                self._write()
            elif loop is not self._loop:
                self._loop = loop
                loop.call_soon(self._scheduled)
        except RecursionError:  # as logging's own handlers do
            raise
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        self.acquire()
        try:
            self._write()
        finally:
            self.release()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            super().close()

    def held(self) -> int:
        """How many lines wait to be written."""
        return len(self._lines)

    def _scheduled(self) -> None:
        self.acquire()
        try:
            self._loop = None
            self._write()
        except Exception:
            self.handleError(logging.makeLogRecord({"msg": "(log lines held for writing)"}))
        finally:
            self.release()

    def _write(self) -> None:
        if self._lines and self.max_write is not None:
            self._write_apart()
        elif self._lines:
            text = "".join(self._lines)
            self._lines.clear()
            self._chars = 0
            self.stream.write(text)
        if self.stream and hasattr(self.stream, "flush"):
            self.stream.flush()

    def _write_apart(self) -> None:
        """The held lines in groups of at most ``max_write`` bytes, each flushed on its own:
        one system call each, which no other process's write can cut into."""
        assert self.max_write is not None
        lines, self._lines = self._lines, []
        group: list[str] = []
        size = 0
        self._chars = 0
        for line in lines:
            length = len(line.encode("utf-8", "replace")) if not line.isascii() else len(line)
            if group and size + length > self.max_write:
                self.stream.write("".join(group))
                self.stream.flush()
                group, size = [], 0
            group.append(line)
            size += length
        self.stream.write("".join(group))
