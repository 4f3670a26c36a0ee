"""What the console remembers of the traffic: bounded, newest first, each conversation's steps
and each webhook's log lines."""

from __future__ import annotations

import logging

from responder.console import recent as r
from responder.conversations import Conversation, Timer
from responder.events import Event
from responder.outbound import StoredResponse
from responder.runtime.handling import Handled
from responder.runtime.outcome import Outcome
from responder.web.logs import TRACE_ID
from responder.web.trace import WebhookTrace


def trace(n: int, contact: str = "+1", fresh: bool = True) -> WebhookTrace:
    talk = Conversation(f"textit:sms:{contact}", "d", f"s{n}", "textit", "textit", contact=contact)
    outcome = Outcome(conversation=talk, transition=("d", "a", f"s{n}"))
    event = Event("textit", "textit", "sms.received", contact=contact, text=str(n))
    return WebhookTrace(event, f"k{n}", outcome, fresh=fresh, masked=False, timings={})


def test_the_recent_webhooks_are_bounded_and_newest_first() -> None:
    recent = r.Recent()
    for n in range(r.WEBHOOKS + 10):
        recent.webhook(trace(n), f"t{n}", float(n))
    shown = list(recent.webhooks())
    assert len(shown) == r.WEBHOOKS
    assert shown[0].trace_id == f"t{r.WEBHOOKS + 9}"
    assert recent.find("t0") is None
    assert recent.find("t10") is not None
    recent.webhook(trace(1), None, 1.0)  # outside a request: still kept, under a name
    assert next(iter(recent.webhooks())).trace_id.startswith("untraced-")


def test_each_conversation_keeps_its_last_steps_webhooks_and_timers() -> None:
    recent = r.Recent()
    for n in range(r.STEPS + 5):
        recent.webhook(trace(n), f"t{n}", float(n))
    recent.webhook(trace(999, fresh=False), "dup", 0.0)  # a concurrent copy: not a step
    steps = recent.steps("textit:sms:+1")
    assert len(steps) == r.STEPS
    assert steps[0].trace_id == f"t{r.STEPS + 4}"
    assert steps[0].text == str(r.STEPS + 4)
    assert steps[0].transition == ("d", "a", f"s{r.STEPS + 4}")
    talk = Conversation("textit:sms:+1", "d", "late", "textit", "textit")
    handled = Handled(
        StoredResponse(200, "text/plain", b""), Outcome(conversation=talk), fresh=True
    )
    recent.timer(Timer("textit:sms:+1", 5.0, 3), handled, 9.0)
    newest = recent.steps("textit:sms:+1")[0]
    assert newest.timer == Timer("textit:sms:+1", 5.0, 3)
    assert newest.kind == "timer"
    assert newest.trace_id is None
    assert recent.steps("textit:sms:+2") == []


def test_only_so_many_conversations_are_remembered() -> None:
    recent = r.Recent()
    for n in range(r.CONVERSATIONS + 1):
        recent.webhook(trace(0, contact=f"+{n}"), f"t{n}", 0.0)
    assert recent.steps("textit:sms:+0") == []
    assert len(recent.steps(f"textit:sms:+{r.CONVERSATIONS}")) == 1


def test_log_lines_are_kept_by_trace_id() -> None:
    recent = r.Recent()
    logger = logging.getLogger("responder.test-recent")
    logger.addHandler(recent.handler)
    logger.setLevel(logging.INFO)
    try:
        token = TRACE_ID.set("abc")
        try:
            logger.warning("rule %s failed", "x")
            for n in range(r.LOG_LINES + 3):
                logger.info("line %d", n)
        finally:
            TRACE_ID.reset(token)
        logger.warning("no webhook here")
    finally:
        logger.removeHandler(recent.handler)
    lines = recent.logs("abc")
    assert lines[0] == r.LogLine("WARNING", "responder.test-recent", "rule x failed")
    assert len(lines) == r.LOG_LINES
    assert recent.logs("zzz") == []
