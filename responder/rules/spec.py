"""A small declarative spec for the rules language: validates located YAML, reports every
problem with its line, converts values to compiled objects, and emits JSON Schema."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from responder.errors import Problem, TemplateError
from responder.matching.bounded import Regex
from responder.matching.calendars import calendar_names
from responder.matching.regex import UnsafeRegex, check_regex
from responder.rules.yamlnodes import LMap, LSeq
from responder.templating.templates import Templates

# The schemas of recursive specs (``when`` inside ``not``), by name, collected while one
# top-level ``schema()`` call runs and emitted once under ``$defs``.
Defs = dict[str, dict[str, Any]]


class _Invalid:
    def __repr__(self) -> str:
        return "INVALID"


INVALID: Final = _Invalid()


@dataclass(slots=True)
class Ctx:
    """Where we are and what went wrong so far, for one file."""

    file: str
    templates: Templates
    problems: list[Problem] = field(default_factory=list)
    # Line of each key of the mapping whose ``build`` is running (set by Obj just before it
    # calls ``build``), so cross-field problems point at the key they are about.
    key_lines: Mapping[str, int] = field(default_factory=dict)
    # ``open:`` / ``closed:`` names as (name, line, path): calendars may be defined in any
    # file, so the loader checks them once every file is read.
    calendar_refs: list[tuple[str, int, str]] = field(default_factory=list)

    def error(self, line: int, path: str, message: str) -> _Invalid:
        where = f"{path}: " if path else ""
        self.problems.append(Problem(self.file, line, f"{where}{message}"))
        return INVALID


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


class Spec:
    """One node of the language: parse(value) -> converted value or INVALID."""

    description: str = ""

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        raise NotImplementedError

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        raise NotImplementedError

    def _doc(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self.description:
            schema["description"] = self.description
        return schema


class Str(Spec):
    def __init__(
        self,
        description: str = "",
        *,
        max_len: int | None = None,
        pattern: str | None = None,
        pattern_hint: str = "",
    ) -> None:
        self.description = description
        self.max_len = max_len
        self.pattern = re.compile(pattern) if pattern else None
        self.pattern_hint = pattern_hint

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        if isinstance(value, bool) or value is None or isinstance(value, list | dict):
            return ctx.error(line, path, f"expected a string, got {_type_name(value)}")
        text = str(value)
        if self.max_len is not None and len(text) > self.max_len:
            return ctx.error(line, path, f"longer than {self.max_len} characters")
        if self.pattern and not self.pattern.fullmatch(text):
            return ctx.error(line, path, f"{text!r} is not {self.pattern_hint or 'valid'}")
        return text

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string"}
        if self.max_len is not None:
            out["maxLength"] = self.max_len
        if self.pattern is not None:
            out["pattern"] = f"^(?:{self.pattern.pattern})$"
        return self._doc(out)


class Int(Spec):
    def __init__(
        self, description: str = "", *, min: int | None = None, max: int | None = None
    ) -> None:
        self.description = description
        self.min, self.max = min, max

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            return ctx.error(line, path, f"expected an integer, got {_type_name(value)}")
        if self.min is not None and value < self.min:
            return ctx.error(line, path, f"must be at least {self.min}")
        if self.max is not None and value > self.max:
            return ctx.error(line, path, f"must be at most {self.max}")
        return value

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "integer"}
        if self.min is not None:
            out["minimum"] = self.min
        if self.max is not None:
            out["maximum"] = self.max
        return self._doc(out)


class Number(Spec):
    def __init__(self, description: str = "") -> None:
        self.description = description

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return ctx.error(line, path, f"expected a number, got {_type_name(value)}")
        return float(value)

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        return self._doc({"type": "number"})


class Bool(Spec):
    def __init__(self, description: str = "") -> None:
        self.description = description

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        if not isinstance(value, bool):
            return ctx.error(line, path, f"expected true or false, got {_type_name(value)}")
        return value

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        return self._doc({"type": "boolean"})


class Enum(Spec):
    def __init__(self, values: list[str], description: str = "") -> None:
        self.values = values
        self.description = description

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        if not isinstance(value, str) or value not in self.values:
            hint = _suggest(str(value), self.values)
            return ctx.error(line, path, f"{value!r} is not one of {', '.join(self.values)}{hint}")
        return value

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        return self._doc({"enum": list(self.values)})


_DURATION = re.compile(r"(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?")


class Duration(Spec):
    """Seconds, or a string like ``90s``, ``15m``, ``6h``, ``1d``, ``1h30m``."""

    def __init__(self, description: str = "", *, max_seconds: int = 366 * 86400) -> None:
        self.description = description
        self.max_seconds = max_seconds

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        seconds: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = float(value)
        elif isinstance(value, str) and value.strip():
            match = _DURATION.fullmatch(value.strip())
            if match and any(match.groups()):
                d, h, m, s = (int(g or 0) for g in match.groups())
                seconds = float(d * 86400 + h * 3600 + m * 60 + s)
        if seconds is None:
            return ctx.error(line, path, f"{value!r} is not a duration (e.g. 30s, 15m, 6h, 1d)")
        if not 0 < seconds <= self.max_seconds:
            return ctx.error(line, path, f"duration must be between 1s and {self.max_seconds}s")
        return seconds

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        return self._doc(
            {
                "anyOf": [
                    {"type": "number", "exclusiveMinimum": 0},
                    {"type": "string", "pattern": r"^(\d+d)?\s*(\d+h)?\s*(\d+m)?\s*(\d+s)?$"},
                ]
            }
        )


class ListOf(Spec):
    """A list of items; with ``single=True`` one bare item stands for a list of one."""

    def __init__(
        self,
        item: Spec,
        description: str = "",
        *,
        single: bool = True,
        min_items: int = 0,
        max_items: int | None = None,
        partial: bool = False,
    ) -> None:
        self.item = item
        self.description = description
        self.single = single
        self.min_items = min_items
        self.max_items = max_items
        # partial: drop invalid items (their problems are already reported) and keep the
        # valid ones, so checks across items (duplicate rule names) still see them.
        self.partial = partial

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        if not isinstance(value, list):
            if self.single and value is not None:
                value, lines = [value], [getattr(value, "line", line)]
            else:
                return ctx.error(line, path, f"expected a list, got {_type_name(value)}")
        else:
            lines = value.item_lines if isinstance(value, LSeq) else [line] * len(value)
        if len(value) < self.min_items:
            return ctx.error(line, path, f"needs at least {self.min_items} item(s)")
        if self.max_items is not None and len(value) > self.max_items:
            return ctx.error(line, path, f"has more than {self.max_items} items")
        out = []
        bad = False
        for index, (item, item_line) in enumerate(zip(value, lines, strict=True)):
            parsed = self.item.parse(item, item_line, ctx, f"{path}[{index}]")
            bad = bad or parsed is INVALID
            out.append(parsed)
        if self.partial:
            return tuple(item for item in out if item is not INVALID)
        return INVALID if bad else tuple(out)

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        arr: dict[str, Any] = {"type": "array", "items": self.item.schema(defs)}
        if self.min_items:
            arr["minItems"] = self.min_items
        if self.max_items is not None:
            arr["maxItems"] = self.max_items
        if self.single:
            return self._doc({"anyOf": [self.item.schema(defs), arr]})
        return self._doc(arr)


class MapOf(Spec):
    """A mapping from free-form string keys to values of one spec."""

    def __init__(self, value: Spec, description: str = "") -> None:
        self.value = value
        self.description = description

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        if not isinstance(value, dict):
            return ctx.error(line, path, f"expected a mapping, got {_type_name(value)}")
        key_lines = value.key_lines if isinstance(value, LMap) else {}
        out: dict[str, Any] = {}
        bad = False
        for key, item in value.items():
            parsed = self.value.parse(item, key_lines.get(key, line), ctx, f"{path}.{key}")
            bad = bad or parsed is INVALID
            out[key] = parsed
        return INVALID if bad else out

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        return self._doc({"type": "object", "additionalProperties": self.value.schema(defs)})


@dataclass(frozen=True, slots=True)
class Field:
    spec: Spec | Callable[[], Spec]
    required: bool = False
    default: Any = None

    def resolve(self) -> Spec:
        return self.spec if isinstance(self.spec, Spec) else self.spec()


class Obj(Spec):
    """A mapping with known keys; unknown keys are errors with a suggestion.

    ``build`` turns the parsed fields into a model object; it gets the line of the mapping
    so it can report cross-field problems.
    """

    def __init__(
        self,
        fields: Mapping[str, Field],
        description: str = "",
        *,
        build: Callable[[dict[str, Any], int, Ctx, str], Any] | None = None,
        min_keys: int = 0,
        title: str | None = None,
        ref: str | None = None,
    ) -> None:
        self.fields = dict(fields)
        self.description = description
        self.build = build
        self.min_keys = min_keys
        self.title = title
        # ref: a recursive spec (``when`` inside ``not``) is emitted once under $defs/<ref>
        # and referenced everywhere, so schema() terminates.
        self.ref = ref

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        if not isinstance(value, dict):
            return ctx.error(line, path, f"expected a mapping, got {_type_name(value)}")
        key_lines = value.key_lines if isinstance(value, LMap) else {}
        line = getattr(value, "line", line)
        out: dict[str, Any] = {}
        bad = False
        for key, item in value.items():
            key_line = key_lines.get(key, line)
            sub = f"{path}.{key}" if path else key
            if key not in self.fields:
                hint = _suggest(key, list(self.fields))
                ctx.error(key_line, path, f"unknown key {key!r}{hint}")
                bad = True
                continue
            parsed = self.fields[key].resolve().parse(item, key_line, ctx, sub)
            bad = bad or parsed is INVALID
            out[key] = parsed
        for name, spec_field in self.fields.items():
            if name not in out and name not in value:
                if spec_field.required:
                    ctx.error(line, path, f"missing required key {name!r}")
                    bad = True
                else:
                    out[name] = spec_field.default
        if (
            not bad
            and self.min_keys
            and len([k for k in value if k in self.fields]) < self.min_keys
        ):
            need = ", ".join(self.fields)
            ctx.error(line, path, f"needs at least one of: {need}")
            bad = True
        if bad:
            return INVALID
        if self.build is None:
            return out
        ctx.key_lines = {key: key_lines.get(key, line) for key in value}
        return self.build(out, line, ctx, path)

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        top = defs is None
        if defs is None:
            defs = {}
        if self.ref is not None:
            if self.ref not in defs:
                defs[self.ref] = {}  # placeholder: recursive uses refer to it
                defs[self.ref] = self._schema(defs)
            out: dict[str, Any] = {"$ref": f"#/$defs/{self.ref}"}
        else:
            out = self._schema(defs)
        if top and defs:
            out = {**out, "$defs": dict(defs)}
        return out

    def _schema(self, defs: Defs) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "object",
            "properties": {name: f.resolve().schema(defs) for name, f in self.fields.items()},
            "additionalProperties": False,
        }
        required = [name for name, f in self.fields.items() if f.required]
        if required:
            out["required"] = required
        if self.min_keys:
            out["minProperties"] = self.min_keys
        if self.title:
            out["title"] = self.title
        return self._doc(out)


class AnyOf(Spec):
    """The first alternative whose shape fits the value (chosen by type, not by trial)."""

    def __init__(
        self, *alternatives: tuple[type | tuple[type, ...], Spec], description: str = ""
    ) -> None:
        self.alternatives = alternatives
        self.description = description

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        for types, spec in self.alternatives:
            if isinstance(value, types) and not (
                isinstance(value, bool)
                and bool not in (types if isinstance(types, tuple) else (types,))
            ):
                return spec.parse(value, line, ctx, path)
        return ctx.error(line, path, f"unexpected {_type_name(value)}")

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        return self._doc({"anyOf": [spec.schema(defs) for _, spec in self.alternatives]})


class TemplateSpec(Spec):
    """A jinja2 template string, compiled now; syntax errors and unknown names reported."""

    def __init__(
        self, description: str = "", *, max_len: int | None = None, where: str | None = None
    ) -> None:
        self.description = description
        self.max_len = max_len
        self.where = where  # "url" or "header": its {{ }} parts are encoded for it

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        if isinstance(value, bool) or value is None or isinstance(value, list | dict):
            return ctx.error(line, path, f"expected a template string, got {_type_name(value)}")
        source = str(value)
        try:
            if self.where is None:
                template = ctx.templates.template(source)
            else:
                template = ctx.templates.encoded(source, self.where)
        except TemplateError as exc:
            return ctx.error(line, path, str(exc))
        _note_calendars(ctx, source, line, path)
        if self.max_len is None:
            return template
        if "{" not in source:
            if len(source) > self.max_len:
                return ctx.error(
                    line, path, f"text is {len(source)} characters; the limit is {self.max_len}"
                )
        elif len(source) > self.max_len and (
            (least := ctx.templates.least_output(source)) > self.max_len
        ):
            # The literal text alone is over the limit, whatever the {{ }} parts render to
            # (it is never longer than the source: short sources are not parsed for it).
            return ctx.error(
                line,
                path,
                f"text is at least {least} characters without its {{{{ }}}} parts; "
                f"the limit is {self.max_len}",
            )
        return template

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"type": ["string", "number"]}
        return self._doc(out)


class ExpressionSpec(Spec):
    def __init__(self, description: str = "") -> None:
        self.description = description

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        if not isinstance(value, str):
            return ctx.error(line, path, f"expected an expression string, got {_type_name(value)}")
        try:
            expression = ctx.templates.expression(value)
        except TemplateError as exc:
            return ctx.error(line, path, str(exc))
        _note_calendars(ctx, "{{ " + value + " }}", line, path)
        return expression

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        return self._doc({"type": "string"})


class RegexSpec(Spec):
    """A Python regular expression, compiled now (case-insensitive unless it says otherwise)."""

    def __init__(self, description: str = "") -> None:
        self.description = description

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        if not isinstance(value, str):
            return ctx.error(line, path, f"expected a regex string, got {_type_name(value)}")
        try:
            compiled = Regex.compile(value, re.IGNORECASE)
            check_regex(value, re.IGNORECASE)
        except re.error as exc:
            return ctx.error(line, path, f"bad regex {value!r}: {exc}")
        except UnsafeRegex as exc:
            return ctx.error(line, path, f"regex {value!r} refused: {exc}")
        return compiled

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        return self._doc({"type": "string", "format": "regex"})


class JsonTemplate(Spec):
    """Any JSON value; every string inside is a template rendered at reply time."""

    def __init__(self, description: str = "") -> None:
        self.description = description

    def parse(self, value: Any, line: int, ctx: Ctx, path: str) -> Any:
        if isinstance(value, str):
            return TemplateSpec().parse(value, line, ctx, path)
        if isinstance(value, dict):
            key_lines = value.key_lines if isinstance(value, LMap) else {}
            out = {}
            for key, item in value.items():
                out[key] = self.parse(item, key_lines.get(key, line), ctx, f"{path}.{key}")
            return INVALID if any(v is INVALID for v in out.values()) else out
        if isinstance(value, list):
            lines = value.item_lines if isinstance(value, LSeq) else [line] * len(value)
            items = [
                self.parse(v, ln, ctx, f"{path}[{i}]")
                for i, (v, ln) in enumerate(zip(value, lines, strict=True))
            ]
            return INVALID if any(v is INVALID for v in items) else items
        if value is None or isinstance(value, bool | int | float):
            return value
        return ctx.error(line, path, f"unsupported value {_type_name(value)}")

    def schema(self, defs: Defs | None = None) -> dict[str, Any]:
        return self._doc({})


def _note_calendars(ctx: Ctx, source: str, line: int, path: str) -> None:
    """Calendars a template reads are checked like ``open:`` names, once every file is read."""
    if "calendars" not in source:
        return
    for name in sorted(calendar_names(ctx.templates.env.parse(source))):
        ctx.calendar_refs.append((name, line, path))


def _suggest(word: str, choices: list[str]) -> str:
    same = [choice for choice in choices if choice.casefold() == word.casefold()]
    close = same or difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
