"""The ``compliance:`` block of the rules language (at most one per rule set)."""

from __future__ import annotations

from typing import Any, Final

from responder.matching.compliance import (
    DEFAULT_HELP,
    DEFAULT_START,
    DEFAULT_START_REPLY,
    DEFAULT_STOP,
    DEFAULT_STOP_REPLY,
    Compliance,
    QuietHours,
    Window,
)
from responder.matching.conditions import words
from responder.rules.spec import (
    INVALID,
    Ctx,
    Duration,
    Enum,
    Field,
    Int,
    ListOf,
    Obj,
    Str,
)
from responder.rules.terms import TEXTIT_REPLY_MAX, HoursSpec, TimezoneSpec


def _keyword_list(description: str) -> ListOf:
    return ListOf(Str(max_len=40), description, min_items=1)


def _build_keywords(default_words: tuple[str, ...], default_reply: str | None) -> Any:
    def build(fields: dict[str, Any], line: int, ctx: Ctx, path: str) -> Any:
        found: list[str] = []
        for word in fields["words"] or default_words:
            parts = words(word)
            if len(parts) != 1:
                return ctx.error(line, f"{path}.words", f"{word!r} is not a single word")
            found.append(parts[0])
        reply = (
            fields["reply"]
            if "reply" in fields and fields["reply"] is not None
            else (default_reply)
        )
        return frozenset(found), reply

    return build


def _keywords(what: str, default_words: tuple[str, ...], default_reply: str | None) -> Obj:
    return Obj(
        {
            "words": Field(_keyword_list(f"Whole-message words that mean {what}.")),
            "reply": Field(Str(f"Confirmation sent for {what}.", max_len=TEXTIT_REPLY_MAX)),
        },
        f"The {what} keywords and their answer.",
        build=_build_keywords(default_words, default_reply),
    )


def _build_quiet(fields: dict[str, Any], line: int, ctx: Ctx, path: str) -> Any:
    start, end = fields["hours"]
    return QuietHours(fields["timezone"], start, end, fields["action"])


QUIET: Final = Obj(
    {
        "timezone": Field(TimezoneSpec("IANA timezone of the contacts."), required=True),
        "hours": Field(HoursSpec("Quiet window, e.g. 21:00-08:00."), required=True),
        "action": Field(
            Enum(["defer", "drop"], "Hold messages until the window ends, or do not send them."),
            default="defer",
        ),
    },
    "No proactive SMS (reminders, messages to other numbers) inside this window.",
    build=_build_quiet,
)


def _window(count_key: str, description: str) -> Obj:
    return Obj(
        {
            count_key: Field(Int("How many.", min=1, max=100_000), required=True),
            "every" if count_key == "per_contact" else "within": Field(
                Duration("The window."), required=True
            ),
        },
        description,
        build=lambda f, line, ctx, path: Window(
            f[count_key], f["every"] if "every" in f else f["within"]
        ),
    )


def _build(fields: dict[str, Any], line: int, ctx: Ctx, path: str) -> Any:
    stop = fields["stop"] or (frozenset(DEFAULT_STOP), DEFAULT_STOP_REPLY)
    start = fields["start"] or (frozenset(DEFAULT_START), DEFAULT_START_REPLY)
    help_ = fields["help"] or (frozenset(DEFAULT_HELP), None)
    lists = (("stop", stop[0]), ("start", start[0]), ("help", help_[0]))
    for index, (later, later_words) in enumerate(lists):
        for earlier, earlier_words in lists[:index]:
            clash = sorted(later_words & earlier_words)
            if clash:
                # Reported at the list that repeats a word (or the block, for a default list).
                where = later if later in ctx.key_lines else earlier
                return ctx.error(
                    ctx.key_lines.get(where, line),
                    f"{path}.{where}.words",
                    f"{clash[0]!r} is also a {later if where == earlier else earlier} word",
                )
    guard = fields["loop_guard"]
    return Compliance(
        stop_words=stop[0],
        start_words=start[0],
        help_words=help_[0],
        stop_reply=stop[1] or DEFAULT_STOP_REPLY,
        start_reply=start[1] or DEFAULT_START_REPLY,
        help_reply=help_[1],
        quiet_hours=fields["quiet_hours"],
        cap=fields["cap"],
        loop_guard=guard if guard is not None else Window(10, 60.0),
        file=ctx.file,
        line=line,
    )


COMPLIANCE: Final = Obj(
    {
        "stop": Field(_keywords("opting out", DEFAULT_STOP, DEFAULT_STOP_REPLY)),
        "start": Field(_keywords("opting back in", DEFAULT_START, DEFAULT_START_REPLY)),
        "help": Field(
            _keywords("help (without a reply, HELP goes to the rules)", DEFAULT_HELP, None)
        ),
        "quiet_hours": Field(QUIET),
        "cap": Field(
            _window(
                "per_contact",
                "At most this many messages to one contact per "
                "window; the rest are dropped and logged.",
            )
        ),
        "loop_guard": Field(
            _window(
                "replies",
                "More replies than this to one contact within "
                "the window means two auto-responders are "
                "talking: stop replying (default 10 in 60s).",
            )
        ),
    },
    "Opt-out keywords, quiet hours and caps, applied ahead of every rule and dialogue.",
    build=_build,
)

__all__ = ["COMPLIANCE", "INVALID"]
