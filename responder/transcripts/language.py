"""The transcript language (``*.test.yaml``): validated with the rules' spec machinery, so a
broken transcript gets the same ``file:line: message`` problems a broken rule file does."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from responder.rules.spec import (
    INVALID,
    AnyOf,
    Bool,
    Ctx,
    Defs,
    Duration,
    Enum,
    Field,
    ListOf,
    MapOf,
    Obj,
    Spec,
    Str,
)

# Hoiio's names for a transfer's or a dial's result.
HOIIO_RESULTS = "answered, unanswered, failed or busy (Hoiio's words)"

# Every limit has a number.
MAX_TESTS: Final = 500  # tests in one transcript file
MAX_STEPS: Final = 500  # steps in one test
MAX_WAIT: Final = 366 * 86400  # one `wait` moves the clock at most a year


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()  # an expectation that was not given (``null`` is a value)


@dataclass(frozen=True, slots=True)
class TextMatch:
    """An exact text, or a regular expression searched in the text."""

    exact: str | None = None
    regex: re.Pattern[str] | None = None

    def matches(self, value: Any) -> bool:
        if value is None:
            return False
        text = value if isinstance(value, str) else str(value)
        if self.regex is not None:
            return self.regex.search(text) is not None
        return text == self.exact

    def __str__(self) -> str:
        if self.regex is not None:
            return f"/{self.regex.pattern}/"
        return repr(self.exact)


@dataclass(frozen=True, slots=True)
class CallMatch:
    """One expected outbound call; ``params``/``json`` are matched as subsets."""

    line: int
    kind: str  # sms, hoiio, textit or http
    target: TextMatch  # SMS text, API endpoint or URL
    to: str | None = None
    via: str | None = None
    say: TextMatch | None = None
    params: dict[str, Any] | None = None
    json: Any = None
    method: str | None = None


@dataclass(frozen=True, slots=True)
class Expect:
    line: int
    reply: Any = ABSENT  # TextMatch, or None for "no reply"
    json: Any = ABSENT
    calls: Any = ABSENT  # tuple[CallMatch, ...]
    held: Any = ABSENT  # tuple[CallMatch, ...]
    nothing_sent: bool = False
    matched: Any = ABSENT  # tuple[str, ...]
    dialogue: Any = ABSENT
    state: Any = ABSENT
    status: Any = ABSENT
    outcome: Any = ABSENT
    vars: Any = ABSENT
    errors: Any = ABSENT  # tuple[TextMatch, ...]


@dataclass(frozen=True, slots=True)
class Given:
    """Who, where and when; every field may be left to the file's ``given`` or the default."""

    provider: str | None = None
    channel: str | None = None
    contact: str | None = None
    contact_name: str | None = None
    number: str | None = None
    start: datetime | None = None  # naive: local time in ``timezone``
    timezone: ZoneInfo | None = None
    rules: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Step:
    line: int
    action: str  # one of ACTIONS, or "check" for a step that only expects
    value: Any
    sender: str | None = None
    contact_name: str | None = None
    expect: Expect | None = None

    def describe(self) -> str:
        if self.action == "check":
            return "expect"
        value = self.value
        if isinstance(value, dict):
            value = value.get("name") or "..."
        elif isinstance(value, float):
            value = f"{value:g}s"
        return f"{self.action} {value!r}" if value is not True else self.action


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    line: int
    steps: tuple[Step, ...]
    given: Given


@dataclass(frozen=True, slots=True)
class Transcript:
    file: str
    given: Given
    tests: tuple[Case, ...]


class Plain(Spec):
    """Any YAML value, kept as it is (expected parameters and JSON)."""

    def __init__(self, description: str = "") -> None:
        self.description = description

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        return value

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        return self._doc({})


class Null(Spec):
    def __init__(self, description: str = "") -> None:
        self.description = description

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        return None

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        return self._doc({"type": "null"})


class Pattern(Spec):
    """A Python regular expression, case-sensitive (add ``(?i)`` to ignore case)."""

    def __init__(self, description: str = "") -> None:
        self.description = description

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        if not isinstance(value, str):
            return ctx.error(line, path, "expected a regex string")
        try:
            return re.compile(value)
        except re.error as exc:
            return ctx.error(line, path, f"bad regex {value!r}: {exc}")

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        return self._doc({"type": "string", "format": "regex"})


class LocalTime(Spec):
    """A local date and time: ``2026-11-25 09:30`` (seconds optional, ``T`` allowed)."""

    def __init__(self, description: str = "") -> None:
        self.description = description

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        text = str(value).strip().replace("T", " ") if isinstance(value, str) else None
        for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
            try:
                return datetime.strptime(text or "", fmt)
            except ValueError:
                continue
        return ctx.error(line, path, f"{value!r} is not a local time like '2026-11-25 09:30'")

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        return self._doc(
            {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?$"}
        )


class Zone(Spec):
    def __init__(self, description: str = "") -> None:
        self.description = description

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        try:
            return ZoneInfo(str(value))
        except (ZoneInfoNotFoundError, ValueError):
            return ctx.error(line, path, f"unknown timezone {value!r} (e.g. Asia/Singapore)")

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        return self._doc({"type": "string", "examples": ["UTC", "Asia/Singapore"]})


def _regex_obj(description: str) -> Obj:
    return Obj(
        {"regex": Field(Pattern("Searched in the text (re.search)."), required=True)},
        description,
        build=lambda f, line, ctx, path: TextMatch(regex=f["regex"]),
    )


def _text_match(description: str) -> AnyOf:
    return AnyOf(
        (
            (str, int, float),
            _Exact(description + " Exact text."),
        ),
        (dict, _regex_obj(description + " A regular expression.")),
        description=description,
    )


class _Exact(Str):
    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        text = super().parse(value, line, ctx, path)
        return INVALID if text is INVALID else TextMatch(exact=text)


def _build_call(f: dict[str, Any], line: int, ctx: Ctx, path: str) -> Any:
    kinds = [k for k in ("sms", "hoiio", "textit", "http") if f[k] is not None]
    if len(kinds) != 1:
        return ctx.error(line, path, "a call names exactly one of sms, hoiio, textit, http")
    kind = kinds[0]
    if kind != "sms" and (f["to"] is not None or f["via"] is not None):
        return ctx.error(line, path, "'to' and 'via' go with 'sms'")
    return CallMatch(
        line, kind, f[kind], f["to"], f["via"], f["say"], f["params"], f["json"], f["method"]
    )


CALL: Final = Obj(
    {
        "sms": Field(_text_match("An SMS with this text, through either provider.")),
        "to": Field(Str("The SMS went to this number (default: any).")),
        "via": Field(Enum(["hoiio", "textit"], "The SMS went through this provider.")),
        "hoiio": Field(_text_match("A Hoiio API call to this endpoint, e.g. ivr/middle/gather.")),
        "textit": Field(_text_match("A TextIt API call to this endpoint, e.g. broadcasts.json.")),
        "http": Field(_text_match("An HTTP call to this URL.")),
        "say": Field(_text_match("The IVR block says this (its msg).")),
        "params": Field(MapOf(Plain(), "Parameters the call has (a subset).")),
        "json": Field(Plain("The HTTP call's JSON body contains this (a subset).")),
        "method": Field(Str("The HTTP method.")),
    },
    "An outbound call the step made.",
    build=_build_call,
)

_NONE_OR_TEXT = AnyOf(
    (type(None), Null("No reply at all.")),
    ((str, int, float), _Exact("The reply's exact text.")),
    (dict, _regex_obj("A regular expression the reply matches.")),
    description="The text of the webhook's answer (TextIt); null: no reply.",
)


def _build_expect(f: dict[str, Any], line: int, ctx: Ctx, path: str) -> Any:
    values: dict[str, Any] = {k: (v if k in ctx.key_lines else ABSENT) for k, v in f.items()}
    values["nothing_sent"] = bool(f["nothing_sent"])
    return Expect(line, **values)


EXPECT: Final = Obj(
    {
        "reply": Field(_NONE_OR_TEXT),
        "json": Field(Plain("The webhook's JSON answer contains this (flow steps).")),
        "calls": Field(ListOf(CALL, "Every outbound call of the step, in order.", single=False)),
        "held": Field(ListOf(CALL, "Calls held back until quiet hours end.", single=False)),
        "nothing_sent": Field(Bool("No reply and no outbound call.")),
        "matched": Field(
            ListOf(Str(), "Exactly these rules matched (dialogue:NAME, compliance:stop).")
        ),
        "dialogue": Field(Str("The conversation is in this dialogue.")),
        "state": Field(Str("The conversation is in this state.")),
        "status": Field(
            Enum(["active", "ended", "none"], "The conversation is active, ended or absent.")
        ),
        "outcome": Field(_text_match("The conversation ended with this outcome.")),
        "vars": Field(MapOf(Plain(), "The conversation's variables include these.")),
        "errors": Field(
            ListOf(_text_match("A rule error."), "Run-time rule errors (else any fails).")
        ),
    },
    "What the step must lead to.",
    build=_build_expect,
)

ACTIONS: Final = (
    "sms",
    "call",
    "press",
    "record",
    "transfer",
    "dial",
    "played",
    "hangup",
    "flow",
    "webhook",
    "repeat",
    "wait",
    "at",
)

FLOW_VALUE: Final = AnyOf(
    ((str, int, float), Str("The value (its category is 'All Responses').")),
    (
        dict,
        Obj(
            {
                "value": Field(Str("The value."), required=True),
                "category": Field(Str("Its category.")),
                "text": Field(Str("What the contact typed.")),
            }
        ),
    ),
)

FLOW: Final = Obj(
    {
        "name": Field(Str("The flow's name.")),
        "uuid": Field(Str("The flow's UUID.")),
        "step": Field(Str("The node the flow is at.")),
        "text": Field(Str("The contact's last input.")),
        "values": Field(MapOf(FLOW_VALUE, "Results collected so far, by label.")),
    },
    "A TextIt flow reaches a webhook step (a JSON flow webhook).",
)


def _build_step(f: dict[str, Any], line: int, ctx: Ctx, path: str) -> Any:
    given = [k for k in ACTIONS if k in ctx.key_lines]
    if len(given) > 1:
        return ctx.error(line, path, f"one action per step, got {', '.join(given)}")
    if not given and f["expect"] is None:
        return ctx.error(line, path, f"a step needs an action ({', '.join(ACTIONS)}) or expect")
    action = given[0] if given else "check"
    value = f[action] if given else None
    if action in ("played", "hangup", "repeat") and value is not True:
        return ctx.error(line, path, f"{action}: expected true")
    return Step(line, action, value, f["from"], f["contact_name"], f["expect"])


STEP: Final = Obj(
    {
        "sms": Field(Str("The contact sends this SMS.")),
        "call": Field(
            Enum(
                ["incoming", "missed"],
                "The contact calls: incoming (Hoiio IVR answer, TextIt mo_call) or missed "
                "(TextIt mo_miss).",
            )
        ),
        "press": Field(Str("Keys pressed in the pending IVR gather ('' for none).")),
        "record": Field(
            AnyOf(
                (bool, Bool("A recording is made.")),
                (str, Str("The recording's URL.")),
            )
        ),
        "transfer": Field(Str(f"Result of the pending transfer: {HOIIO_RESULTS}.")),
        "dial": Field(Str(f"Result of the pending outbound call: {HOIIO_RESULTS}.")),
        "played": Field(Bool("The pending IVR play block finished.")),
        "hangup": Field(Bool("The caller hangs up.")),
        "flow": Field(FLOW),
        "webhook": Field(MapOf(Str(), "Raw webhook parameters for the provider.")),
        "repeat": Field(Bool("The provider sends the previous webhook again (a retry).")),
        "wait": Field(Duration("Move the clock on; due timers fire.", max_seconds=MAX_WAIT)),
        "at": Field(LocalTime("Move the clock on to this local time.")),
        "from": Field(Str("This step comes from another contact.")),
        "contact_name": Field(Str("The contact's name for this step (TextIt).")),
        "expect": Field(EXPECT),
    },
    "One thing that happens, and what it must lead to.",
    build=_build_step,
)


def _build_given(f: dict[str, Any], line: int, ctx: Ctx, path: str) -> Any:
    rules = f["rules"]
    return Given(
        f["provider"],
        f["channel"],
        f["contact"],
        f["contact_name"],
        f["number"],
        f["start"],
        f["timezone"],
        tuple(rules) if rules is not None else None,
    )


GIVEN: Final = Obj(
    {
        "provider": Field(Enum(["textit", "hoiio"], "Which provider the contact uses.")),
        "channel": Field(Str("The webhook channel name (default: the provider's).")),
        "contact": Field(Str("The contact's number (default +6591234567).")),
        "contact_name": Field(Str("The contact's name (TextIt).")),
        "number": Field(Str("Our number (default +6531234567).")),
        "start": Field(LocalTime("The clock starts here (default 2026-01-05 10:00, a Monday).")),
        "timezone": Field(Zone("Timezone of start and at (default UTC).")),
        "rules": Field(ListOf(Str(), "Rule files or directories, relative to this file.")),
    },
    "Who, where and when.",
    build=_build_given,
)


def _build_case(f: dict[str, Any], line: int, ctx: Ctx, path: str) -> Any:
    return Case(f["name"], line, f["steps"], f["given"] or Given())


CASE: Final = Obj(
    {
        "name": Field(Str("What the test shows.", max_len=200), required=True),
        "given": Field(GIVEN),
        "steps": Field(
            ListOf(STEP, "What happens, in order.", single=False, min_items=1, max_items=MAX_STEPS),
            required=True,
        ),
    },
    "One conversation from a fresh store.",
    build=_build_case,
)

TRANSCRIPT: Final = Obj(
    {
        "given": Field(GIVEN),
        "tests": Field(
            ListOf(CASE, "The tests.", single=False, min_items=1, max_items=MAX_TESTS),
            required=True,
        ),
    },
    "A responder transcript test file (*.test.yaml).",
    title="responder transcript",
    build=lambda f, line, ctx, path: Transcript(ctx.file, f["given"] or Given(), f["tests"]),
)
