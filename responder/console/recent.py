"""What the console remembers of this process's traffic: the recent webhooks with their log
lines, and the recent steps of each conversation (webhooks and timer firings).

Kept in memory, bounded, and filled by the server's observer hook: telling it of a webhook is
a few dictionary operations, and everything shown is built only when a page asks for it.
Each replica remembers its own traffic, from its start.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from responder.conversations import Conversation, Timer
from responder.outbound import OutboundCall
from responder.runtime.handling import Handled
from responder.runtime.outcome import Outcome
from responder.web.logs import TRACE_ID
from responder.web.trace import WebhookTrace

WEBHOOKS: Final = 500  # recent webhooks kept
CONVERSATIONS: Final = 1000  # conversations whose steps are kept
STEPS: Final = 50  # steps kept of each
LOG_LINES: Final = 20  # log lines kept of each webhook


@dataclass(frozen=True, slots=True)
class Seen:
    """One webhook: when it was answered, its trace id and its trace."""

    at: float
    trace_id: str
    trace: WebhookTrace


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a conversation: a webhook (``trace_id``) or a timer firing (``timer``).

    Only what the history shows, by reference (nothing is copied): a step must not keep the
    whole event and outcome alive, there are up to ``CONVERSATIONS * STEPS`` of them.
    """

    at: float
    kind: str  # the event's kind, or "timer"
    provider_event: str | None = None
    text: str | None = None
    digits: str | None = None
    trace_id: str | None = None
    timer: Timer | None = None
    transition: tuple[str, str, str] | None = None
    ended: str | None = None  # the outcome, when the step ended the conversation
    reply: str | None = None
    calls: tuple[OutboundCall, ...] = ()
    errors: tuple[str, ...] = ()
    matched: tuple[str, ...] = ()


def _step(at: float, outcome: Outcome, conversation: Conversation, **came: Any) -> Step:
    ended = None if conversation.status == "active" else conversation.outcome or "ended"
    return Step(
        at,
        transition=outcome.transition,
        ended=ended,
        reply=outcome.reply_text,
        calls=outcome.calls,
        errors=outcome.errors,
        matched=outcome.matched,
        **came,
    )


@dataclass(frozen=True, slots=True)
class LogLine:
    level: str
    logger: str
    message: str


class Recent:
    """The server's observer for the console; also a log handler for webhooks' log lines."""

    def __init__(self) -> None:
        self._webhooks: OrderedDict[str, Seen] = OrderedDict()
        self._steps: OrderedDict[str, deque[Step]] = OrderedDict()
        self._logs: OrderedDict[str, list[LogLine]] = OrderedDict()
        self._unnamed = itertools.count(1)
        # Log records may come from other threads (the SQLite store's, say).
        self._log_lock = threading.Lock()
        self.handler = _Capture(self)

    # -- told by the server ----------------------------------------------------------------

    def webhook(self, trace: WebhookTrace, trace_id: str | None, at: float) -> None:
        seen = Seen(at, trace_id or f"untraced-{next(self._unnamed)}", trace)
        self._webhooks[seen.trace_id] = seen
        if len(self._webhooks) > WEBHOOKS:
            self._webhooks.popitem(last=False)
        outcome = trace.outcome
        if outcome is None or outcome.conversation is None or not trace.fresh:
            return
        event = trace.event
        step = _step(
            at,
            outcome,
            outcome.conversation,
            kind=event.kind,
            provider_event=event.provider_event,
            text=event.text,
            digits=event.digits,
            trace_id=seen.trace_id,
        )
        self._step(outcome.conversation.key, step)

    def timer(self, timer: Timer, handled: Handled, at: float) -> None:
        outcome = handled.outcome
        if outcome is None or outcome.conversation is None or not handled.fresh:
            return
        self._step(timer.key, _step(at, outcome, outcome.conversation, kind="timer", timer=timer))

    def _step(self, key: str, step: Step) -> None:
        steps = self._steps.get(key)
        if steps is None:
            steps = self._steps[key] = deque(maxlen=STEPS)
            if len(self._steps) > CONVERSATIONS:
                self._steps.popitem(last=False)
        else:
            self._steps.move_to_end(key)
        steps.append(step)

    def log(self, trace_id: str, line: LogLine) -> None:
        with self._log_lock:
            lines = self._logs.get(trace_id)
            if lines is None:
                lines = self._logs[trace_id] = []
                if len(self._logs) > WEBHOOKS:
                    self._logs.popitem(last=False)
            if len(lines) < LOG_LINES:
                lines.append(line)

    # -- read by the pages -----------------------------------------------------------------

    def webhooks(self) -> Iterator[Seen]:
        """The recent webhooks, newest first."""
        return reversed(list(self._webhooks.values()))

    def find(self, trace_id: str) -> Seen | None:
        return self._webhooks.get(trace_id)

    def steps(self, key: str) -> list[Step]:
        """The recent steps of a conversation, newest first."""
        return list(reversed(self._steps.get(key, ())))

    def logs(self, trace_id: str) -> list[LogLine]:
        with self._log_lock:
            return list(self._logs.get(trace_id, ()))


class _Capture(logging.Handler):
    """Keeps the log lines written while a webhook was handled (those with its trace id);
    trace records themselves are the webhooks already kept."""

    def __init__(self, recent: Recent) -> None:
        super().__init__()
        self.recent = recent

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "trace"):
            return
        trace_id = getattr(record, "trace_id", None) or TRACE_ID.get()
        if not trace_id:
            return
        try:
            line = LogLine(record.levelname, record.name, record.getMessage())
        except Exception:  # a bad format string is the logging call's bug, not ours to raise
            self.handleError(record)
            return
        self.recent.log(str(trace_id), line)
