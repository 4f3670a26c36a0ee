"""The ``rules:`` part of the rules language: conditions (``when``), limits and actions, every
key with its type, its documentation and what it compiles to."""

from __future__ import annotations

from typing import Any, Final

from responder.actions import model as actions
from responder.actions.sms_parts import GSM_LIMIT, UNICODE_LIMIT, hoiio_size
from responder.events import KINDS, Event
from responder.matching import conditions as c
from responder.rules import model
from responder.rules.calendars import CLOSED, OPEN
from responder.rules.spec import (
    INVALID,
    Bool,
    Ctx,
    Defs,
    Duration,
    Enum,
    ExpressionSpec,
    Field,
    Int,
    JsonTemplate,
    ListOf,
    MapOf,
    Number,
    Obj,
    RegexSpec,
    Spec,
    Str,
    TemplateSpec,
)
from responder.rules.terms import (
    HOIIO_MSG_MAX,
    OLD_STATUSES,
    PROVIDER_NAMES,
    SMS_TEXT_MAX,
    TEXTIT_REPLY_MAX,
    DateSpec,
    DaysSpec,
    HoursSpec,
    KindSpec,
    TimezoneSpec,
)


def _strings(description: str) -> ListOf:
    return ListOf(Str(), description)


def _folded(values: tuple[str, ...]) -> frozenset[str]:
    return frozenset(v.casefold() for v in values)


def _single_words(values: tuple[str, ...] | None, key: str, line: int, ctx: Ctx, path: str) -> Any:
    """Keywords as the text's words are compared: case-folded, edge punctuation stripped.
    A value that is not exactly one word could never match, so it is a problem."""
    if values is None:
        return None
    out = set()
    for value in values:
        found = c.words(value)
        if len(found) != 1:
            return ctx.error(
                ctx.key_lines.get(key, line),
                f"{path}.{key}" if path else key,
                f"{value!r} is not a single word (use phrase: for several words)",
            )
        out.add(found[0])
    return frozenset(out)


def _build_text(fields: dict[str, Any], line: int, ctx: Ctx, path: str) -> Any:
    number = None
    bad = False
    if fields["number"] is not None:
        number = (fields["number"].get("min"), fields["number"].get("max"))
        low, high = number
        if low is not None and high is not None and low > high:
            ctx.error(
                ctx.key_lines.get("number", line),
                f"{path}.number" if path else "number",
                f"min {low:g} is greater than max {high:g}",
            )
            bad = True
    keyword = _single_words(fields["keyword"], "keyword", line, ctx, path)
    any_word = _single_words(fields["any_word"], "any_word", line, ctx, path)
    if bad or keyword is INVALID or any_word is INVALID:
        return INVALID
    return c.TextTest(
        keyword=keyword,
        only=frozenset(" ".join(c.words(v)) for v in fields["only"])
        if fields["only"] is not None
        else None,
        any_word=any_word,
        phrase=tuple(c.phrase_pattern(p) for p in fields["phrase"])
        if fields["phrase"] is not None
        else None,
        regex=fields["regex"],
        number=number,
        empty=fields["empty"],
    )


TEXT_TEST: Final = Obj(
    {
        "keyword": Field(_strings("The first word is one of these (case-insensitive).")),
        "only": Field(
            _strings(
                "The whole text is one of these (case-insensitive, "
                "punctuation at word edges ignored)."
            )
        ),
        "any_word": Field(_strings("Any word of the text is one of these.")),
        "phrase": Field(_strings("The text contains one of these phrases as whole words.")),
        "regex": Field(
            RegexSpec(
                "A regular expression searched in the text (case-insensitive);"
                " named groups become captures."
            )
        ),
        "number": Field(
            Obj(
                {
                    "min": Field(Number("Smallest number accepted.")),
                    "max": Field(Number("Largest number accepted.")),
                },
                "The text is a number within [min, max].",
                min_keys=1,
            )
        ),
        "empty": Field(Bool("The text is empty (true) or not (false).")),
    },
    "Tests on a text; all given tests must pass.",
    build=_build_text,
    min_keys=1,
)


def _digits_shorthand(value: Any, line: int, ctx: Ctx, path: str) -> Any:
    values = ListOf(Str()).parse(value, line, ctx, path)
    return INVALID if values is INVALID else c.TextTest(exact=frozenset(values))


class DigitsSpec(Spec):
    description = "Keys pressed: a string or list of exact values, or a text test mapping."

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        if isinstance(value, dict):
            return TEXT_TEST.parse(value, line, ctx, path)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, list):
            value = [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        return _digits_shorthand(value, line, ctx, path)

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        return {
            "description": self.description,
            "anyOf": [
                {"type": ["string", "integer"]},
                {"type": "array", "items": {"type": ["string", "integer"]}},
                TEXT_TEST.schema(defs),
            ],
        }


def _pattern_build(field_name: str) -> Any:
    def build(value: Any, line: int, ctx: Ctx, path: str) -> Any:
        if isinstance(value, tuple):
            return c.PatternCondition(field_name, include=value)
        return c.PatternCondition(
            field_name, include=value["in"] or (), exclude=value["not_in"] or ()
        )

    return build


class PatternSpec(Spec):
    """Glob patterns for a number: a string, a list, or {in: [...], not_in: [...]}."""

    def __init__(self, field_name: str, description: str) -> None:
        self.field_name = field_name
        self.description = description
        self.obj = Obj(
            {
                "in": Field(_strings("Any of these globs matches.")),
                "not_in": Field(_strings("None of these globs matches.")),
            },
            min_keys=1,
        )

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        parsed = (self.obj if isinstance(value, dict) else ListOf(Str())).parse(
            value, line, ctx, path
        )
        return (
            INVALID
            if parsed is INVALID
            else _pattern_build(self.field_name)(parsed, line, ctx, path)
        )

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        return {
            "description": self.description,
            "anyOf": [ListOf(Str()).schema(defs), self.obj.schema(defs)],
        }


def _one_of(getter: Any, description: str, name: str) -> Spec:
    class OneOfSpec(Spec):
        def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
            parsed = ListOf(Str()).parse(value, line, ctx, path)
            if parsed is INVALID:
                return INVALID
            values = _folded(parsed)
            if name == "status":
                # The old spelling keeps working (``check`` warns): Hoiio says unanswered.
                values |= {OLD_STATUSES[v] for v in values if v in OLD_STATUSES}
            return c.OneOfCondition(getter, values, name)

        def schema(self, defs: Defs | None = None) -> dict[str, Any]:
            return {"description": description, **ListOf(Str()).schema(defs)}

    spec = OneOfSpec()
    spec.description = description
    return spec


def _flow_getter(attr: str) -> Any:
    def get(event: Event) -> str | None:
        return getattr(event.flow, attr) if event.flow is not None else None

    return get


def _build_flow(fields: dict[str, Any], line: int, ctx: Ctx, path: str) -> Any:
    return c.AllOf(tuple(v for v in fields.values() if v is not None))


FLOW: Final = Obj(
    {
        name: Field(
            _one_of(_flow_getter(name), f"The flow's {name} is one of these.", f"flow.{name}")
        )
        for name in ("id", "uuid", "name", "step", "run")
    },
    "The flow a flow.step event comes from.",
    build=_build_flow,
    min_keys=1,
)


def _build_value(label: str) -> Any:
    def build(fields: dict[str, Any], line: int, ctx: Ctx, path: str) -> Any:
        category = _folded(fields["category"]) if fields["category"] is not None else None
        return c.ValueCondition(label, category, fields["value"], fields["text"])

    return build


class ValuesSpec(Spec):
    description = "Flow values by label (or result key): category, value and/or text tests."

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        if not isinstance(value, dict):
            return ctx.error(line, path, "expected a mapping of label: tests")
        key_lines = getattr(value, "key_lines", {})
        out = []
        for label, tests in value.items():
            spec = _value_obj(_build_value(label))
            parsed = spec.parse(tests, key_lines.get(label, line), ctx, f"{path}.{label}")
            out.append(parsed)
        return INVALID if any(p is INVALID for p in out) else c.AllOf(tuple(out))

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        return {
            "type": "object",
            "description": self.description,
            "additionalProperties": _value_obj(None).schema(defs),
        }


def _value_obj(build: Any) -> Obj:
    return Obj(
        {
            "category": Field(_strings("The value's category is one of these.")),
            "value": Field(TEXT_TEST),
            "text": Field(TEXT_TEST),
        },
        build=build,
        min_keys=1,
    )


def _build_time(fields: dict[str, Any], line: int, ctx: Ctx, path: str) -> Any:
    start = end = None
    if fields["hours"] is not None:
        start, end = fields["hours"]
    dates = frozenset(fields["dates"]) if fields["dates"] is not None else None
    return c.TimeCondition(fields["timezone"], fields["days"], start, end, dates)


TIME: Final = Obj(
    {
        "timezone": Field(TimezoneSpec("IANA timezone, e.g. Asia/Singapore."), required=True),
        "days": Field(DaysSpec("Weekdays: mon..sun, ranges like mon-fri, lists.")),
        "hours": Field(
            HoursSpec("Local time window HH:MM-HH:MM; may wrap midnight (22:00-06:00).")
        ),
        "dates": Field(ListOf(DateSpec(), "Local dates (YYYY-MM-DD) such as holidays.")),
    },
    "Local time of the event in a timezone.",
    build=_build_time,
    min_keys=2,
)


def build_when(fields: dict[str, Any], line: int, ctx: Ctx, path: str) -> Any:
    parts: list[Any] = []
    for key, value in fields.items():
        if value is None:
            continue
        if key in ("text", "digits"):
            parts.append(c.TextCondition(key, value))
        elif key == "time":
            parts.append(value)
        elif key == "expr":
            parts.append(c.ExprCondition(value))
        elif key == "not":
            parts.append(c.NotCondition(value))
        elif key == "any":
            parts.append(c.AnyCondition(tuple(value)))
        else:
            parts.append(value)
    return c.AllOf(tuple(parts))


def when_spec() -> Spec:
    return WHEN


def _getter(attr: str) -> Any:
    def get(event: Event) -> str | None:
        value = getattr(event, attr)
        return None if value is None else str(value)

    return get


WHEN: Final[Obj] = Obj(
    {
        "text": Field(TEXT_TEST),
        "digits": Field(DigitsSpec()),
        "contact": Field(PatternSpec("contact", "The contact's number (E.164) matches globs.")),
        "channel_number": Field(PatternSpec("channel_number", "Our number matches globs.")),
        "channel": Field(
            _one_of(_getter("channel"), "The webhook channel name is one of these.", "channel")
        ),
        "provider": Field(_one_of(_getter("provider"), "textit or hoiio.", "provider")),
        "status": Field(
            _one_of(_getter("status"), "The provider status is one of these.", "status")
        ),
        "flow": Field(FLOW),
        "values": Field(ValuesSpec()),
        "time": Field(TIME),
        "expr": Field(ExpressionSpec("A sandboxed jinja2 expression that must be true.")),
        "open": Field(OPEN),
        "closed": Field(CLOSED),
        "not": Field(when_spec),
        "any": Field(
            lambda: ListOf(
                WHEN, "At least one of these condition sets matches.", single=False, min_items=1
            )
        ),
    },
    "Conditions; all must hold.",
    build=build_when,
    ref="when",
)


def _build_limit(fields: dict[str, Any], line: int, ctx: Ctx, path: str) -> Any:
    return model.Limit(fields["per_contact"], fields["every"])


LIMIT: Final = Obj(
    {
        "per_contact": Field(
            Int("Firings allowed per contact in the window.", min=1), required=True
        ),
        "every": Field(Duration("The window, e.g. 6h."), required=True),
    },
    "Rate limit of the rule per contact; when reached the rule does not match.",
    build=_build_limit,
)


def _build_reply(fields: dict[str, Any], line: int, ctx: Ctx, path: str) -> Any:
    json_value = fields["json"]
    if json_value is not None and not isinstance(json_value, dict):
        return ctx.error(line, f"{path}.json", "must be a mapping of flow variables")
    return actions.Reply(fields["text"], json_value)


REPLY: Final = Obj(
    {
        "text": Field(
            TemplateSpec(
                "Reply text (TextIt: webhook answer; Hoiio: SMS back).", max_len=TEXTIT_REPLY_MAX
            )
        ),
        "json": Field(JsonTemplate("flow.step only: an object of flow variables.")),
    },
    "Answer the webhook.",
    build=_build_reply,
    min_keys=1,
)


def _build_sms(fields: dict[str, Any], line: int, ctx: Ctx, path: str) -> Any:
    text = fields["text"]
    if fields["via"] == "hoiio" and "{" not in text.source:
        # A fixed text must fit one Hoiio send: 3 parts (459 GSM characters, or 201 when
        # the text needs unicode). Rendered texts over it are cut when sent.
        size, limit = hoiio_size(text.source)
        if size > limit:
            return ctx.error(
                ctx.key_lines.get("text", line),
                f"{path}.text" if path else "text",
                f"text is {size} characters; Hoiio sends at most 3 parts, {limit} characters "
                f"({GSM_LIMIT} in the GSM alphabet, {UNICODE_LIMIT} when it needs unicode)",
            )
    return actions.Sms(text, fields["to"], fields["via"])


SMS: Final = Obj(
    {
        "text": Field(TemplateSpec("Message text.", max_len=SMS_TEXT_MAX), required=True),
        "to": Field(TemplateSpec("Recipient number; default the event's contact.")),
        "via": Field(Enum(PROVIDER_NAMES, "Provider API to send with; default the event's.")),
    },
    "Send an SMS through the provider API.",
    build=lambda f, line, ctx, path: _build_sms(f, line, ctx, path),
)

HANGUP: Final = Obj(
    {"say": Field(TemplateSpec("Spoken (TTS) before hanging up.", max_len=HOIIO_MSG_MAX))},
    "Hang up a Hoiio IVR call (ivr/end/hangup with the event's session).",
    build=lambda f, line, ctx, path: actions.Hangup(f["say"]),
)

HTTP: Final = Obj(
    {
        "url": Field(
            TemplateSpec(
                "URL to call (http or https); every {{ }} in it is percent-encoded.", where="url"
            ),
            required=True,
        ),
        "method": Field(
            Enum(["GET", "POST", "PUT", "PATCH", "DELETE"], "HTTP method (default POST)."),
            default="POST",
        ),
        "json": Field(JsonTemplate("JSON body; strings are templates.")),
        "headers": Field(
            MapOf(
                TemplateSpec(where="header"),
                "Request headers; values are templates, each {{ }} kept on one line.",
            )
        ),
        "timeout": Field(Duration("Timeout per attempt.", max_seconds=60), default=10.0),
    },
    "Call an HTTP webhook of your own.",
    build=lambda f, line, ctx, path: actions.Http(
        f["url"], f["method"], f["json"], f["headers"] or {}, f["timeout"]
    ),
)

ACTION_KEYS: Final = ("reply", "hangup", "sms", "http", "start")

RULE_FIELDS: Final = {
    "name": Field(
        Str(
            "Unique rule name (used in logs and limits).",
            max_len=100,
            pattern=r"[A-Za-z0-9_.:-]+",
            pattern_hint="a name of letters, digits, _ . : -",
        ),
        required=True,
    ),
    "description": Field(Str("Free text for humans.")),
    "on": Field(ListOf(KindSpec(), "Event kind(s) this rule handles."), required=True),
    "priority": Field(
        Int("Higher runs first; ties keep file order.", min=-1000, max=1000), default=0
    ),
    "when": Field(WHEN),
    "continue": Field(Bool("Keep matching later rules after this one fires."), default=False),
    "limit": Field(LIMIT),
    "reply": Field(REPLY),
    "hangup": Field(HANGUP),
    "sms": Field(ListOf(SMS, "One SMS or a list.")),
    "http": Field(ListOf(HTTP, "One webhook call or a list.")),
    "start": Field(
        Str(
            "Start this dialogue for the event's contact (or call).",
            max_len=64,
            pattern=r"[A-Za-z0-9_.-]+",
            pattern_hint="a dialogue name",
        )
    ),
}


def _build_rule(fields: dict[str, Any], line: int, ctx: Ctx, path: str) -> Any:
    kinds: frozenset[str] = frozenset().union(*fields["on"])
    if not any(fields[key] for key in ACTION_KEYS):
        return ctx.error(
            line, path, f"rule {fields['name']!r} has no action ({', '.join(ACTION_KEYS)})"
        )
    reply = fields["reply"]
    lines = ctx.key_lines
    bad = False
    if reply is not None and reply.json is not None and kinds != {"flow.step"}:
        ctx.error(
            lines.get("reply", line),
            f"{path}.reply.json",
            "flow variables need a rule that is only 'on: flow.step'",
        )
        bad = True
    if fields["hangup"] is not None and not kinds <= IVR_KINDS:
        ctx.error(
            lines.get("hangup", line),
            f"{path}.hangup",
            "hangup needs a rule that is only on ivr.* kinds",
        )
        bad = True
    if bad:
        return INVALID
    return model.Rule(
        name=fields["name"],
        file=ctx.file,
        line=line,
        order=0,
        kinds=kinds,
        when=fields["when"] or c.AllOf(()),
        priority=fields["priority"],
        cont=fields["continue"],
        limit=fields["limit"],
        reply=reply,
        hangup=fields["hangup"],
        sms=fields["sms"] or (),
        http=fields["http"] or (),
        start=fields["start"],
        description=fields["description"],
    )


IVR_KINDS: Final = frozenset(k for k in KINDS if k.startswith("ivr."))

RULE: Final = Obj(
    RULE_FIELDS, "One rule: when an event matches, do its actions.", build=_build_rule
)
