"""Step a conversation through its dialogue: choose the transition, enter the next state,
and say what that means — texts for the contact, IVR blocks and other calls, a timer."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final
from urllib.parse import urlencode

from responder.actions import render
from responder.appstate import AppState, Signer
from responder.conversations import Conversation, TimerWrite, dial_key
from responder.dialogues import model as m
from responder.errors import AppStateError, TemplateError
from responder.events import Event
from responder.matching.conditions import Captures, Scope
from responder.outbound import OutboundCall
from responder.templating.templates import Template

log = logging.getLogger("responder.dialogue")

# A chain of states entered without waiting (next: ...) longer than this is a loop.
MAX_CHAIN: Final = 20
# Channels are configured, so few; the bound keeps an unexpected many from growing the cache.
MAX_BASES: Final = 64
ENDED_KINDS: Final = frozenset({"ivr.ended", "ivr.hangup"})


@dataclass(slots=True)
class Step:
    """What one dialogue step produced."""

    conversation: Conversation
    expected_version: int
    texts: list[str] = field(default_factory=list)
    calls: list[OutboundCall] = field(default_factory=list)
    timer: TimerWrite | None = None
    notes: list[str] = field(default_factory=list)
    changed: bool = True
    # (source, trigger, destination) of every move the dialogue's machine made, in order
    moves: list[tuple[str, str, str]] = field(default_factory=list)
    blanks: int = 0  # SMS whose text rendered blank, not sent


@dataclass(frozen=True, slots=True)
class Env:
    """Everything a step needs besides the dialogue and the conversation."""

    event: Event
    event_key: str
    now: float
    scope: Scope
    base_context: Mapping[str, Any]
    call_offset: int = 0


class Runner:
    """Runs dialogues; IVR blocks carry a signed app_state in their notify_url."""

    def __init__(
        self,
        signer: Signer,
        public_url: str | None,
        hoiio_channel: str = "hoiio",
        secrets: Mapping[str, str] | None = None,
    ) -> None:
        self.signer = signer
        self.public_url = public_url.rstrip("/") if public_url else None
        self.hoiio_channel = hoiio_channel
        # Webhook secrets by channel: a notify_url must pass the check its channel makes.
        self.secrets = dict(secrets or {})
        # notify_url bases by channel (public URL, path and secret): made once each.
        self._bases: dict[str, str] = {}

    # -- entry points ------------------------------------------------------------------

    def start(
        self,
        dialogue: m.Dialogue,
        key: str,
        env: Env,
        previous: Conversation | None,
        captures: Captures | None = None,
    ) -> Step:
        event = env.event
        ref = None
        channel, provider = event.channel, event.provider
        if isinstance(dialogue.states[dialogue.initial].block, m.Dial):
            # A call we place has no session until Hoiio answers: a reference made from the
            # event key (stable across retried webhooks) names the conversation instead.
            ref = hashlib.sha256(env.event_key.encode()).hexdigest()[:16]
            channel, provider, previous = self.hoiio_channel, "hoiio", None
            key = dial_key(channel, ref)
        conversation = Conversation(
            key=key,
            dialogue=dialogue.name,
            state=dialogue.initial,
            channel=channel,
            provider=provider,
            contact=event.contact,
            session=event.session if dialogue.mode == "ivr" and ref is None else None,
            vars={"captures": dict(captures)} if captures else {},
            started=env.now,
            updated=env.now,
            expires=self._expiry(dialogue, env.now),
            ref=ref,
            # Steps keep counting across a restart on the same key: a timer's firing is keyed
            # by (conversation key, step), which must not repeat a finished conversation's.
            seq=previous.seq if previous is not None else 0,
        )
        step = Step(conversation, previous.version if previous else 0)
        self._enter(dialogue, step, dialogue.initial, env, None)
        step.notes.append(f"dialogue {dialogue.name!r} started in {step.conversation.state!r}")
        return step

    def step(self, dialogue: m.Dialogue, conversation: Conversation, env: Env) -> Step:
        event = env.event
        step = Step(
            replace(conversation, updated=env.now, expires=self._expiry(dialogue, env.now)),
            conversation.version,
        )
        state = dialogue.states[conversation.state]
        if event.kind in ENDED_KINDS:
            self._end(step, conversation.outcome or state.outcome or f"call ended in {state.name}")
            return step
        if dialogue.mode == "ivr":
            self._step_ivr(dialogue, state, step, env)
        else:
            self._step_sms(dialogue, state, step, env)
        return step

    def timeout(self, dialogue: m.Dialogue, conversation: Conversation, env: Env) -> Step:
        state = dialogue.states[conversation.state]
        step = Step(replace(conversation, updated=env.now), conversation.version)
        assert state.wait is not None
        target, trigger = self._target(
            dialogue, conversation, state.wait.goto, None, None, f"{state.name}:timeout"
        )
        self._move(dialogue, step, target, trigger, env, {})
        return step

    def takes_anywhere(self, dialogue: m.Dialogue, conversation: Conversation, env: Env) -> bool:
        """Whether one of the dialogue's ``any:`` transitions takes the event in the
        conversation's state (so that it wins over a compliance word)."""
        state = dialogue.states.get(conversation.state)
        if state is None or not state.waits or not dialogue.anywhere:
            return False
        chosen = self._choose(dialogue, state, env, conversation)
        return chosen is not None and chosen[0].startswith("any:")

    def abandon(self, conversation: Conversation, env: Env, why: str) -> Step:
        """End a conversation whose dialogue or state no longer exists (rules changed)."""
        step = Step(replace(conversation, updated=env.now), conversation.version)
        if conversation.session and conversation.provider == "hoiio":
            step.calls.append(
                self._call(env, step, "ivr/end/hangup", {"session": conversation.session})
            )
        self._end(step, f"abandoned: {why}")
        return step

    # -- stepping ----------------------------------------------------------------------

    def _step_ivr(self, dialogue: m.Dialogue, state: m.State, step: Step, env: Env) -> None:
        event = env.event
        block = state.block
        if isinstance(block, m.Gather):
            if event.kind != "ivr.gather" and event.digits is None:
                return self._ignore(step, f"{event.kind} while waiting for keys")
            chosen = self._choose(dialogue, state, env, step.conversation)
            if chosen is None:
                target, trigger = self._target(
                    dialogue, step.conversation, state.name, None, None, f"{state.name}:repeat"
                )
                return self._move(dialogue, step, target, trigger, env, {})
            trigger, transition, captures = chosen
            return self._follow(dialogue, step, trigger, transition, captures, env)
        if isinstance(block, m.Dial):
            if event.kind != "ivr.dial":
                return self._ignore(step, f"{event.kind} while dialling")
            status = (event.raw.get("dial_status") or event.status or "").lower()
            if status and status != "answered":
                return self._end(step, f"not answered ({status})")
            step.conversation = replace(step.conversation, session=event.session)
            return self._after_block(dialogue, state, step, env)
        if isinstance(block, m.Record):
            if event.kind != "ivr.record":
                return self._ignore(step, f"{event.kind} while recording")
            recording = event.raw.get("record_url", "")
            step.conversation = replace(
                step.conversation, vars={**step.conversation.vars, "recording": recording}
            )
            return self._after_block(dialogue, state, step, env)
        if isinstance(block, m.Transfer):
            if event.kind != "ivr.transfer":
                return self._ignore(step, f"{event.kind} during a transfer")
            if (event.status or "").lower() == "answered":
                return self._ignore(step, "transfer answered; waiting for the call to end")
            if block.on_failure is None:
                return self._end(step, f"transfer failed ({event.status})")
            target, trigger = self._target(
                dialogue, step.conversation, block.on_failure, None, None, f"{state.name}:failure"
            )
            return self._move(dialogue, step, target, trigger, env, {})
        if event.kind in ("ivr.play", "ivr.unhold", "ivr.monitor", "ivr.dial"):
            return self._after_block(dialogue, state, step, env)
        return self._ignore(step, f"{event.kind} not expected in state {state.name!r}")

    def _after_block(self, dialogue: m.Dialogue, state: m.State, step: Step, env: Env) -> None:
        chosen = self._choose(dialogue, state, env, step.conversation)
        if chosen is not None:
            trigger, transition, captures = chosen
            return self._follow(dialogue, step, trigger, transition, captures, env)
        if state.next:
            target, trigger = self._target(
                dialogue, step.conversation, state.next, None, None, f"{state.name}:next"
            )
            return self._move(dialogue, step, target, trigger, env, {})
        return self._end(step, state.outcome or f"ended in {state.name}")

    def _step_sms(self, dialogue: m.Dialogue, state: m.State, step: Step, env: Env) -> None:
        chosen = self._choose(dialogue, state, env, step.conversation)
        if chosen is None:
            step.notes.append(f"no transition of {state.name!r} matched; staying")
            return None
        trigger, transition, captures = chosen
        return self._follow(dialogue, step, trigger, transition, captures, env)

    def _choose(
        self, dialogue: m.Dialogue, state: m.State, env: Env, conversation: Conversation
    ) -> tuple[str, m.Transition, Captures] | None:
        """The first transition that takes the event, with its trigger: the dialogue's
        ``any:`` ones first (in a state that waits for input), then the state's own."""
        # Conditions (expr) see the conversation's vars, as the state's templates do.
        cache: dict[str, Mapping[str, Any]] = {}

        def context() -> Mapping[str, Any]:
            if "ctx" not in cache:
                cache["ctx"] = self._context(env, conversation, {})
            return cache["ctx"]

        scope = replace(env.scope, context=context)
        if dialogue.anywhere and state.waits:
            for index, transition in enumerate(dialogue.anywhere):
                captures = transition.when.test(env.event, scope)
                if captures is not None:
                    return f"any:{index}", transition, captures
        for index, transition in enumerate(state.on):
            captures = transition.when.test(env.event, scope)
            if captures is not None:
                return f"{state.name}:{index}", transition, captures
        return None

    def _follow(
        self,
        dialogue: m.Dialogue,
        step: Step,
        trigger: str,
        transition: m.Transition,
        captures: Captures,
        env: Env,
    ) -> None:
        if transition.set:
            context = self._context(env, step.conversation, captures)
            new_vars = {k: t.render(context) for k, t in transition.set.items()}
            step.conversation = replace(
                step.conversation, vars={**step.conversation.vars, **new_vars}
            )
        target, trigger = self._target(
            dialogue,
            step.conversation,
            transition.goto,
            transition.max_visits,
            transition.then,
            trigger,
        )
        self._move(dialogue, step, target, trigger, env, captures)

    def _target(
        self,
        dialogue: m.Dialogue,
        conversation: Conversation,
        goto: str,
        max_visits: int | None,
        then: str | None,
        trigger: str,
    ) -> tuple[str, str]:
        target = dialogue.states[goto]
        limit = max_visits or target.max_visits
        fallback = then or target.then
        if limit is not None and fallback and conversation.visits.get(goto, 0) >= limit:
            return fallback, f"{trigger}:then"
        return goto, trigger

    def _move(
        self,
        dialogue: m.Dialogue,
        step: Step,
        target: str,
        trigger: str,
        env: Env,
        captures: Captures,
    ) -> None:
        machine = dialogue.machine
        source = step.conversation.state
        reached = machine.fire(source, trigger)
        assert reached == target, (reached, target)
        step.moves.append((source, trigger, reached))
        self._enter(dialogue, step, target, env, captures)

    # -- entering states ---------------------------------------------------------------

    def _enter(
        self,
        dialogue: m.Dialogue,
        step: Step,
        target: str,
        env: Env,
        captures: Captures | None,
    ) -> None:
        for _ in range(MAX_CHAIN):
            state = dialogue.states[target]
            conversation = step.conversation
            visits = {**conversation.visits, target: conversation.visits.get(target, 0) + 1}
            conversation = replace(
                conversation, state=target, visits=visits, seq=conversation.seq + 1
            )
            context = self._context(env, conversation, captures or {})
            if state.set:
                conversation = replace(
                    conversation,
                    vars={
                        **conversation.vars,
                        **{k: t.render(context) for k, t in state.set.items()},
                    },
                )
                context = self._context(env, conversation, captures or {})
            step.conversation = conversation
            made_block = self._entry_effects(dialogue, state, step, env, context)
            if state.terminal and (state.end or not isinstance(state.block, m.Transfer)):
                self._end(step, state.outcome or f"ended in {state.name}")
                return
            if state.wait is not None:
                step.timer = TimerWrite(
                    conversation.key, env.now + state.wait.timeout, conversation.seq
                )
                return
            step.timer = TimerWrite(conversation.key, None)
            if state.next and not made_block and not state.on:
                target = state.next
                dest, trigger = self._target(
                    dialogue, conversation, target, None, None, f"{state.name}:next"
                )
                machine = dialogue.machine
                target = machine.fire(state.name, trigger)
                assert target == dest
                step.moves.append((state.name, trigger, target))
                continue
            return
        self._end(step, f"stopped: more than {MAX_CHAIN} states in a row without input")
        step.notes.append(f"dialogue {dialogue.name!r} looped through {MAX_CHAIN} states")

    def _entry_effects(
        self,
        dialogue: m.Dialogue,
        state: m.State,
        step: Step,
        env: Env,
        context: Mapping[str, Any],
    ) -> bool:
        """Run a state's entry; returns whether an IVR block was started."""
        made_block = False
        if dialogue.mode == "ivr":
            made_block = self._ivr_block(dialogue, state, step, env, context)
        elif state.say is not None:
            step.texts.append(state.say.render(context))
        conversation = step.conversation
        rule = f"dialogue:{dialogue.name}"
        for sms in state.sms:
            call = render.sms(
                sms,
                context,
                key=self._key(env, step),
                rule=rule,
                contact=conversation.contact,
                urn=_urn(env, conversation),
                provider=conversation.provider,
            )
            if call is None:
                step.blanks += 1
            else:
                step.calls.append(call)
        for http in state.http:
            step.calls.append(
                render.http(
                    http, context, key=self._key(env, step), rule=rule, contact=conversation.contact
                )
            )
        return made_block

    def _ivr_block(
        self,
        dialogue: m.Dialogue,
        state: m.State,
        step: Step,
        env: Env,
        context: Mapping[str, Any],
    ) -> bool:
        conversation = step.conversation
        session = conversation.session or ""
        block = state.block
        if block is None and state.say is None:
            return False
        params: dict[str, Any] = {"session": session}
        where = f"dialogue {dialogue.name!r} state {state.name!r}"

        def say(template: Template | None) -> None:
            text = render.speech(template, context, where)
            if text is not None:
                params["msg"] = text

        if isinstance(block, m.HangupBlock):
            step.calls.append(
                render.hangup(
                    block.say,
                    context,
                    session=session,
                    key=self._key(env, step),
                    rule=f"dialogue:{dialogue.name}",
                    lane=session or conversation.contact,
                )
            )
            return True
        notify = self.notify_url(conversation, dialogue.name, state.name)
        if block is None:
            say(state.say)
            endpoint = "ivr/middle/play"
        elif isinstance(block, m.Gather):
            say(block.say)
            params.update(
                max_digits=block.max_digits, timeout=block.timeout, attempts=block.attempts
            )
            endpoint = "ivr/middle/gather"
        elif isinstance(block, m.Record):
            say(block.say)
            params["max_duration"] = block.max_duration
            endpoint = "ivr/middle/record"
        elif isinstance(block, m.Dial):
            say(block.say)
            del params["session"]
            dest = block.to.render(context).strip()
            if not dest:
                raise TemplateError("dial has no number to call")
            params["dest"] = dest
            if block.caller_id:
                params["caller_id"] = block.caller_id
            if block.max_duration:
                params["max_duration"] = block.max_duration
            step.conversation = replace(step.conversation, contact=dest)
            endpoint = "ivr/start/dial"
        else:
            say(block.say)
            params["dest"] = block.to.render(context).strip()
            if block.caller_id:
                params["caller_id"] = block.caller_id
            params["on_failure"] = "continue" if block.on_failure else "hangup"
            endpoint = "ivr/end/transfer"
        params["notify_url"] = notify
        step.calls.append(self._call(env, step, endpoint, params))
        return True

    def notify_url(self, conversation: Conversation, dialogue: str, state: str) -> str:
        if not self.public_url:
            raise TemplateError(
                "RESPONDER_PUBLIC_URL is not set: IVR dialogues need it to build Hoiio notify_url"
            )
        try:
            return self.signer.notify_url(
                self._base(conversation.channel),
                conversation.session or "",
                AppState(dialogue, state, conversation.seq, conversation.ref),
            )
        except AppStateError as exc:  # over Hoiio's 4,000 characters: a failed step, logged
            raise TemplateError(str(exc)) from None

    def _base(self, channel: str) -> str:
        base = self._bases.get(channel)
        if base is None:
            base = f"{self.public_url}/webhooks/{channel}"
            secret = self.secrets.get(channel)
            if secret:
                base += "?" + urlencode({"secret": secret})
            if len(self._bases) < MAX_BASES:
                self._bases[channel] = base
        return base

    # -- small helpers -----------------------------------------------------------------

    def _context(self, env: Env, conversation: Conversation, captures: Captures) -> dict[str, Any]:
        context = dict(env.base_context)
        context["vars"] = dict(conversation.vars)
        context["captures"] = dict(captures)
        context["rule"] = f"dialogue:{conversation.dialogue}"
        return context

    def _key(self, env: Env, step: Step) -> str:
        return f"{env.event_key}#d{env.call_offset + len(step.calls)}"

    def _call(self, env: Env, step: Step, endpoint: str, params: dict[str, Any]) -> OutboundCall:
        conversation = step.conversation
        # IVR calls of one session go out in order: they share the session as their lane.
        return render.ivr_call(
            endpoint,
            params,
            key=self._key(env, step),
            rule=f"dialogue:{conversation.dialogue}",
            lane=conversation.session or conversation.contact,
        )

    def text_call(self, env: Env, step: Step, text: str) -> OutboundCall | None:
        """An SMS to the conversation's contact, for texts that cannot go in a reply body."""
        conversation = step.conversation
        return render.text_call(
            key=self._key(env, step),
            via=conversation.provider,
            to=conversation.contact or "",
            text=text,
            rule=f"dialogue:{conversation.dialogue}",
            urn=_urn(env, conversation),
        )

    def _end(self, step: Step, outcome: str) -> None:
        step.conversation = replace(step.conversation, status="ended", outcome=outcome)
        step.timer = TimerWrite(step.conversation.key, None)
        step.notes.append(f"conversation {step.conversation.key} ended: {outcome}")

    def _ignore(self, step: Step, why: str) -> None:
        step.changed = False
        step.notes.append(f"ignored: {why}")

    def _expiry(self, dialogue: m.Dialogue, now: float) -> float:
        return now + dialogue.expire


def _urn(env: Env, conversation: Conversation) -> str | None:
    """The event's URN, when the step's texts go back to the contact who sent the event."""
    event = env.event
    if event.urn and event.contact is not None and event.contact == conversation.contact:
        return event.urn
    return None
