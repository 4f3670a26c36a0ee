"""Compare what a step led to with what its ``expect`` says; every difference is one line."""

from __future__ import annotations

import re
from typing import Any

from responder.conversations import Conversation
from responder.outbound import OutboundCall
from responder.transcripts.harness import Observation
from responder.transcripts.language import ABSENT, CallMatch, Expect, TextMatch


def differences(
    expect: Expect | None, seen: Observation, conversation: Conversation | None
) -> list[str]:
    """Every way ``seen`` differs from ``expect``; run-time rule errors always count."""
    out: list[str] = []
    if expect is None:
        return [f"rule error: {e}" for e in seen.errors]
    if expect.reply is not ABSENT:
        if expect.reply is None:
            if seen.reply is not None:
                out.append(f"reply: expected no reply, got {seen.reply!r}")
        elif not expect.reply.matches(seen.reply):
            got = "no reply" if seen.reply is None else repr(seen.reply)
            out.append(f"reply: expected {expect.reply}, got {got}")
    if expect.json is not ABSENT:
        out.extend(subset("json", expect.json, seen.body))
    if expect.nothing_sent:
        sent = ([f"reply {seen.reply!r}"] if seen.body is not None else []) + [
            describe(c) for c in seen.calls + seen.held
        ]
        if sent:
            out.append(f"expected nothing sent, got {'; '.join(sent)}")
    if expect.calls is not ABSENT:
        out.extend(_calls("calls", expect.calls, seen.calls))
    if expect.held is not ABSENT:
        out.extend(_calls("held", expect.held, seen.held))
    if expect.matched is not ABSENT and list(expect.matched) != seen.matched:
        out.append(f"matched: expected {list(expect.matched)}, got {seen.matched}")
    out.extend(_conversation(expect, conversation))
    if expect.errors is ABSENT:
        out.extend(f"rule error: {e}" for e in seen.errors)
    else:
        wanted: list[TextMatch] = list(expect.errors)
        if len(wanted) != len(seen.errors) or not all(
            w.matches(e) for w, e in zip(wanted, seen.errors, strict=False)
        ):
            out.append(f"errors: expected {[str(w) for w in wanted]}, got {seen.errors}")
    return out


def _conversation(expect: Expect, conversation: Conversation | None) -> list[str]:
    out: list[str] = []
    wants = [
        k for k in ("dialogue", "state", "outcome", "vars") if getattr(expect, k) is not ABSENT
    ]
    if expect.status is not ABSENT:
        got = conversation.status if conversation is not None else "none"
        if got != expect.status:
            out.append(f"status: expected {expect.status}, got {got}")
    if not wants:
        return out
    if conversation is None:
        return [*out, f"{', '.join(wants)}: expected a conversation, there is none"]
    if expect.dialogue is not ABSENT and conversation.dialogue != expect.dialogue:
        out.append(f"dialogue: expected {expect.dialogue!r}, got {conversation.dialogue!r}")
    if expect.state is not ABSENT and conversation.state != expect.state:
        out.append(f"state: expected {expect.state!r}, got {conversation.state!r}")
    if expect.outcome is not ABSENT and not expect.outcome.matches(conversation.outcome):
        out.append(f"outcome: expected {expect.outcome}, got {conversation.outcome!r}")
    if expect.vars is not ABSENT:
        out.extend(subset("vars", expect.vars, conversation.vars))
    return out


def _calls(what: str, expected: tuple[CallMatch, ...], got: list[OutboundCall]) -> list[str]:
    out: list[str] = []
    for index, (want, call) in enumerate(zip(expected, got, strict=False)):
        problems = match_call(want, call)
        if problems:
            out.append(f"{what}[{index}]: {'; '.join(problems)} (got {describe(call)})")
    if len(expected) != len(got):
        extra = [describe(c) for c in got[len(expected) :]]
        tail = f"; not expected: {'; '.join(extra)}" if extra else ""
        out.append(f"{what}: expected {len(expected)} call(s), got {len(got)}{tail}")
    return out


def sms_of(call: OutboundCall) -> tuple[str, str, str] | None:
    """(via, to, text) when the call sends an SMS."""
    if call.provider == "hoiio" and call.endpoint == "sms/send":
        return "hoiio", str(call.params.get("dest", "")), str(call.params.get("msg", ""))
    if call.provider == "textit" and call.endpoint in ("broadcasts.json", "messages.json"):
        urns = call.params.get("urns") or []
        to = str(urns[0]).removeprefix("tel:") if urns else str(call.contact or "")
        return "textit", to, str(call.params.get("text", ""))
    return None


def match_call(want: CallMatch, call: OutboundCall) -> list[str]:
    if want.kind == "sms":
        sms = sms_of(call)
        if sms is None:
            return ["expected an SMS"]
        via, to, text = sms
        out = [] if want.target.matches(text) else [f"text: expected {want.target}"]
        if want.to is not None and want.to != to:
            out.append(f"to: expected {want.to!r}, got {to!r}")
        if want.via is not None and want.via != via:
            out.append(f"via: expected {want.via}, got {via}")
        return out
    if call.provider != want.kind:
        return [f"expected a {want.kind} call"]
    out = [] if want.target.matches(call.endpoint) else [f"expected {want.target}"]
    if want.say is not None and not want.say.matches(call.params.get("msg")):
        out.append(f"say: expected {want.say}, got {call.params.get('msg')!r}")
    if want.params is not None:
        out.extend(subset("params", want.params, call.params))
    if want.json is not None:
        out.extend(subset("json", want.json, call.params.get("json")))
    if want.method is not None and want.method.upper() != call.method.upper():
        out.append(f"method: expected {want.method}, got {call.method}")
    return out


def subset(path: str, expected: Any, got: Any) -> list[str]:
    """Differences where ``got`` does not contain ``expected``: mappings may have more keys,
    lists must match item by item, ``{regex: ...}`` is a pattern, scalars compare as text."""
    if isinstance(expected, dict) and set(expected) == {"regex"}:
        try:
            pattern = TextMatch(regex=re.compile(str(expected["regex"])))
        except re.error as exc:
            return [f"{path}: bad regex {expected['regex']!r}: {exc}"]
        if got is None or isinstance(got, dict | list) or not pattern.matches(got):
            return [f"{path}: expected {pattern}, got {got!r}"]
        return []
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return [f"{path}: expected a mapping, got {got!r}"]
        out: list[str] = []
        for key, value in expected.items():
            if key not in got:
                out.append(f"{path}.{key}: missing (expected {value!r})")
            else:
                out.extend(subset(f"{path}.{key}", value, got[key]))
        return out
    if isinstance(expected, list):
        if not isinstance(got, list) or len(got) != len(expected):
            return [f"{path}: expected {expected!r}, got {got!r}"]
        return [
            d
            for i, (e, g) in enumerate(zip(expected, got, strict=True))
            for d in subset(f"{path}[{i}]", e, g)
        ]
    if expected == got or (
        got is not None and not isinstance(got, dict | list) and _text(expected) == _text(got)
    ):
        return []
    return [f"{path}: expected {expected!r}, got {got!r}"]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def describe(call: OutboundCall) -> str:
    sms = sms_of(call)
    if sms is not None:
        return f"sms via {sms[0]} to {sms[1]}: {sms[2]!r}"
    if call.provider == "http":
        body = call.params.get("json")
        return f"http {call.method} {call.endpoint}" + (f" {body}" if body is not None else "")
    params = {k: v for k, v in call.params.items() if k != "notify_url"}
    return f"{call.provider} {call.endpoint} {params}"
