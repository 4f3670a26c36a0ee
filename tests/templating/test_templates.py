"""The template sandbox: compile-time checks, render-time failures, data stays data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import meta

from responder.errors import TemplateError
from responder.events import Event, Flow, FlowValue
from responder.runtime.engine import template_context
from responder.templating.templates import (
    CONTEXT_NAMES,
    MAX_OUTPUT_CHARS,
    Template,
    Templates,
    _check_private,
)

NOW = datetime(2024, 6, 5, 3, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def templates() -> Templates:
    return Templates()


def context(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "provider": "textit",
        "channel": "main",
        "kind": "sms.received",
        "contact": "+6591234567",
    }
    base.update(fields)
    return template_context(Event(**base), NOW)


def render(templates: Templates, source: str, **fields: Any) -> str:
    return templates.template(source).render(context(**fields))


def test_context_names_are_exactly_what_the_engine_provides() -> None:
    assert set(context()) == CONTEXT_NAMES


def test_plain_rendering(templates: Templates) -> None:
    template = templates.template("Hi {{ contact_name or 'there' }}, re: {{ text | upper }}")
    assert isinstance(template, Template)
    assert template.source == "Hi {{ contact_name or 'there' }}, re: {{ text | upper }}"
    assert template.render(context(text="hours")) == "Hi there, re: HOURS"
    assert template.render(context(text="x", contact_name="Ann")) == "Hi Ann, re: X"


def test_no_autoescape_and_block_whitespace(templates: Templates) -> None:
    assert render(templates, "{{ text }}", text="<b>&amp;</b>") == "<b>&amp;</b>"
    source = "Hello\n{% if contact %}\n  A\n{% endif %}\nBye\n"
    assert render(templates, source) == "Hello\n  A\nBye"  # trim/lstrip blocks, no trailing \n


def test_loops_sets_and_globals_are_known(templates: Templates) -> None:
    source = (
        "{% set ns = namespace(n=0) %}{% for v in range(3) %}{% set ns.n = ns.n + v %}"
        "{{ loop.index }}{% endfor %}={{ ns.n }} {{ dict(a=1).a }}"
    )
    assert render(templates, source) == "123=3 1"


def test_values_flow_captures_and_now(templates: Templates) -> None:
    fields = {
        "kind": "flow.step",
        "flow": Flow(name="Survey", step="ask"),
        "values": {"water_source": FlowValue("Water Source", "Well", "well", "the well")},
    }
    source = "{{ flow.name }}/{{ flow.step }}: {{ values.water_source.category }} {{ now.year }}"
    assert render(templates, source, **fields) == "Survey/ask: Well 2024"


# --------------------------------------------------------------------------- sandbox


@pytest.mark.parametrize(
    ("source", "name", "lineno"),
    [
        ("{{ contact.__class__ }}", "__class__", 1),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "__subclasses__", 1),
        ("{{ cycler.__init__.__globals__ }}", "__globals__", 1),
        ("{{ joiner.__init__.__globals__.os.popen('id').read() }}", "__globals__", 1),
        ("{{ namespace.__init__ }}", "__init__", 1),
        ("{{ self.__init__.__globals__ }}", "__globals__", 1),
        ("{{ text.__init__.__globals__ }}", "__globals__", 1),
        ("{{ now.__class__ }}", "__class__", 1),
        ("{{ captures.__class__.__init__ }}", "__init__", 1),
        ("{{ event['__class__'] }}", "__class__", 1),
        ("{{ contact | attr('__class__') }}", "__class__", 1),
        ("line one\n{% set x = vars._private %}{{ x }}", "_private", 2),
        ("{% for k in values.__dict__ %}{% endfor %}", "__dict__", 1),
    ],
)
def test_sandbox_escapes_refused_at_compile(
    templates: Templates, source: str, name: str, lineno: int
) -> None:
    with pytest.raises(TemplateError) as exc:
        templates.template(source)
    assert str(exc.value) == f"access to private attribute {name!r} is refused"
    assert exc.value.lineno == lineno


@pytest.mark.parametrize(
    "source",
    [
        "{{ '{0.__class__}'.format(contact) }}",
        "{{ '{0.__init__.__globals__}'.format(cycler) }}",
        "{{ contact | attr('_' ~ '_class__') }}",
        "{{ event[('_' ~ '_class__')] }}",
        "{% set n = '__' ~ 'class__' %}{{ cycler | attr(n) }}",
    ],
)
def test_sandbox_escapes_built_at_run_time_fail_at_render(
    templates: Templates, source: str
) -> None:
    template = templates.template(source)  # the name is not known until it runs
    with pytest.raises(TemplateError) as exc:
        template.render(context())
    assert str(exc.value).startswith("SecurityError: ")


def test_dunder_access_says_security_error(templates: Templates) -> None:
    with pytest.raises(TemplateError) as exc:
        render(templates, "{{ '{0.__class__}'.format(contact) }}")
    assert str(exc.value).startswith("SecurityError: access to attribute '__class__'")


@pytest.mark.parametrize(
    "source",
    ["{{ captures.update({'a': 1}) }}", "{{ attachments.append('x') }}", "{{ event.clear() }}"],
)
def test_context_is_immutable(templates: Templates, source: str) -> None:
    ctx = context(attachments=("a",))
    with pytest.raises(TemplateError, match="SecurityError"):
        templates.template(source).render(ctx)
    assert ctx["captures"] == {}
    assert ctx["attachments"] == ["a"]


def test_huge_range_is_refused(templates: Templates) -> None:
    with pytest.raises(TemplateError, match="range of 10000000 items"):
        render(templates, "{{ range(10000000) | list | length }}")


@pytest.mark.parametrize(
    "text",
    [
        "{{ 7*7 }}",
        "{% for x in range(3) %}{{ x }}{% endfor %}",
        "{% for %}",
        "{{ contact.__class__ }}",
        "{# comment #}",
        "{% raw %}",
        "{{ ''.__class__.__mro__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ 'x' * 100000000 }}",
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    ],
)
def test_data_is_never_a_template(templates: Templates, text: str) -> None:
    fields = {"text": text, "contact_name": text, "digits": text}
    rendered = render(templates, "[{{ text }}|{{ contact_name }}|{{ digits | lower }}]", **fields)
    assert rendered == f"[{text}|{text}|{text.lower()}]"


def test_a_rendered_value_stays_data_when_rendered_again(templates: Templates) -> None:
    # A dialogue's `set: {name: "{{ text }}"}`, later shown as `{{ vars.name }}`.
    evil = "{{ cycler.__init__.__globals__ }}{{ 7*7 }}"
    stored = render(templates, "{{ text | trim }}", text=f"  {evil} ")
    assert stored == evil
    shown = templates.template("Hello {{ vars.name }}").render(
        {**context(), "vars": {"name": stored}}
    )
    assert shown == f"Hello {evil}"


def test_data_in_values_and_raw_event_is_literal(templates: Templates) -> None:
    evil = "{{ 7*7 }}{% if true %}x{% endif %}"
    fields = {
        "values": {"a": FlowValue("A", evil, evil, evil)},
        "raw": {"msg": evil},
    }
    out = render(templates, "{{ values.a.text }} {{ event.msg }}", **fields)
    assert out == f"{evil} {evil}"


# --------------------------------------------------------------------------- undefined


@pytest.mark.parametrize(
    "source",
    [
        "{{ captures.order }}",
        "{{ vars.missing.category }}",
        "{{ flow.name }}",
        "{% if captures.order %}yes{% endif %}",
    ],
)
def test_strict_undefined_fails_at_render(templates: Templates, source: str) -> None:
    template = templates.template(source)
    with pytest.raises(TemplateError, match="UndefinedError"):
        template.render(context())


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("[{{ values.missing.category }}]", "[]"),
        ("[{{ values.missing }}]", "[]"),
        ("{{ values.missing.value | default('none') }}", "none"),
        ("{{ 'yes' if values.missing.value else 'no' }}", "no"),
    ],
)
def test_a_flow_value_not_collected_renders_blank(
    templates: Templates, source: str, expected: str
) -> None:
    assert templates.template(source).render(context()) == expected


def test_undefined_can_be_guarded(templates: Templates) -> None:
    source = "{{ captures.get('order', 'none') }} {{ captures.order | default('-') }}"
    assert render(templates, source) == "none -"
    assert render(templates, "{% if 'order' in captures %}x{% else %}y{% endif %}") == "y"


# --------------------------------------------------------------------------- compile time


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("Hello {{ customer }}", "customer"),
        ("{{ contact }} {{ Contact }}", "Contact"),
        ("{% for x in items %}{{ x }}{% endfor %}", "items"),
        ("{{ zzz }}{{ aaa }}", "aaa"),
    ],
)
def test_unknown_variable_rejected_at_compile(templates: Templates, source: str, name: str) -> None:
    with pytest.raises(TemplateError) as exc:
        templates.template(source)
    known = "(known: attachments, calendars, captures"
    assert str(exc.value).startswith(f"unknown variable {name!r} {known}")


def test_every_context_name_compiles(templates: Templates) -> None:
    source = " ".join(f"{{{{ {name} is defined }}}}" for name in sorted(CONTEXT_NAMES))
    assert render(templates, source) == " ".join(["True"] * len(CONTEXT_NAMES))


@pytest.mark.parametrize(
    ("source", "lineno"),
    [
        ("{{ contact ", 1),
        ("line one\n{% for %}", 2),
        ("{% if contact %}no end", 1),
        ("{{ contact | nosuchfilter }}", 1),
        ("a\nb\n{% endfor %}", 3),
    ],
)
def test_syntax_errors_at_compile(templates: Templates, source: str, lineno: int) -> None:
    with pytest.raises(TemplateError) as exc:
        templates.template(source)
    assert str(exc.value).startswith("template syntax error: ")
    assert exc.value.lineno == lineno


# --------------------------------------------------------------------------- output limit


def test_output_at_the_limit_is_fine(templates: Templates) -> None:
    text = "x" * MAX_OUTPUT_CHARS
    assert render(templates, "{{ text }}", text=text) == text


def test_output_over_the_limit_raises(templates: Templates) -> None:
    with pytest.raises(TemplateError) as exc:
        render(templates, "{{ text }}!", text="x" * MAX_OUTPUT_CHARS)
    assert str(exc.value) == f"output is longer than {MAX_OUTPUT_CHARS} characters"


def test_output_blown_up_by_a_loop_raises(templates: Templates) -> None:
    template = templates.template("{% for i in range(5000) %}{{ contact }}{% endfor %}")
    with pytest.raises(TemplateError, match=f"longer than {MAX_OUTPUT_CHARS}"):
        template.render(context())


# --------------------------------------------------------------------------- expressions


def test_expression_truthiness(templates: Templates) -> None:
    expression = templates.expression("text | length > 3 and contact.startswith('+65')")
    assert expression.source == "text | length > 3 and contact.startswith('+65')"
    assert expression.evaluate(context(text="hello")) is True
    assert expression.evaluate(context(text="hi")) is False
    assert templates.expression("attachments").evaluate(context()) is False


def test_expression_compile_errors(templates: Templates) -> None:
    with pytest.raises(TemplateError, match="unknown variable 'nope'"):
        templates.expression("nope == 1")
    with pytest.raises(TemplateError, match="expression syntax error"):
        templates.expression("text ==")
    with pytest.raises(TemplateError, match="expression syntax error"):
        templates.expression("text }}{{ contact")
    with pytest.raises(TemplateError, match="private attribute '__class__'"):
        templates.expression("contact.__class__ == 1")


def test_expression_runtime_errors(templates: Templates) -> None:
    with pytest.raises(TemplateError, match="UndefinedError"):
        templates.expression("captures.x == 1").evaluate(context())
    with pytest.raises(TemplateError, match="SecurityError"):
        templates.expression("contact | attr('_' ~ '_class__')").evaluate(context())
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        templates.expression("1 / 0").evaluate(context())


def test_expression_data_stays_data(templates: Templates) -> None:
    assert templates.expression("text == '{{ 7*7 }}'").evaluate(context(text="{{ 7*7 }}"))


# Texts without tags and texts with only plain name tags skip jinja2 at load time: what they
# render, and what check says of them, is what jinja2 would render and say.
PIECES = ["a", " ", "\n", "\r\n", "\r", "}", "}}", "%", "#", "{", "{{ contact }}", "{{text}}"]
PIECES += ["{{ flow.name }}", "{{ contact.upper }}", "{{ nope }}", "{{ flow._x }}", "{% if 1 %}"]
PIECES += ["{% endif %}", "{# c #}", "{{ range }}", "{{ 1 }}", "{{ contact }}}", "ß", "\n\n"]
PIECES += ["{{ text|upper }}", "{{ text|nosuch }}", "{% set y = 1 %}{{ y }}", "{{ y }}"]
PIECES += ["{% for x in [1] %}{{ x }}{% endfor %}", "{{ text is nosuch }}", "{{- text -}}"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=8).map("".join))
def test_quick_paths_agree_with_jinja(source: str) -> None:
    quick = Templates()
    env = quick.env
    ctx = context(text="Hi", flow=Flow(name="survey"))
    try:  # what loading did before the quick paths: parse, check, compile
        ast = env.parse(source)
        _check_private(ast)
        assert not meta.find_undeclared_variables(ast) - CONTEXT_NAMES - set(env.globals)
        compiled = env.from_string(ast)
    except Exception:
        with pytest.raises(TemplateError):
            quick.template(source)
        return
    template = quick.template(source)  # accepted at load time by both
    try:
        reference: str | None = compiled.render(ctx)
    except Exception:
        reference = None
    try:
        got: str | None = template.render(ctx)
    except TemplateError:
        got = None
    assert got == reference


def test_templates_of_the_same_text_are_shared_and_compiled_once(templates: Templates) -> None:
    first = templates.template("Hello {{ contact }}")
    assert templates.template("Hello {{ contact }}") is first
    assert first.render(context()) == "Hello +6591234567"
    assert templates.template("No tags\r\nat all\n").render(context()) == "No tags\nat all"


def test_compiled_templates_and_expressions_keep_their_globals_in_a_plain_dict() -> None:
    templates = Templates()
    template = templates.template("{% for n in range(3) %}{{ n }}{% endfor %} {{ text }}")
    assert template.render({"text": "x"}) == "012 x"  # the sandbox's bounded range still there
    compiled = template._generate.template  # type: ignore[attr-defined]
    assert type(compiled.globals) is dict
    assert compiled.globals["range"] is templates.env.globals["range"]
    expression = templates.expression("range(2)|list == [0, 1]")
    assert expression.evaluate({}) is True
    assert type(expression._evaluate._template.globals) is dict  # type: ignore[attr-defined]
