"""The sandbox's numbers: value size, integer size, range, steps, time, output; each refused
before the work is done, as a TemplateError, never a partial text."""

from __future__ import annotations

import time
from typing import Any

import pytest

from responder.errors import TemplateError
from responder.templating.sandbox import (
    MAX_INT_BITS,
    MAX_OUTPUT_CHARS,
    MAX_RANGE,
    MAX_RENDER_STEPS,
    MAX_VALUE_CHARS,
)
from responder.templating.templates import Templates

CTX: dict[str, Any] = {"text": "abc", "contact": "+6591234567", "vars": {}, "captures": {}}


@pytest.fixture(scope="module")
def templates() -> Templates:
    return Templates()


def render(templates: Templates, source: str, **ctx: Any) -> str:
    return templates.template(source).render({**CTX, **ctx})


def refused(templates: Templates, source: str, match: str, **ctx: Any) -> str:
    started = time.monotonic()
    with pytest.raises(TemplateError, match=match) as exc:
        render(templates, source, **ctx)
    # Refused before the work: far quicker than building the value would take.
    assert time.monotonic() - started < 5
    return str(exc.value)


# --------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    "source",
    [
        "{{ 'x' * 10001 }}",
        "{{ 10001 * 'x' }}",
        "{{ text * 100000000 }}",
        "{{ [1] * 100000000 }}",
        "{{ (text,) * 100000000 }}",
        "{{ '%0100000000d' % 1 }}",
        "{{ '%.100000000f' % 1 }}",
        "{{ '%*d' % (100000000, 1) }}",
        "{{ '%(a)100000000s' % {'a': 1} }}",
        "{{ '{:>100000000}'.format(1) }}",
        "{{ '{:{}}'.format(1, 100000000) }}",
        "{{ '{x:>100000000}'.format_map({'x': 1}) }}",
        "{{ text.center(100000000) }}",
        "{{ text.ljust(100000000) }}",
        "{{ text.rjust(100000000) }}",
        "{{ text.zfill(100000000) }}",
        "{{ ('\\t' * 100).expandtabs(1000) }}",
        "{{ ('x' * 5000).replace('', 'yyyy') }}",
        "{{ ('x' * 9000).replace('x', 'yy') }}",
        "{{ ('x' * 5000).join('x' * 5000) }}",
        "{{ text | center(100000000) }}",
        "{{ ('a\\n' * 5000) | indent(100) }}",
        "{{ text | indent('x' * 10001) }}",
        "{{ '%0100000000d' | format(1) }}",
        "{{ ('x' * 5000) | replace('', 'yyyy') }}",
        "{{ text | slice(100000000) | list }}",
        "{{ range(5000) | join('x' * 100) }}",
        "{% set ns = namespace(s='x' * 9000) %}{{ ns.s + ns.s }}",
        "{% set ns = namespace(s='xx') %}{% for i in range(40) %}"
        "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}",
    ],
)
def test_values_over_the_size_limit_are_refused(templates: Templates, source: str) -> None:
    message = refused(templates, source, f"limit {MAX_VALUE_CHARS}")
    assert message.startswith("SecurityError: ")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ 'ab' * 3 }}", "ababab"),
        ("{{ ('x' * 10000) | length }}", "10000"),
        ("{{ '%05.1f|%-4s|%(n)s' % (3.14159, 'a', ) if false else '%05.1f' % 3.14159 }}", "003.1"),
        ("{{ '%(n)03d' % {'n': 7} }}", "007"),
        ("{{ '{:>6}|{:03}'.format('ab', 7) }}", "    ab|007"),
        ("{{ '{n:>4}'.format_map({'n': 1}) }}", "   1"),
        ("{{ text.center(7, '*') }}", "**abc**"),
        ("{{ text | center(5) }}", " abc "),
        ("{{ 'a\\nb' | indent(2, true) }}", "  a\n  b"),
        ("{{ text | replace('b', 'BB') }}", "aBBc"),
        ("{{ text.replace('', '-') }}", "-a-b-c-"),
        ("{{ [1, 2, 3] | join(', ') }}", "1, 2, 3"),
        ("{{ '-'.join(['a', 'b']) }}", "a-b"),
        ("{{ '%d items' | format(3) }}", "3 items"),
        ("{{ [1, 2] + [3] }}", "[1, 2, 3]"),
        ("{{ 2 ** 64 }}", str(2**64)),
        ("{{ 7 * 7 }}", "49"),
        ("{{ 1.5 ** 2 }}", "2.25"),
        ("{{ 2 ** -1 }}", "0.5"),
        ("{{ 10 % 3 }}", "1"),
    ],
)
def test_ordinary_use_is_untouched(templates: Templates, source: str, expected: str) -> None:
    assert render(templates, source) == expected


@pytest.mark.parametrize(
    "source", ["{{ 9 ** 999999999 }}", "{{ (2 ** 4000) * (2 ** 4000) }}", "{{ -3 ** 5000 }}"]
)
def test_huge_integers_are_refused(templates: Templates, source: str) -> None:
    refused(templates, source, f"-bit number \\(limit {MAX_INT_BITS}\\)")


def test_range_is_bounded(templates: Templates) -> None:
    assert render(templates, f"{{{{ range({MAX_RANGE}) | list | length }}}}") == str(MAX_RANGE)
    message = refused(templates, f"{{{{ range({MAX_RANGE + 1}) }}}}", "range")
    assert message == f"SecurityError: range of {MAX_RANGE + 1} items (limit {MAX_RANGE})"


def test_lipsum_is_not_available(templates: Templates) -> None:
    with pytest.raises(TemplateError, match="unknown variable 'lipsum'"):
        templates.template("{{ lipsum(100000) }}")


# --------------------------------------------------------------------------- steps and time


def test_nested_loops_stop_at_the_step_budget(steps_only: Templates) -> None:
    source = (
        "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}"
        "{% endfor %}{% endfor %}{% endfor %}done"
    )
    message = refused(steps_only, source, "steps")
    assert message == (
        f"SecurityError: template took more than {MAX_RENDER_STEPS} steps "
        "(loop iterations and calls)"
    )


@pytest.fixture(scope="module")
def steps_only() -> Templates:
    """Steps counted, time generous: a busy machine must not change which limit trips."""
    return Templates(max_seconds=600)


def test_loops_over_data_count_too(steps_only: Templates) -> None:
    source = (
        "{% for a in text %}{% for b in text %}{% for c in text %}{% endfor %}{% endfor %}"
        "{% endfor %}"
    )
    # 100^3 iterations over a 100-character text: no range() involved, no output at all.
    refused(steps_only, source, "steps", text="x" * 100)


def test_recursive_macros_stop(templates: Templates) -> None:
    source = (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}"
    )
    # Whichever comes first: 100,000 calls, or half a second of them.
    refused(templates, source, "steps|longer than")


def test_recursive_loops_stop(templates: Templates) -> None:
    source = (
        "{% for x in [[1, 2], [3, 4]] recursive %}{{ loop([x, x]) if x is not number }}{% endfor %}"
    )
    refused(templates, source, "steps|RecursionError")


def test_a_loop_within_the_budget_renders(templates: Templates) -> None:
    source = "{% for a in range(100) %}{% for b in range(100) %}{% endfor %}{% endfor %}ok"
    assert render(templates, source) == "ok"


def test_render_time_is_bounded() -> None:
    slow = Templates(max_steps=10**9, max_seconds=0.05)
    template = slow.template(
        "{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}"
    )
    started = time.monotonic()
    with pytest.raises(TemplateError, match=r"longer than 0\.05 s"):
        template.render(CTX)
    assert time.monotonic() - started < 5  # 10^8 iterations would take far longer


def test_each_render_gets_a_fresh_budget() -> None:
    small = Templates(max_steps=50)
    template = small.template("{% for a in range(40) %}{% endfor %}ok")
    for _ in range(5):
        assert template.render(CTX) == "ok"


def test_expressions_have_a_budget_too() -> None:
    small = Templates(max_steps=2)
    assert small.expression("text.upper().lower() == 'abc'").evaluate(CTX) is True
    with pytest.raises(TemplateError, match="more than 2 steps"):
        small.expression("text.upper().lower().strip() == 'abc'").evaluate(CTX)
    with pytest.raises(TemplateError, match="limit 10000"):
        small.expression("text * 100000000").evaluate(CTX)


# --------------------------------------------------------------------------- output


def test_output_stops_at_the_cap_without_finishing_the_loop(templates: Templates) -> None:
    source = (
        "{% for a in range(10000) %}{% for b in range(9) %}{{ 'x' * 1000 }}{% endfor %}{% endfor %}"
    )
    message = refused(templates, source, "longer than")
    assert message == f"output is longer than {MAX_OUTPUT_CHARS} characters"


@pytest.mark.parametrize(
    ("source", "budgeted"),
    [
        ("no tags", False),
        ("Hi {{ contact }}", False),
        ("{{ contact_name or contact }}: {{ text|length }} {{ text|upper }}", False),
        ("{{ text.upper() }}", True),
        ("{% for a in range(3) %}{% endfor %}", True),
        ("{% set a = 1 %}{{ a }}", True),
    ],
)
def test_only_renders_that_can_spend_set_up_a_budget(source: str, budgeted: bool) -> None:
    assert Templates().template(source)._budgeted is budgeted


def test_calls_without_loops_spend_from_the_budget() -> None:
    small = Templates(max_steps=2)
    assert small.template("{{ text.upper().lower() }}").render(CTX) == "abc"
    with pytest.raises(TemplateError, match="more than 2 steps"):
        small.template("{{ text.upper().lower().strip() }}").render(CTX)
