"""What the server tells an observer (the console) of each webhook and timer it handled.

Nothing is told when no observer is set: the webhook path then pays one ``None`` check.
"""

from __future__ import annotations

from typing import Protocol

from responder.conversations import Timer
from responder.runtime.handling import Handled
from responder.web.trace import WebhookTrace


class Observer(Protocol):
    """Told of every handled webhook and fired timer; must return at once (no I/O)."""

    def webhook(self, trace: WebhookTrace, trace_id: str | None, at: float) -> None:
        """A webhook was answered; ``trace`` is what its trace log record holds."""
        ...

    def timer(self, timer: Timer, handled: Handled, at: float) -> None:
        """A timer fired and its firing was committed."""
        ...
