"""The engine: match an Event against the rules and decide what to answer and what to send.

Pure decisions plus reads from the store; every write is returned in the Outcome so the
caller can commit it atomically with the idempotency record. No aiohttp in here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from responder.conditions import Captures, Scope
from responder.events import Event
from responder.outbound import OutboundCall
from responder.rules.model import Http, Rule, RuleSet, Sms
from responder.stores.base import Store
from responder.templates import Template, TemplateError

log = logging.getLogger("responder.engine")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one event leads to: the reply, the calls to make and what to record."""

    reply_text: str | None = None
    variables: Mapping[str, Any] | None = None
    calls: tuple[OutboundCall, ...] = ()
    hits: tuple[str, ...] = ()
    matched: tuple[str, ...] = ()
    limited: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()


NOTHING = Outcome()


def template_context(event: Event, now: datetime) -> dict[str, Any]:
    """The names templates and expressions see (documented in the README)."""
    flow = event.flow
    return {
        "contact": event.contact or "",
        "contact_name": event.contact_name or "",
        "contact_uuid": event.contact_uuid or "",
        "urn": event.urn or "",
        "text": event.text or "",
        "digits": event.digits or "",
        "session": event.session or "",
        "status": event.status or "",
        "channel": event.channel,
        "channel_number": event.channel_number or "",
        "provider": event.provider,
        "kind": event.kind,
        "attachments": list(event.attachments),
        "values": {
            key: {"label": v.label, "category": v.category, "value": v.value, "text": v.text}
            for key, v in event.values.items()
        },
        "flow": {
            "id": flow.id,
            "uuid": flow.uuid,
            "name": flow.name,
            "step": flow.step,
            "run": flow.run,
        }
        if flow
        else {},
        "event": dict(event.raw),
        "captures": {},
        "now": now,
        "rule": "",
    }


class _Rendering:
    """Renders one rule's actions; a TemplateError aborts the whole rule."""

    def __init__(self, rule: Rule, context: Mapping[str, Any]) -> None:
        self.rule = rule
        self.context = context

    def text(self, template: Template) -> str:
        return template.render(self.context)

    def tree(self, value: Any) -> Any:
        if isinstance(value, Template):
            return value.render(self.context)
        if isinstance(value, dict):
            return {k: self.tree(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.tree(v) for v in value]
        return value


class Engine:
    """Matches events against one RuleSet; swap ``rules`` to reload."""

    def __init__(self, rules: RuleSet, store: Store, clock: Callable[[], float] = time.time):
        self.rules = rules
        self.store = store
        self.clock = clock

    async def handle(self, event: Event, key: str) -> Outcome:
        rules = self.rules  # one reference for the whole event, even across a reload
        candidates = rules.candidates(event.kind)
        if not candidates:
            return NOTHING
        now_ts = self.clock()
        now = datetime.fromtimestamp(now_ts, UTC)
        cache: dict[str, Any] = {}

        def context() -> Mapping[str, Any]:
            if "ctx" not in cache:
                cache["ctx"] = template_context(event, now)
            return cache["ctx"]  # type: ignore[no-any-return]

        scope = Scope(now=now, context=context)
        reply_text: str | None = None
        variables: dict[str, Any] | None = None
        calls: list[OutboundCall] = []
        hits: list[str] = []
        matched: list[str] = []
        limited: list[str] = []
        errors: list[str] = []
        reply_rule = ""
        for rule in candidates:
            try:
                captures = rule.when.test(event, scope)
            except TemplateError as exc:
                errors.append(f"rule {rule.name!r}: condition failed: {exc}")
                log.error("rule %r: condition failed: %s", rule.name, exc)
                continue
            if captures is None:
                continue
            if rule.limit is not None:
                limit_key = f"limit:{rule.name}:{event.channel}:{event.contact or '-'}"
                count = await self.store.count_hits(limit_key, now_ts - rule.limit.every)
                if count >= rule.limit.count:
                    limited.append(rule.name)
                    log.info("rule %r limited for %s", rule.name, event.contact)
                    continue
                hits.append(limit_key)
            try:
                produced = self._run(rule, event, key, captures, context(), len(calls))
            except TemplateError as exc:
                if rule.limit is not None:
                    hits.pop()
                errors.append(f"rule {rule.name!r}: {exc}")
                log.error("rule %r: template failed: %s", rule.name, exc)
                break
            matched.append(rule.name)
            text, rule_vars, rule_calls = produced
            if reply_text is None and variables is None:
                reply_text, variables = text, rule_vars
                reply_rule = rule.name
            elif text is not None or rule_vars is not None:
                log.warning("rule %r: a reply was already chosen; its reply is ignored", rule.name)
            calls.extend(rule_calls)
            if not rule.cont:
                break
        if event.provider == "hoiio" and reply_text is not None:
            # Hoiio ignores response bodies: a reply goes back as an SMS, credited to the rule
            # that chose the reply (not merely the first rule that matched).
            if event.contact:
                calls.append(
                    _hoiio_sms(f"{key}#{len(calls)}", event.contact, reply_text, reply_rule)
                )
            else:
                errors.append(f"rule {reply_rule!r}: reply has no recipient (no contact)")
                log.error("rule %r: cannot reply by SMS: the event has no contact", reply_rule)
            reply_text = None
        return Outcome(
            reply_text,
            variables,
            tuple(calls),
            tuple(hits),
            tuple(matched),
            tuple(limited),
            tuple(errors),
        )

    def _run(
        self,
        rule: Rule,
        event: Event,
        key: str,
        captures: Captures,
        base: Mapping[str, Any],
        offset: int,
    ) -> tuple[str | None, dict[str, Any] | None, list[OutboundCall]]:
        ctx = dict(base)
        ctx["captures"] = dict(captures)
        ctx["rule"] = rule.name
        r = _Rendering(rule, ctx)
        text = variables = None
        if rule.reply is not None:
            if rule.reply.text is not None:
                text = r.text(rule.reply.text)
            if rule.reply.json is not None:
                variables = r.tree(rule.reply.json)
        calls: list[OutboundCall] = []

        def next_key() -> str:
            return f"{key}#{offset + len(calls)}"

        if rule.hangup is not None and event.session:
            params: dict[str, Any] = {"session": event.session}
            if rule.hangup.say is not None:
                params["msg"] = r.text(rule.hangup.say)
            calls.append(
                OutboundCall(
                    next_key(),
                    "hoiio",
                    "ivr/end/hangup",
                    params,
                    rule=rule.name,
                    contact=event.contact,
                )
            )
        for sms in rule.sms:
            calls.append(_sms_call(next_key(), sms, event, r, rule.name))
        for http in rule.http:
            calls.append(_http_call(next_key(), http, r, rule.name, event.contact))
        return text, variables, calls


def _hoiio_sms(key: str, to: str | None, text: str, rule: str) -> OutboundCall:
    return OutboundCall(
        key, "hoiio", "sms/send", {"dest": to or "", "msg": text}, rule=rule, contact=to
    )


def _sms_call(key: str, sms: Sms, event: Event, r: _Rendering, rule: str) -> OutboundCall:
    text = r.text(sms.text)
    to = r.text(sms.to).strip() if sms.to is not None else (event.contact or "")
    if not to:
        raise TemplateError("sms has no recipient (the event has no contact and no 'to')")
    via = sms.via or event.provider
    if via == "hoiio":
        return _hoiio_sms(key, to, text, rule)
    urn = event.urn if sms.to is None and event.urn else to if ":" in to else f"tel:{to}"
    return OutboundCall(
        key, "textit", "broadcasts.json", {"urns": [urn], "text": text}, rule=rule, contact=to
    )


def _http_call(key: str, http: Http, r: _Rendering, rule: str, contact: str | None) -> OutboundCall:
    url = r.text(http.url).strip()
    if not url.startswith(("http://", "https://")):
        raise TemplateError(f"http url {url!r} is not an http(s) URL")
    headers = {name: r.text(t) for name, t in http.headers.items()}
    body = r.tree(http.json) if http.json is not None else None
    return OutboundCall(
        key,
        "http",
        url,
        {"json": body} if body is not None else {},
        rule=rule,
        contact=contact,
        method=http.method,
        headers=headers,
        timeout=http.timeout,
    )
