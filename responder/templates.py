"""One sandboxed jinja2 environment; templates are compiled once, when rules load."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Names a template may use; `check` rejects any other free variable before it can fail live.
CONTEXT_NAMES: Final[frozenset[str]] = frozenset(
    {
        "contact",
        "contact_name",
        "contact_uuid",
        "urn",
        "text",
        "digits",
        "session",
        "status",
        "channel",
        "channel_number",
        "provider",
        "kind",
        "event",
        "values",
        "flow",
        "captures",
        "attachments",
        "now",
        "rule",
        "vars",
        "calendars",
    }
)

# Every limit has a number: rendered text longer than this is an error, not an SMS storm.
MAX_OUTPUT_CHARS: Final = 10_000


class TemplateError(Exception):
    """A template failed to compile or render; ``lineno`` is relative to the template."""

    def __init__(self, message: str, lineno: int | None = None) -> None:
        super().__init__(message)
        self.lineno = lineno


def _new_env() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@dataclass(frozen=True, slots=True)
class Template:
    """A compiled template: rule-author source, rendered against event data only."""

    source: str
    _render: Callable[..., str]

    def render(self, context: Mapping[str, Any]) -> str:
        try:
            out = self._render(context)
        except Exception as exc:  # jinja raises many kinds; all mean "this render failed"
            raise TemplateError(f"{type(exc).__name__}: {exc}") from None
        if len(out) > MAX_OUTPUT_CHARS:
            raise TemplateError(f"output is {len(out)} characters (limit {MAX_OUTPUT_CHARS})")
        return out


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled boolean expression (the ``expr`` condition)."""

    source: str
    _evaluate: Callable[..., Any]

    def evaluate(self, context: Mapping[str, Any]) -> bool:
        try:
            return bool(self._evaluate(**context))
        except Exception as exc:
            raise TemplateError(f"{type(exc).__name__}: {exc}") from None


class Templates:
    """Compiles templates and expressions in one sandboxed environment."""

    def __init__(self) -> None:
        self.env = _new_env()
        self._allowed = CONTEXT_NAMES | frozenset(self.env.globals)

    def _check_names(self, ast: nodes.Template) -> None:
        unknown = sorted(meta.find_undeclared_variables(ast) - self._allowed)
        if unknown:
            raise TemplateError(
                f"unknown variable {unknown[0]!r} (known: {', '.join(sorted(CONTEXT_NAMES))})"
            )

    def template(self, source: str) -> Template:
        """Compile ``source`` or raise TemplateError naming the problem."""
        try:
            ast = self.env.parse(source)
            self._check_names(ast)
            compiled = self.env.from_string(ast)
        except TemplateSyntaxError as exc:
            raise TemplateError(f"template syntax error: {exc.message}", exc.lineno) from None
        return Template(source, compiled.render)

    def expression(self, source: str) -> Expression:
        """Compile a boolean expression or raise TemplateError."""
        try:
            ast = self.env.parse("{{ " + source + " }}")
            self._check_names(ast)
            compiled = self.env.compile_expression(source, undefined_to_none=False)
        except TemplateSyntaxError as exc:
            raise TemplateError(f"expression syntax error: {exc.message}") from None
        return Expression(source, compiled)
