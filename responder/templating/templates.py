"""One sandboxed jinja2 environment; templates are parsed and checked once, when rules load,
and compiled to Python at their first render (text without ``{`` is never compiled)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2 import Template as JinjaTemplate
from jinja2.lexer import newline_re

from responder.errors import TemplateError
from responder.printable import one_line
from responder.templating.sandbox import MAX_OUTPUT_CHARS, Sandbox

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


def _url_part(value: Any) -> str:
    """What a ``{{ }}`` of a URL template puts into the URL: percent-encoded, so a value
    (a contact, a text) can add no query parameter, path segment or fragment of its own."""
    return quote(str(value), safe="")


def _header_part(value: Any) -> str:
    """What a ``{{ }}`` of a header template puts into the header: one line, control
    characters escaped, so a value can end the header or start another one."""
    return one_line(str(value))


def _new_env(finalize: Callable[[Any], Any] | None = None, **limits: Any) -> Sandbox:
    return Sandbox(
        **limits,
        finalize=finalize,
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
    # Whether a render can spend steps (loops, calls): only then is a budget set up for it.
    _budgeted: bool = True

    def render(self, context: Mapping[str, Any]) -> str:
        """The rendered text, or TemplateError; never a partial text."""
        try:
            if not self._budgeted:
                return self._collect(context)
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


# Nodes that cannot declare a variable: in a template made only of these, every name read
# comes from the context, and jinja2's own (costly) analysis has nothing to add.
_PLAIN: Final = (
    nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name, nodes.Getattr,
    nodes.Getitem, nodes.Slice, nodes.Const, nodes.Filter, nodes.Test, nodes.CondExpr,
    nodes.Compare, nodes.Operand, nodes.And, nodes.Or, nodes.Not, nodes.Neg, nodes.Pos,
    nodes.Concat, nodes.Add, nodes.Sub, nodes.Mul, nodes.Div, nodes.FloorDiv, nodes.Mod,
    nodes.Pow, nodes.List, nodes.Tuple, nodes.Dict, nodes.Pair, nodes.Keyword, nodes.Call,
    nodes.If,
)  # fmt: skip


def _budgeted(ast: nodes.Template) -> bool:
    """Whether rendering ``ast`` can spend from a budget: it loops or calls (filters and
    tests are no calls), or holds something beyond the plain expression nodes."""
    return any(
        isinstance(node, nodes.Call) or not isinstance(node, _PLAIN)
        for node in ast.find_all(nodes.Node)
    )


def _static(source: str) -> str:
    """What jinja2 renders for a source without any tag: newlines normalised, one trailing
    newline dropped."""
    lines = newline_re.split(source)[::2]
    if lines[-1] == "":
        del lines[-1]
    return "\n".join(lines)


class _Text:
    """The render function of a text without tags."""

    __slots__ = ("parts",)

    def __init__(self, text: str) -> None:
        self.parts = (text,) if text else ()

    def __call__(self, context: Mapping[str, Any]) -> Iterator[str]:
        return iter(self.parts)


# Text with only ``{{ name }}`` / ``{{ name.attr }}`` tags (the common case): checked by this
# pattern alone, and parsed as well as compiled at its first render.
_SIMPLE_TAG: Final = re.compile(
    r"\{\{ ?([A-Za-z][A-Za-z0-9_]*)((?:\.[A-Za-z][A-Za-z0-9_]*)*) ?\}\}"
)


def _flat_globals(template: JinjaTemplate) -> JinjaTemplate:
    """``template`` with its globals in a plain dict: jinja2 keeps them as a ChainMap over the
    environment's (fixed once the sandbox is built) and copies that into every render's
    context, which took half the time of a short render."""
    template.globals = dict(template.globals)
    return template


class _Lazy:
    """The render function of a checked template, compiled to Python when first called."""

    __slots__ = ("ast", "env", "template")

    def __init__(self, env: Sandbox, ast: nodes.Template | str) -> None:
        self.env = env
        self.ast: nodes.Template | str | None = ast
        self.template: JinjaTemplate | None = None

    def __call__(self, context: Mapping[str, Any]) -> Iterator[str]:
        template = self.template
        if template is None:
            assert self.ast is not None
            template = self.template = _flat_globals(self.env.from_string(self.ast))
            self.ast = None
        # ``template.generate(context)``, with the globals and the context copied once into
        # the render's own dict (generate copies the context, then both again); an error is
        # the same exception, generate only rewrote its traceback.
        variables = {**template.globals, **context}
        return template.root_render_func(template.new_context(variables, shared=True))


class Templates:
    """Compiles templates and expressions in one sandboxed environment."""

    def __init__(self, **limits: Any) -> None:
        self.env = _new_env(**limits)
        # Templates whose every {{ }} is encoded for where it goes (see _url_part, _header_part).
        self._envs = {
            "url": _new_env(_url_part, **limits),
            "header": _new_env(_header_part, **limits),
        }
        self._allowed = CONTEXT_NAMES | frozenset(self.env.globals)
        self._known: dict[str, Template] = {}  # by source: rule sets repeat their texts
        self._known_in: dict[tuple[str, str], Template] = {}

    def _plain_and_known(self, ast: nodes.Template) -> bool:
        """Whether ``ast`` declares nothing, reads only known names and uses only known
        filters and tests: then it passes jinja2's analysis too."""
        env = self.env
        for node in ast.find_all(nodes.Node):
            if not isinstance(node, _PLAIN):
                return False
            if isinstance(node, nodes.Name) and node.name not in self._allowed:
                return False
            if isinstance(node, nodes.Filter) and node.name not in env.filters:
                return False
            if isinstance(node, nodes.Test) and node.name not in env.tests:
                return False
        return True

    def _simple(self, source: str) -> bool:
        """Whether every tag of ``source`` is a known name, perhaps with public attributes:
        such a template parses, and passes every check."""
        names = []
        for match in _SIMPLE_TAG.finditer(source):
            names.append(match.group(1))
        if not names or "{" in _SIMPLE_TAG.sub("", source):
            return False
        return all(name in self._allowed for name in names)

    def _check_names(self, ast: nodes.Template) -> None:
        _check_private(ast)
        if self._plain_and_known(ast):
            return
        unknown = sorted(meta.find_undeclared_variables(ast) - self._allowed)
        if unknown:
            raise TemplateError(
                f"unknown variable {unknown[0]!r} (known: {', '.join(sorted(CONTEXT_NAMES))})"
            )

    def template(self, source: str) -> Template:
        """Check ``source`` (compiled at its first render) or raise TemplateError naming the
        problem."""
        known = self._known.get(source)
        if known is not None:
            return known
        if "{" not in source:
            template = Template(source, _Text(_static(source)), self.env, _budgeted=False)
        elif self._simple(source):
            template = Template(source, _Lazy(self.env, source), self.env, _budgeted=False)
        else:
            try:
                ast = self.env.parse(source)
                self._check_names(ast)
            except TemplateSyntaxError as exc:
                raise TemplateError(f"template syntax error: {exc.message}", exc.lineno) from None
            template = Template(source, _Lazy(self.env, ast), self.env, _budgeted(ast))
        self._known[source] = template
        return template

    def encoded(self, source: str, where: str) -> Template:
        """``template(source)`` for a URL (``where="url"``: every ``{{ }}`` percent-encoded)
        or a header value (``"header"``: every ``{{ }}`` on one line)."""
        known = self._known_in.get((where, source))
        if known is not None:
            return known
        checked = self.template(source)  # the checks, and their errors, are the same
        env = self._envs[where]
        if "{" not in source:
            template = checked
        elif self._simple(source):
            template = Template(source, _Lazy(env, source), env, _budgeted=False)
        else:
            ast = env.parse(source)
            template = Template(source, _Lazy(env, ast), env, _budgeted(ast))
        self._known_in[(where, source)] = template
        return template

    def least_output(self, source: str) -> int:
        """Characters every rendering of ``source`` outputs at least: its literal text, when
        no ``{% %}`` block can leave part of it out (0 otherwise). ``source`` must compile."""
        total = 0
        for node in self.env.parse(source).body:
            if not isinstance(node, nodes.Output):
                return 0
            total += sum(len(c.data) for c in node.nodes if isinstance(c, nodes.TemplateData))
        return total

    def expression(self, source: str) -> Expression:
        """Compile a boolean expression or raise TemplateError."""
        try:
            ast = self.env.parse("{{ " + source + " }}")
            self._check_names(ast)
            compiled = self.env.compile_expression(source, undefined_to_none=False)
            _flat_globals(compiled._template)
        except TemplateSyntaxError as exc:
            raise TemplateError(f"expression syntax error: {exc.message}") from None
        return Expression(source, compiled, self.env)
