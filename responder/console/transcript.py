"""A simulator session written down as a transcript test (``*.test.yaml``): every step the
user played, expecting exactly what it led to, so ``responder test`` plays it back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import yaml

from responder.conversations import Conversation
from responder.outbound import OutboundCall
from responder.transcripts.expect import sms_of
from responder.transcripts.harness import Observation, Setup
from responder.transcripts.run import SUFFIXES

# Parameters the harness makes up for each run (links back to the server, its session ids):
# expecting them would tie the test to one run.
RUN_PARAMS: Final = frozenset({"notify_url", "msg", "session", "txn_ref"})
SUFFIX: Final = SUFFIXES[0]


@dataclass(frozen=True, slots=True)
class Played:
    """One step as the transcript writes it: the action and its value, and the expectation."""

    action: str
    value: Any
    expect: dict[str, Any]

    def as_yaml(self) -> dict[str, Any]:
        return {self.action: self.value, "expect": self.expect}


def expectation(
    seen: Observation, conversation: Conversation | None, provider: str
) -> dict[str, Any]:
    """What a step led to, as a transcript's ``expect``."""
    expect: dict[str, Any] = {}
    if provider == "textit":
        expect["reply"] = seen.reply  # None: "no reply"
    expect["calls"] = [call_match(call) for call in seen.calls]
    if seen.held:
        expect["held"] = [call_match(call) for call in seen.held]
    if seen.errors:
        expect["errors"] = list(seen.errors)
    if conversation is None:
        expect["status"] = "none"
        return expect
    expect["dialogue"] = conversation.dialogue
    expect["state"] = conversation.state
    expect["status"] = conversation.status
    if conversation.outcome is not None:
        expect["outcome"] = conversation.outcome
    if conversation.vars:
        expect["vars"] = dict(conversation.vars)
    return expect


def call_match(call: OutboundCall) -> dict[str, Any]:
    """An outbound call as a transcript expects it."""
    sms = sms_of(call)
    if sms is not None:
        via, to, text = sms
        return {"sms": text, "to": to, "via": via}
    if call.provider == "http":
        match: dict[str, Any] = {"http": call.endpoint}
        if call.method.upper() != "POST":
            match["method"] = call.method
        if call.params.get("json") is not None:
            match["json"] = call.params["json"]
        return match
    match = {call.provider: call.endpoint}
    if call.params.get("msg"):
        match["say"] = call.params["msg"]
    params = {k: v for k, v in call.params.items() if k not in RUN_PARAMS}
    if params:
        match["params"] = params
    return match


def write(setup: Setup, steps: Sequence[Played], rules: Sequence[str], name: str) -> str:
    """The transcript file's text."""
    given: dict[str, Any] = {"provider": setup.provider}
    if setup.channel != setup.provider:
        given["channel"] = setup.channel
    given["contact"] = setup.contact
    given["number"] = setup.number
    given["start"] = setup.start.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    given["timezone"] = "UTC"
    document = {
        "given": given,
        "tests": [{"name": name, "steps": [step.as_yaml() for step in steps]}],
    }
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = (
        f"# Recorded in the responder console's simulator on {made}, against the rules in\n"
        f"# {', '.join(rules) or '(none)'}.\n"
        "# Save it beside those rules (or list them under given: rules:) and run\n"
        "#   responder test FILE\n"
    )
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    return head + body
