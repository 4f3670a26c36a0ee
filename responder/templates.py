"""One sandboxed jinja2 environment; templates are compiled once, when rules load."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes

from responder.sandbox import MAX_OUTPUT_CHARS, Sandbox

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


class TemplateError(Exception):
    """A template failed to compile or render; ``lineno`` is relative to the template."""

    def __init__(self, message: str, lineno: int | None = None) -> None:
        super().__init__(message)
        self.lineno = lineno


def _new_env(**limits: Any) -> Sandbox:
    return Sandbox(
        **limits,
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
    _generate: Callable[[Mapping[str, Any]], Iterator[str]]
    _env: Sandbox

    def render(self, context: Mapping[str, Any]) -> str:
        """The rendered text, or TemplateError; never a partial text."""
        try:
            return str(self._env.run(self._env.budget(), lambda: self._collect(context)))
        except TemplateError:
            raise
        except Exception as exc:  # jinja raises many kinds; all mean "this render failed"
            raise TemplateError(f"{type(exc).__name__}: {exc}") from None

    def _collect(self, context: Mapping[str, Any]) -> str:
        # Streamed, so a template that would print forever stops at the cap.
        parts: list[str] = []
        size = 0
        for part in self._generate(context):
            size += len(part)
            if size > MAX_OUTPUT_CHARS:
                raise TemplateError(f"output is longer than {MAX_OUTPUT_CHARS} characters")
            parts.append(part)
        return "".join(parts)


@dataclass(frozen=True, slots=True)
class Expression:
    """A compiled boolean expression (the ``expr`` condition)."""

    source: str
    _evaluate: Callable[..., Any]
    _env: Sandbox

    def evaluate(self, context: Mapping[str, Any]) -> bool:
        try:
            return bool(self._env.run(self._env.budget(), lambda: self._evaluate(**context)))
        except Exception as exc:
            raise TemplateError(f"{type(exc).__name__}: {exc}") from None


def _check_private(ast: nodes.Template) -> None:
    """Refuse at load time what the sandbox would refuse at render: ``x.__class__``,
    ``x['_y']``, ``x | attr('__init__')`` (sandbox escapes, never needed in a reply)."""
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        name: Any = None
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = node.arg.value
        elif isinstance(node, nodes.Filter) and node.name == "attr" and node.args:
            arg = node.args[0]
            name = arg.value if isinstance(arg, nodes.Const) else None
        if isinstance(name, str) and name.startswith("_"):
            raise TemplateError(f"access to private attribute {name!r} is refused", node.lineno)


class Templates:
    """Compiles templates and expressions in one sandboxed environment."""

    def __init__(self, **limits: Any) -> None:
        self.env = _new_env(**limits)
        self._allowed = CONTEXT_NAMES | frozenset(self.env.globals)

    def _check_names(self, ast: nodes.Template) -> None:
        _check_private(ast)
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
        return Template(source, compiled.generate, self.env)

    def expression(self, source: str) -> Expression:
        """Compile a boolean expression or raise TemplateError."""
        try:
            ast = self.env.parse("{{ " + source + " }}")
            self._check_names(ast)
            compiled = self.env.compile_expression(source, undefined_to_none=False)
        except TemplateSyntaxError as exc:
            raise TemplateError(f"expression syntax error: {exc.message}") from None
        return Expression(source, compiled, self.env)
