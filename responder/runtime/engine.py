"""The engine: match an Event against the rules and decide what to answer and what to send.

Pure decisions plus reads from the store; every write is returned in the Outcome so the
caller can commit it atomically with the idempotency record. No aiohttp in here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from responder.actions import render
from responder.actions.context import template_context
from responder.appstate import AppState
from responder.conversations import (
    Conversation,
    Timer,
    TimerWrite,
    conversation_key,
    dial_key,
)
from responder.dialogues.runner import ENDED_KINDS, Env, Runner, Step
from responder.errors import StepError, TemplateError
from responder.events import Event
from responder.frozen import quick_init
from responder.matching.compliance import Compliance, event_contact
from responder.matching.conditions import Captures, Scope, words
from responder.outbound import HitLimit, OutboundCall
from responder.rules.model import Rule, RuleSet
from responder.runtime.guard import TIMEOUT_KIND, Guard, own_counts
from responder.runtime.outcome import NOTHING, Outcome
from responder.stores.base import Reader, Store, Wanted
from responder.stores.prefetched import Prefetched

log = logging.getLogger("responder.engine")


@quick_init
@dataclass(frozen=True, slots=True)
class Prepared:
    """A webhook's decision made ready (``Engine.prepare``): the rules it is decided on and
    what deciding will most likely read, read in one store call."""

    rules: RuleSet
    reads: Prefetched


def _conversation_key(event: Event) -> str | None:
    """The conversation an event may belong to: IVR by session, SMS by contact."""
    if event.kind.startswith("ivr.") and event.session:
        return conversation_key(event.channel, None, event.session)
    if event.kind == "sms.received" and event.contact:
        return conversation_key(event.channel, event.contact, None)
    return None


def _decision_key(event: Event, app_state: AppState | None) -> str | None:
    """The conversation an event is decided in: a dialled call's by its reference."""
    if app_state is not None and app_state.ref is not None:
        return dial_key(event.channel, app_state.ref)
    return _conversation_key(event)


def _can_reply(event: Event) -> bool:
    """Whether a text can go back in the webhook's answer (TextIt account events). A timer
    firing has no webhook to answer: its texts must go out through the API."""
    return event.provider == "textit" and event.kind not in ("flow.step", TIMEOUT_KIND)


class Engine:
    """Matches events against one RuleSet; swap ``rules`` to reload."""

    def __init__(
        self,
        rules: RuleSet,
        store: Store,
        runner: Runner,
        clock: Callable[[], float] = time.time,
    ):
        self.rules = rules
        self.store = store
        self.clock = clock
        self.runner = runner
        self.guard = Guard(store)

    async def prepare(self, event: Event, key: str, app_state: AppState | None = None) -> Prepared:
        """Take the rules and, in one store read, the response stored for ``key`` and what
        deciding ``event`` now will most likely read; ``handle`` decides from it."""
        rules = self.rules  # one reference for the whole event, even across a reload
        now = self.clock()
        wanted = Wanted(
            key,
            _decision_key(event, app_state),
            event_contact(event),
            own_counts(rules.compliance, event, now),
        )
        return Prepared(rules, await Prefetched.take(self.store, wanted, now))

    async def handle(
        self,
        event: Event,
        key: str,
        app_state: AppState | None = None,
        prepared: Prepared | None = None,
    ) -> Outcome:
        """Decide what ``event`` leads to. ``app_state`` is the verified Hoiio pass-on state;
        with ``prepared`` the decision is on its rules, at its time, reading from it."""
        reader: Reader
        if prepared is None:
            rules, reader, now = self.rules, self.store, self.clock()
        else:
            rules, reader, now = prepared.rules, prepared.reads, prepared.reads.now
        outcome = await self._decide(rules, event, key, app_state, reader, now)
        return await self.guard.apply(rules.compliance, event, outcome, now, reader)

    def _keyword(
        self,
        compliance: Compliance,
        keyword: str,
        event: Event,
        key: str,
        existing: Conversation | None,
        now_ts: float,
    ) -> Outcome:
        """STOP, START and HELP, answered ahead of every rule and dialogue."""
        contact = event_contact(event)
        assert contact is not None  # keyword() needs one
        text = {"stop": compliance.stop_reply, "start": compliance.start_reply}.get(
            keyword, compliance.help_reply
        )
        opt_outs: tuple[tuple[str, bool], ...] = ()
        conversation = None
        timer = None
        if keyword in ("stop", "start"):
            opt_outs = ((contact, keyword == "stop"),)
            log.info(
                "%s %s opted %s",
                event.provider,
                event.contact,
                "out" if keyword == "stop" else "in",
            )
        if keyword == "stop" and existing is not None and existing.active(now_ts):
            conversation = replace(existing, status="ended", outcome="opted out", updated=now_ts)
            timer = TimerWrite(existing.key, None)
        outcome = Outcome(
            reply_text=text,
            matched=(f"compliance:{keyword}",),
            opt_outs=opt_outs,
            conversation=conversation,
            expected_version=existing.version if existing is not None else 0,
            timer=timer,
            exempt=True,
        )
        return self._hoiio_reply(event, key, outcome, f"compliance:{keyword}")

    async def _decide(
        self,
        rules: RuleSet,
        event: Event,
        key: str,
        app_state: AppState | None,
        reader: Reader,
        now_ts: float,
    ) -> Outcome:
        now = datetime.fromtimestamp(now_ts, UTC)
        cache: dict[str, Any] = {}

        def context() -> Mapping[str, Any]:
            if "ctx" not in cache:
                cache["ctx"] = template_context(event, now, rules.calendars)
            return cache["ctx"]  # type: ignore[no-any-return]

        scope = Scope(now=now, context=context, calendars=rules.calendars)
        conv_key = _decision_key(event, app_state)
        existing = await reader.get_conversation(conv_key) if conv_key else None
        keyword = rules.compliance.keyword(event)
        if keyword is not None and self._anywhere_wins(
            rules, event, key, existing, now_ts, scope, context
        ):
            keyword = None  # the active dialogue's any: transition takes the word
        if keyword in ("stop", "start") or (keyword == "help" and rules.compliance.help_reply):
            return self._keyword(rules.compliance, keyword, event, key, existing, now_ts)
        opted: list[bool] = []  # looked up once, only when a dialogue needs to know

        async def opted_out() -> bool:
            if not opted:
                contact = event_contact(event)
                opted.append(contact is not None and bool(await reader.opted_out([contact])))
            return opted[0]

        if (
            keyword is None
            and existing is not None
            and _is_sms(existing)
            and existing.active(now_ts)
            and await opted_out()
        ):
            # Opted out on another channel (or before this conversation's channel heard STOP):
            # the conversation ends rather than going on without a word to the contact.
            return _end_opted_out(existing, now_ts)
        if conv_key is not None and keyword is None:
            # HELP without a help reply skips the dialogue (which must not swallow it) and
            # goes to the rules.
            taken = self._continue(
                rules, event, key, app_state, existing, conv_key, now_ts, scope, context
            )
            if taken is not None:
                return taken
        for dialogue in rules.starts.get(event.kind, ()):
            assert dialogue.start is not None
            captures = self._test(dialogue.start.when, event, scope, f"dialogue {dialogue.name!r}")
            if captures is None:
                continue
            if dialogue.mode == "sms" and await opted_out():
                log.info("dialogue %r not started for %s: opted out", dialogue.name, event.contact)
                continue
            target = conv_key or conversation_key(event.channel, event.contact, None)
            previous = existing if target == conv_key else await reader.get_conversation(target)
            env = Env(event, key, now_ts, scope, context())
            return self._run_step(
                event,
                partial(self.runner.start, dialogue, target, env, previous, captures),
                env,
                None,
            )
        if not rules.candidates(event.kind):
            return NOTHING
        return await self._match_rules(
            rules, event, key, now_ts, scope, context, conv_key, existing, opted_out, reader
        )

    def _anywhere_wins(
        self,
        rules: RuleSet,
        event: Event,
        key: str,
        existing: Conversation | None,
        now_ts: float,
        scope: Scope,
        context: Callable[[], Mapping[str, Any]],
    ) -> bool:
        """Whether a compliance word goes to the contact's active SMS dialogue instead: one
        of its ``any:`` transitions takes it. STOP itself always opts out."""
        if existing is None or not _is_sms(existing) or not existing.active(now_ts):
            return False
        dialogue = rules.dialogues.get(existing.dialogue)
        if dialogue is None or not dialogue.anywhere or words(event.text or "") == ("stop",):
            return False
        env = Env(event, key, now_ts, scope, context())
        return self.runner.takes_anywhere(dialogue, existing, env)

    def _test(self, when: Any, event: Event, scope: Scope, what: str) -> Captures | None:
        try:
            captures: Captures | None = when.test(event, scope)
        except TemplateError as exc:
            log.error("%s: condition failed: %s", what, exc)
            return None
        return captures

    def _continue(
        self,
        rules: RuleSet,
        event: Event,
        key: str,
        app_state: AppState | None,
        existing: Conversation | None,
        conv_key: str,
        now_ts: float,
        scope: Scope,
        context: Callable[[], Mapping[str, Any]],
    ) -> Outcome | None:
        """The outcome when an ongoing conversation takes the event, else None."""
        conversation = existing
        if app_state is not None:
            if existing is None or existing.dialogue != app_state.dialogue:
                # The store lost it (or never had it): the signed state is enough to go on.
                conversation = Conversation(
                    key=conv_key,
                    dialogue=app_state.dialogue,
                    state=app_state.state,
                    channel=event.channel,
                    provider=event.provider,
                    contact=event.contact,
                    session=event.session,
                    seq=app_state.seq,
                    ref=app_state.ref,
                    started=now_ts,
                    updated=now_ts,
                    version=existing.version if existing else 0,
                )
                log.warning(
                    "conversation %s restored from app_state %s", conv_key, app_state.encode()
                )
            elif existing.status != "active":
                log.info("notification for ended conversation %s ignored", conv_key)
                return NOTHING
            elif existing.seq != app_state.seq or existing.state != app_state.state:
                log.info(
                    "stale notification for %s (at %s:%d, got %s) ignored",
                    conv_key,
                    existing.state,
                    existing.seq,
                    app_state.encode(),
                )
                return NOTHING
        elif existing is None or not existing.active(now_ts):
            return None
        elif existing.session and event.kind not in ENDED_KINDS:
            log.warning("unsigned %s for IVR conversation %s ignored", event.kind, conv_key)
            return NOTHING
        assert conversation is not None
        env = Env(event, key, now_ts, scope, context())
        dialogue = rules.dialogues.get(conversation.dialogue)
        if dialogue is None or conversation.state not in dialogue.states:
            why = (
                f"dialogue {conversation.dialogue!r} no longer exists"
                if dialogue is None
                else f"state {conversation.state!r} no longer exists in {conversation.dialogue!r}"
            )
            log.warning("conversation %s ends: %s", conv_key, why)
            return self._run_step(
                event,
                partial(self.runner.abandon, conversation, env, why),
                env,
                None,
                source=conversation.state,
            )
        step = partial(self.runner.step, dialogue, conversation, env)
        return self._run_step(event, step, env, conversation)

    def _run_step(
        self,
        event: Event,
        make: Callable[[], Step],
        env: Env,
        current: Conversation | None,
        prefix: Outcome | None = None,
        source: str | None = None,
    ) -> Outcome:
        source = source or (current.state if current is not None else "(start)")
        try:
            step = make()
        except (TemplateError, StepError) as exc:
            log.error("dialogue step failed for %s: %s", event.contact or event.session, exc)
            if current is not None and current.session:
                step = self.runner.abandon(current, env, f"error: {exc}")
            elif event.provider == "hoiio" and event.session and event.kind.startswith("ivr."):
                # A call that cannot start its dialogue is hung up, not left in silence.
                return Outcome(errors=(f"dialogue: {exc}",), calls=(_hangup(env, event),))
            else:
                return Outcome(errors=(f"dialogue: {exc}",))
        for note in step.notes:
            log.info("%s", note)
        if not step.changed:
            return NOTHING if prefix is None else prefix
        reply_text = prefix.reply_text if prefix else None
        calls = list(prefix.calls) if prefix else []
        name = f"dialogue:{step.conversation.dialogue}"
        blanks = list(prefix.blanks) if prefix else []
        blanks += [name] * step.blanks
        texts = []
        for text in step.texts:
            if render.blank(text):
                log.warning("%s: a text rendered empty; not sent", name)
                blanks.append(name)
            else:
                texts.append(text)
        if texts and reply_text is None and _can_reply(event):
            reply_text = texts.pop(0)
        for text in texts:
            call = self.runner.text_call(env, step, text)
            if call is not None:
                step.calls.append(call)
        calls.extend(step.calls)
        if event.provider == "hoiio" and reply_text is not None and prefix is None:
            reply = render.text_call(
                key=f"{env.event_key}#r",
                via="hoiio",
                to=event.contact or "",
                text=reply_text,
                rule=name,
            )
            if reply is not None:
                calls.append(reply)
            reply_text = None
        return Outcome(
            reply_text=reply_text,
            variables=prefix.variables if prefix else None,
            calls=tuple(calls),
            hits=prefix.hits if prefix else (),
            limits=prefix.limits if prefix else (),
            matched=(prefix.matched if prefix else ())
            + (f"dialogue:{step.conversation.dialogue}",),
            limited=prefix.limited if prefix else (),
            errors=prefix.errors if prefix else (),
            conversation=step.conversation,
            expected_version=step.expected_version,
            timer=step.timer,
            transition=(step.conversation.dialogue, source, step.conversation.state),
            moves=tuple((step.conversation.dialogue, *move) for move in step.moves),
            blanks=tuple(blanks),
        )

    async def handle_timer(self, timer: Timer) -> tuple[Outcome, str]:
        """What a due timer leads to, and the idempotency key of its firing."""
        key = f"timer:{timer.key}:{timer.seq}"
        conversation = await self.store.get_conversation(timer.key)
        now_ts = self.clock()
        clear = Outcome(timer=TimerWrite(timer.key, None))
        if conversation is None or conversation.status != "active" or conversation.seq != timer.seq:
            return clear, key
        if (
            _is_sms(conversation)
            and conversation.contact is not None
            and await self.store.opted_out([conversation.contact])
        ):
            return _end_opted_out(conversation, now_ts), key
        dialogue = self.rules.dialogues.get(conversation.dialogue)
        state = dialogue.states.get(conversation.state) if dialogue else None
        event = Event(
            provider=conversation.provider,
            channel=conversation.channel,
            kind=TIMEOUT_KIND,
            contact=conversation.contact,
            session=conversation.session,
        )
        now = datetime.fromtimestamp(now_ts, UTC)
        calendars = self.rules.calendars
        context = template_context(event, now, calendars)
        scope = Scope(now=now, context=lambda: context, calendars=calendars)
        env = Env(event, key, now_ts, scope, context)
        if dialogue is None or state is None or state.wait is None:
            why = "dialogue or state no longer exists"
            outcome = self._run_step(
                event,
                partial(self.runner.abandon, conversation, env, why),
                env,
                None,
                source=conversation.state,
            )
        else:
            outcome = self._run_step(
                event,
                partial(self.runner.timeout, dialogue, conversation, env),
                env,
                conversation,
            )
        return await self.guard.apply(self.rules.compliance, event, outcome, now_ts), key

    async def _match_rules(
        self,
        rules: RuleSet,
        event: Event,
        key: str,
        now_ts: float,
        scope: Scope,
        context: Callable[[], Mapping[str, Any]],
        conv_key: str | None,
        existing: Conversation | None,
        opted_out: Callable[[], Awaitable[bool]],
        reader: Reader,
    ) -> Outcome:
        candidates = rules.candidates_for(event)
        reply_text: str | None = None
        variables: dict[str, Any] | None = None
        calls: list[OutboundCall] = []
        hits: list[str] = []
        limits: list[HitLimit] = []
        matched: list[str] = []
        limited: list[str] = []
        errors: list[str] = []
        blanks: list[str] = []
        reply_rule = ""
        start: tuple[str, Captures] | None = None
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
                count = await reader.count_hits(limit_key, now_ts - rule.limit.every)
                if count >= rule.limit.count:
                    limited.append(rule.name)
                    log.info("rule %r limited for %s", rule.name, event.contact)
                    continue
                hits.append(limit_key)
                limits.append(HitLimit(limit_key, now_ts - rule.limit.every, rule.limit.count))
            try:
                produced = self._run(rule, event, key, captures, context(), len(calls), blanks)
            except TemplateError as exc:
                if rule.limit is not None:
                    hits.pop()
                    limits.pop()
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
            if rule.start is not None and start is None:
                start = (rule.start, captures)
            if not rule.cont:
                break
        if start is not None and rules.dialogues[start[0]].mode == "sms" and await opted_out():
            log.info("dialogue %r not started for %s: opted out", start[0], event.contact)
            start = None
        decided = Outcome(
            reply_text=reply_text,
            variables=variables,
            calls=tuple(calls),
            hits=tuple(hits),
            matched=tuple(matched),
            limited=tuple(limited),
            errors=tuple(errors),
            limits=tuple(limits),
            blanks=tuple(blanks),
        )
        if start is not None:
            dialogue = rules.dialogues[start[0]]
            target = conv_key or conversation_key(event.channel, event.contact, None)
            previous = existing if target == conv_key else await reader.get_conversation(target)
            env = Env(event, key, now_ts, scope, context(), len(calls))
            captured = start[1]
            outcome = self._run_step(
                event,
                partial(self.runner.start, dialogue, target, env, previous, captured),
                env,
                None,
                decided,
            )
            return self._hoiio_reply(event, key, outcome, reply_rule)
        return self._hoiio_reply(event, key, decided, reply_rule)

    def _hoiio_reply(self, event: Event, key: str, outcome: Outcome, reply_rule: str) -> Outcome:
        if event.provider != "hoiio" or outcome.reply_text is None:
            return outcome
        # Hoiio ignores response bodies: a reply goes back as an SMS, credited to the rule
        # that chose the reply (not merely the first rule that matched).
        calls = list(outcome.calls)
        errors = list(outcome.errors)
        if event.contact:
            reply = render.text_call(
                key=f"{key}#{len(calls)}",
                via="hoiio",
                to=event.contact,
                text=outcome.reply_text,
                rule=reply_rule,
            )
            if reply is not None:
                calls.append(reply)
        else:
            errors.append(f"rule {reply_rule!r}: reply has no recipient (no contact)")
            log.error("rule %r: cannot reply by SMS: the event has no contact", reply_rule)
        return replace(outcome, reply_text=None, calls=tuple(calls), errors=tuple(errors))

    def _run(
        self,
        rule: Rule,
        event: Event,
        key: str,
        captures: Captures,
        base: Mapping[str, Any],
        offset: int,
        blanks: list[str],
    ) -> tuple[str | None, dict[str, Any] | None, list[OutboundCall]]:
        ctx = dict(base)
        ctx["captures"] = dict(captures)
        ctx["rule"] = rule.name
        text, variables = render.reply(rule.reply, ctx) if rule.reply is not None else (None, None)
        if text is not None and not text.strip():
            log.warning("rule %r: its reply text rendered empty; not sent", rule.name)
            blanks.append(rule.name)
            text = None
        calls: list[OutboundCall] = []

        def next_key() -> str:
            return f"{key}#{offset + len(calls)}"

        if rule.hangup is not None and event.session:
            calls.append(
                render.hangup(
                    rule.hangup.say,
                    ctx,
                    session=event.session,
                    key=next_key(),
                    rule=rule.name,
                    lane=event.contact,
                )
            )
        for sms in rule.sms:
            call = render.sms(
                sms,
                ctx,
                key=next_key(),
                rule=rule.name,
                contact=event.contact,
                urn=event.urn,
                provider=event.provider,
            )
            if call is None:
                blanks.append(rule.name)
            else:
                calls.append(call)
        for http in rule.http:
            calls.append(
                render.http(http, ctx, key=next_key(), rule=rule.name, contact=event.contact)
            )
        return text, variables, calls


def _is_sms(conversation: Conversation) -> bool:
    """An SMS conversation (not a call: those have a session, or a dial reference)."""
    return conversation.session is None and conversation.ref is None


def _end_opted_out(conversation: Conversation, now: float) -> Outcome:
    log.info("conversation %s ended: the contact opted out", conversation.key)
    return Outcome(
        matched=("compliance:opted-out",),
        conversation=replace(conversation, status="ended", outcome="opted out", updated=now),
        expected_version=conversation.version,
        timer=TimerWrite(conversation.key, None),
    )


def _hangup(env: Env, event: Event) -> OutboundCall:
    session = event.session or ""
    key = f"{env.event_key}#d{env.call_offset}"
    return render.hangup(None, {}, session=session, key=key, rule="dialogue", lane=session)
