"""Progress of a long job on stderr: a bar on a terminal, a counter line otherwise."""

from __future__ import annotations

import time
from typing import IO, Final

WIDTH: Final = 30
REDRAW_EVERY: Final = 0.1  # seconds between redraws of the bar
# Without a terminal, a counter line at every tenth of a job of at least this many items.
COUNTER_FROM: Final = 1000


class Progress:
    """Call with the number of items done; ``finish()`` ends the line."""

    def __init__(self, total: int, out: IO[str], label: str = "event(s)") -> None:
        self.total = total
        self.label = label
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        # The bar redraws its line with \r, which an escaping stream would show as text.
        self.out: IO[str] = getattr(out, "raw", out) if self.tty else out
        self._drawn = 0.0
        self._next_tenth = 1

    def __call__(self, done: int) -> None:
        if self.total <= 0:
            return
        if self.tty:
            now = time.monotonic()
            if now - self._drawn >= REDRAW_EVERY or done == self.total:
                self._drawn = now
                filled = WIDTH * done // self.total
                bar = "#" * filled + "." * (WIDTH - filled)
                self.out.write(f"\r[{bar}] {done}/{self.total} {self.label}")
                self.out.flush()
        elif self.total >= COUNTER_FROM and done * 10 >= self._next_tenth * self.total:
            self._next_tenth = done * 10 // self.total + 1
            self.out.write(f"replayed {done}/{self.total} {self.label}\n")
            self.out.flush()

    def finish(self) -> None:
        if self.tty and self.total > 0:
            self.out.write("\n")
            self.out.flush()
