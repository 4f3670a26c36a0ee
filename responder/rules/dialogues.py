"""The ``dialogues:`` part of the rules language, with its checks: unknown targets,
unreachable states, states with no way out, blocks that do not fit the dialogue's mode."""

from __future__ import annotations

from collections import deque
from typing import Any, Final

from responder.dialogues import model as m
from responder.dialogues.machine import DialogueMachine
from responder.events import KINDS
from responder.matching.conditions import AllOf
from responder.rules.language import HTTP, SMS, WHEN, build_when
from responder.rules.spec import (
    INVALID,
    Bool,
    Ctx,
    Duration,
    Field,
    Int,
    ListOf,
    MapOf,
    Obj,
    Str,
    TemplateSpec,
)
from responder.rules.terms import HOIIO_MSG_MAX, SMS_TEXT_MAX, KindSpec

NAME_PATTERN: Final = r"[A-Za-z0-9_.-]+"
NAME_HINT: Final = "a name of letters, digits, _ . -"
IVR_KINDS: Final = frozenset(k for k in KINDS if k.startswith("ivr."))
MAX_STATES: Final = 200


def _name(description: str) -> Str:
    return Str(description, max_len=64, pattern=NAME_PATTERN, pattern_hint=NAME_HINT)


def _say(description: str = "Text to speak (TTS) or <url>…</url> to play.") -> TemplateSpec:
    return TemplateSpec(description, max_len=HOIIO_MSG_MAX)


GATHER: Final = Obj(
    {
        "say": Field(_say()),
        "max_digits": Field(
            Int("Keys to collect (0: until # or timeout).", min=0, max=255), default=1
        ),
        "timeout": Field(Int("Seconds to wait for keys.", min=1, max=600), default=10),
        "attempts": Field(Int("Times Hoiio repeats the prompt.", min=1, max=10), default=1),
    },
    "Ask for keys (ivr/middle/gather).",
    build=lambda f, line, ctx, path: m.Gather(
        f["say"], f["max_digits"], f["timeout"], f["attempts"]
    ),
)
RECORD: Final = Obj(
    {
        "say": Field(_say()),
        "max_duration": Field(Int("Longest recording in seconds.", min=1, max=3600), default=60),
    },
    "Record a message (ivr/middle/record); the URL is kept in vars.recording.",
    build=lambda f, line, ctx, path: m.Record(f["say"], f["max_duration"]),
)
TRANSFER: Final = Obj(
    {
        "to": Field(TemplateSpec("Number (E.164) or room:<id> to transfer to."), required=True),
        "say": Field(_say()),
        "caller_id": Field(Str("Caller id shown to the callee.")),
        "on_failure": Field(_name("State to go to when the transfer is not answered.")),
    },
    "Transfer the call (ivr/end/transfer).",
    build=lambda f, line, ctx, path: m.Transfer(f["to"], f["say"], f["caller_id"], f["on_failure"]),
)
DIAL: Final = Obj(
    {
        "to": Field(TemplateSpec("Number (E.164) to call; default the event's contact.")),
        "say": Field(_say()),
        "caller_id": Field(Str("Caller id shown to the callee.")),
        "max_duration": Field(Int("Longest call in seconds.", min=1, max=86400)),
    },
    "Place an outbound call (ivr/start/dial); only in a dialogue's initial state.",
    build=lambda f, line, ctx, path: m.Dial(
        f["to"] or ctx.templates.template("{{ contact }}"),
        f["say"],
        f["caller_id"],
        f["max_duration"],
    ),
)
HANGUP_BLOCK: Final = Obj(
    {"say": Field(_say())},
    "Hang up (ivr/end/hangup), optionally saying something first.",
    build=lambda f, line, ctx, path: m.HangupBlock(f["say"]),
)
SETS: Final = MapOf(TemplateSpec(), "Conversation variables to set (templates).")

_TRANSITION_ONLY = {
    "goto": Field(_name("State to go to."), required=True),
    "otherwise": Field(Bool("Matches anything (put it last).")),
    "set": Field(SETS),
    "max_visits": Field(Int("Most times the target may be entered.", min=1, max=1000)),
    "then": Field(_name("Where to go instead once max_visits is reached.")),
}


def _build_transition(fields: dict[str, Any], line: int, ctx: Ctx, path: str) -> Any:
    conditions = {k: v for k, v in fields.items() if k in WHEN.fields}
    when = build_when(conditions, line, ctx, path)
    if (fields["max_visits"] is None) != (fields["then"] is None):
        return ctx.error(line, path, "max_visits and then go together")
    has_condition = any(v is not None for v in conditions.values())
    if not has_condition and not fields["otherwise"]:
        return ctx.error(line, path, "a transition needs a condition or 'otherwise: true'")
    return m.Transition(
        when,
        fields["goto"],
        line,
        bool(fields["otherwise"]),
        fields["set"] or {},
        fields["max_visits"],
        fields["then"],
    )


TRANSITION: Final = Obj(
    {**WHEN.fields, **_TRANSITION_ONLY},
    "A way out of a state: conditions (as in a rule's when) and a target.",
    build=_build_transition,
)

WAIT: Final = Obj(
    {
        "timeout": Field(Duration("How long to wait for the next message."), required=True),
        "goto": Field(_name("State to go to when nothing arrives in time."), required=True),
    },
    "SMS dialogues: a durable timer for when the contact goes quiet.",
    build=lambda f, line, ctx, path: m.Wait(f["timeout"], f["goto"]),
)

BLOCK_KEYS: Final = ("dial", "gather", "record", "transfer", "hangup")


def _build_state(name: str) -> Any:
    def build(fields: dict[str, Any], line: int, ctx: Ctx, path: str) -> Any:
        blocks = [k for k in BLOCK_KEYS if fields[k] is not None]
        if len(blocks) > 1:
            return ctx.error(line, path, f"a state runs one IVR block, not {', '.join(blocks)}")
        block = fields[blocks[0]] if blocks else None
        if (fields["max_visits"] is None) != (fields["then"] is None):
            return ctx.error(line, path, "max_visits and then go together")
        return m.State(
            name=name,
            line=line,
            block=block,
            say=fields["say"],
            sms=fields["sms"] or (),
            http=fields["http"] or (),
            set=fields["set"] or {},
            on=fields["on"] or (),
            next=fields["next"],
            wait=fields["wait"],
            end=bool(fields["end"]),
            outcome=fields["outcome"],
            max_visits=fields["max_visits"],
            then=fields["then"],
        )

    return build


STATE_FIELDS: Final = {
    "say": Field(
        TemplateSpec(
            "IVR: spoken (ivr/middle/play). SMS: sent to the contact.", max_len=SMS_TEXT_MAX
        )
    ),
    "gather": Field(GATHER),
    "record": Field(RECORD),
    "transfer": Field(TRANSFER),
    "hangup": Field(HANGUP_BLOCK),
    "dial": Field(DIAL),
    "sms": Field(ListOf(SMS, "SMS to send on entry.")),
    "http": Field(ListOf(HTTP, "Webhooks to call on entry.")),
    "set": Field(SETS),
    "on": Field(ListOf(TRANSITION, "Transitions, tried in order.", single=False)),
    "next": Field(_name("Where to go once this state's block (or entry) is done.")),
    "wait": Field(WAIT),
    "end": Field(Bool("The conversation ends here.")),
    "outcome": Field(Str("Recorded as the conversation's outcome when it ends here.", max_len=200)),
    "max_visits": Field(Int("Most times this state may be entered.", min=1, max=1000)),
    "then": Field(_name("Where to go instead once max_visits is reached.")),
}


class StatesSpec(MapOf):
    def __init__(self) -> None:
        super().__init__(Obj(STATE_FIELDS), "The states, by name; the first is the initial.")

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        if not isinstance(value, dict) or not value:
            return ctx.error(line, path, "expected a mapping of state names to states")
        if len(value) > MAX_STATES:
            return ctx.error(line, path, f"more than {MAX_STATES} states")
        key_lines = getattr(value, "key_lines", {})
        out: dict[str, Any] = {}
        for name, body in value.items():
            name_line = key_lines.get(name, line)
            if _name("").parse(name, name_line, ctx, f"{path}.{name}") is INVALID:
                out[name] = INVALID
                continue
            spec = Obj(STATE_FIELDS, build=_build_state(name))
            out[name] = spec.parse(
                body if body is not None else {}, name_line, ctx, f"{path}.{name}"
            )
        return INVALID if any(v is INVALID for v in out.values()) else out


START: Final = Obj(
    {
        "on": Field(ListOf(KindSpec(), "Event kind(s) that start this dialogue."), required=True),
        "when": Field(WHEN),
        "priority": Field(
            Int("Among dialogue starts, higher is tried first.", min=-1000, max=1000), default=0
        ),
    },
    "What starts a conversation (rules can also start one with 'start:').",
    build=lambda f, line, ctx, path: m.Start(
        frozenset().union(*f["on"]), f["when"] or AllOf(()), f["priority"]
    ),
)


def _build_dialogue(fields: dict[str, Any], line: int, ctx: Ctx, path: str) -> Any:
    states: dict[str, m.State] = fields["states"]
    start: m.Start | None = fields["start"]
    initial = fields["initial"] or next(iter(states))
    dials = initial in states and isinstance(states[initial].block, m.Dial)
    ivr_start = start is not None and start.kinds <= IVR_KINDS
    mode = fields["mode"] or ("ivr" if ivr_start or dials else "sms")
    lines = ctx.key_lines
    anywhere: tuple[m.Transition, ...] = tuple(fields["any"] or ())
    errors = _check_graph(fields["name"], mode, initial, states, anywhere)
    for index, transition in enumerate(anywhere):
        if transition.otherwise:
            errors.append(
                (
                    "",
                    "an any: transition cannot be 'otherwise: true': it would take every "
                    "message in every state",
                    transition.line,
                    f".any[{index}]",
                )
            )
    if anywhere and not any(state.waits for state in states.values()):
        errors.append(("", "any: transitions need a state that waits for input (on or wait)"))
    if start is not None and mode == "sms" and start.kinds & IVR_KINDS:
        errors.append(
            (
                "",
                "an SMS dialogue cannot start on ivr.* events (its conversation "
                "would follow the call, not the contact)",
            )
        )
    if start is not None and mode == "ivr" and not ivr_start and not dials:
        errors.append(
            (
                "",
                "an IVR dialogue started by non-IVR events must dial first "
                "(its initial state needs 'dial')",
            )
        )
    for problem in errors:
        state_name, message = problem[0], problem[1]
        state = states.get(state_name)
        where, sub = (problem[2], problem[3]) if len(problem) == 4 else (None, "")
        ctx.error(
            where or (state.line if state else lines.get("states", line)),
            f"{path}.states.{state_name}{sub}" if state else f"{path}{sub}",
            message,
        )
    if errors:
        return INVALID
    machine = DialogueMachine(fields["name"], list(states), initial, m.edges(states, anywhere))
    return m.Dialogue(
        name=fields["name"],
        file=ctx.file,
        line=line,
        mode=mode,
        initial=initial,
        states=states,
        machine=machine,
        anywhere=anywhere,
        start=start,
        expire=fields["expire"],
        description=fields["description"],
    )


# (state, message) at the state's line, or (state, message, line, path suffix)
Problem = tuple[str, str] | tuple[str, str, int, str]


def _check_graph(
    name: str,
    mode: str,
    initial: str,
    states: dict[str, m.State],
    anywhere: tuple[m.Transition, ...] = (),
) -> list[Problem]:
    problems: list[Problem] = []
    for index, t in enumerate(anywhere):
        for target, key in ((t.goto, "goto"), (t.then, "then")):
            if target is not None and target not in states:
                problems.append(
                    ("", f"{key} names unknown state {target!r}", t.line, f".any[{index}].{key}")
                )
    if initial not in states:
        return [("", f"initial state {initial!r} does not exist")]
    targets: dict[str, list[str]] = {}
    for state in states.values():
        # (target, key, line of the transition or None for the state's own line)
        outs: list[tuple[str, str, int | None]] = []
        for index, t in enumerate(state.on):
            outs.append((t.goto, f"on[{index}].goto", t.line))
            if t.then:
                outs.append((t.then, f"on[{index}].then", t.line))
        outs += [(x, key, None) for x, key in ((state.next, "next"), (state.then, "then")) if x]
        if state.wait:
            outs.append((state.wait.goto, "wait.goto", None))
        if isinstance(state.block, m.Transfer) and state.block.on_failure:
            outs.append((state.block.on_failure, "transfer.on_failure", None))
        if state.waits:
            for t in anywhere:
                outs += [(x, "", -1) for x in (t.goto, t.then) if x]
        for target, key, where in outs:
            if where == -1:
                continue  # an any: target, checked once above
            if target not in states:
                message = f"{key.rsplit('.', 1)[-1]} names unknown state {target!r}"
                problems.append(
                    (state.name, message, where, f".{key}")
                    if where
                    else (state.name, f"{key} names unknown state {target!r}")
                )
        targets[state.name] = [t for t, _, _ in outs if t in states]
        if mode == "sms" and state.block is not None:
            problems.append(
                (
                    state.name,
                    "IVR blocks (gather, record, transfer, hangup) need "
                    "a dialogue started by an ivr.* event",
                )
            )
        if mode == "ivr" and state.wait is not None:
            problems.append((state.name, "wait is for SMS dialogues; use gather's timeout"))
        if (
            mode == "ivr"
            and state.block is None
            and state.say is None
            and not state.terminal
            and not state.next
        ):
            problems.append(
                (state.name, "an IVR state needs say, gather, record, transfer or hangup (or next)")
            )
        if isinstance(state.block, m.Dial) and state.name != initial:
            problems.append((state.name, "only the initial state can dial"))
        if isinstance(state.block, m.Gather) and not state.on:
            problems.append((state.name, "a gather needs 'on' transitions"))
        if state.block is None and state.on and mode == "ivr" and state.say is not None:
            problems.append((state.name, "a say-only state has no input; use next, or gather"))
        if state.end and (state.on or state.next or state.wait):
            problems.append((state.name, "end: true leaves no room for on/next/wait"))
        if (
            state.terminal
            and not state.end
            and not isinstance(state.block, m.HangupBlock)
            and not isinstance(state.block, m.Transfer)
        ):
            problems.append(
                (state.name, "state has no way out: add on, next or wait, or mark it end: true")
            )
    seen = {initial}
    queue = deque([initial])
    while queue:
        for target in targets.get(queue.popleft(), []):
            if target not in seen:
                seen.add(target)
                queue.append(target)
    for state_name in states:
        if state_name not in seen:
            problems.append((state_name, f"state {state_name!r} is unreachable from {initial!r}"))
    return problems


DIALOGUE: Final = Obj(
    {
        "name": Field(_name("Unique dialogue name (travels in Hoiio's app_state)."), required=True),
        "description": Field(Str("Free text for humans.")),
        "mode": Field(
            Str(
                "ivr or sms; default: ivr when started by ivr.* events.",
                pattern="ivr|sms",
                pattern_hint="ivr or sms",
            )
        ),
        "start": Field(START),
        "initial": Field(_name("The first state; default: the first listed.")),
        "expire": Field(
            Duration("SMS: a conversation ends after this long without a message."), default=86400.0
        ),
        "states": Field(StatesSpec(), required=True),
        "any": Field(
            ListOf(
                TRANSITION,
                "Transitions tried in every state that waits for input, before the state's "
                "own (a CANCEL, MENU or AGENT that works everywhere). While the dialogue is "
                "active they also win over the compliance words (all but STOP).",
                single=False,
            )
        ),
    },
    "A multi-step conversation.",
    build=_build_dialogue,
)
