"""Reply lengths are checked when rules load, wherever the text is known by then."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from responder.errors import RulesError
from responder.rules.loader import load_rules
from responder.rules.terms import HOIIO_MSG_MAX, SMS_TEXT_MAX, TEXTIT_REPLY_MAX


def _rule(action: str, on: str = "sms.received") -> str:
    return f"rules:\n  - name: r\n    on: {on}\n    {action}\n"


def _ivr(block: str, way_out: str = "next: done") -> str:
    return textwrap.dedent(
        f"""\
        dialogues:
          - name: d
            start: {{on: ivr.answer}}
            states:
              first:
                {block}
                {way_out}
              done:
                hangup: {{}}
        """
    )


def _sms_dialogue(say: str) -> str:
    return textwrap.dedent(
        f"""\
        dialogues:
          - name: d
            start: {{on: sms.received}}
            states:
              first:
                say: "{say}"
                end: true
        """
    )


def _load(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "rules.yaml").write_text(text)
    try:
        load_rules([tmp_path])
    except RulesError as exc:
        return [str(p) for p in exc.problems]
    return []


# (where, the rule file for a text of n characters, the limit)
CASES = [
    ("reply.text", lambda t: _rule(f'reply: {{text: "{t}"}}'), TEXTIT_REPLY_MAX),
    ("sms[0].text", lambda t: _rule(f'sms: {{text: "{t}"}}'), SMS_TEXT_MAX),
    ("hangup.say", lambda t: _rule(f'hangup: {{say: "{t}"}}', "ivr.answer"), HOIIO_MSG_MAX),
    (
        "gather.say",
        lambda t: _ivr(f'gather: {{say: "{t}"}}', "on: [{otherwise: true, goto: done}]"),
        HOIIO_MSG_MAX,
    ),
    ("record.say", lambda t: _ivr(f'record: {{say: "{t}"}}'), HOIIO_MSG_MAX),
    ("transfer.say", lambda t: _ivr(f'transfer: {{to: "+6561234567", say: "{t}"}}'), HOIIO_MSG_MAX),
    ("states.first.say", _sms_dialogue, SMS_TEXT_MAX),
]


@pytest.mark.parametrize(("where", "build", "limit"), CASES, ids=[c[0] for c in CASES])
def test_static_text_over_the_limit_is_a_check_error(
    tmp_path: Path, where: str, build, limit: int
) -> None:
    assert _load(tmp_path, build("x" * limit)) == []
    [problem] = _load(tmp_path, build("x" * (limit + 1)))
    assert problem.startswith(f"{tmp_path / 'rules.yaml'}:")
    assert where in problem
    assert problem.endswith(f"text is {limit + 1} characters; the limit is {limit}")


@pytest.mark.parametrize(("where", "build", "limit"), CASES, ids=[c[0] for c in CASES])
def test_literal_text_of_a_template_over_the_limit_is_a_check_error(
    tmp_path: Path, where: str, build, limit: int
) -> None:
    # The {{ }} part may render to anything; the literal text alone is already too long.
    [problem] = _load(tmp_path, build("x" * (limit - 5) + "{{ contact }}" + "y" * 6))
    assert where in problem
    assert problem.endswith(
        f"text is at least {limit + 1} characters without its {{{{ }}}} parts; the limit is {limit}"
    )
    # Within the limit, or with a block that may leave literal text out: checked at run time.
    assert _load(tmp_path, build("x" * (limit - 5) + "{{ contact }}" + "y" * 5)) == []
    assert _load(tmp_path, build("x" * (limit + 1) + "{% if contact %}{% endif %}")) == []
