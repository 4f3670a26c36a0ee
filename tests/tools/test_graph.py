"""`responder graph`: Mermaid state diagrams of the dialogues, labels and all."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from responder.cli import main
from responder.matching.conditions import AllOf, CalendarCondition
from responder.rules.loader import load_rules
from responder.tools.graph import describe, dialogue_diagram, render
from tests.conftest import REPO

IVR_MENU = """\
```mermaid
---
title: main-menu
---
stateDiagram-v2
    state "menu" as s0_menu
    s0_menu : gather 1 key(s), says 'Welcome. Press 1 for sales, 2 to l...
    state "sales" as s1_sales
    s1_sales : transfer to +6561234567, says 'Connecting you to sales.'
    state "voicemail" as s2_voicemail
    s2_voicemail : record, says 'Please leave a message after the tone.'
    state "thanks" as s3_thanks
    s3_thanks : hang up, says 'Thank you, we will call you back.'
    state "goodbye" as s4_goodbye
    s4_goodbye : hang up, says 'Sorry, we did not get that. Goodbye.'
    [*] --> s0_menu : on ivr.answer
    s0_menu --> s1_sales : digits 1
    s0_menu --> s2_voicemail : digits 2
    s0_menu --> s0_menu : otherwise (at most 3x)
    s0_menu --> s4_goodbye : otherwise after 3x
    s1_sales --> s2_voicemail : transfer failed
    s1_sales --> [*] : transferred
    s2_voicemail --> s3_thanks : next
    s3_thanks --> [*] : voicemail left
    s4_goodbye --> [*] : no valid choice
```
"""


def rules(tmp_path: Path, text: str) -> Path:
    (tmp_path / "rules.yaml").write_text(textwrap.dedent(text))
    return tmp_path


def test_ivr_menu_diagram(capsys) -> None:
    assert main(["graph", "--rules", str(REPO / "examples" / "ivr-menu")]) == 0
    assert capsys.readouterr().out == IVR_MENU


def test_the_docs_show_the_current_ivr_menu_diagram() -> None:
    page = (REPO / "docs" / "diagrams.md").read_text(encoding="utf-8")
    assert IVR_MENU in page


def test_every_edge_of_the_model_is_drawn() -> None:
    ruleset = load_rules([REPO / "examples" / "sms-survey"])
    diagram = dialogue_diagram(ruleset.dialogues["survey"], ["survey-join"])
    edges = [line.strip() for line in diagram.splitlines() if "-->" in line]
    assert edges[0] == "[*] --> s0_rating : rule survey-join"
    assert "s0_rating --> s3_recommend : number 1-5" in edges
    assert "s0_rating --> s2_rating_reminder : no answer in 1h (at most 1x)" in edges
    assert "s0_rating --> s9_gave_up : no answer in 1h after 1x" in edges
    assert "s3_recommend --> s6_comment : keyword sure|y|yeah|yes" in edges
    assert "s6_comment --> s8_thanks : only none|nothing" in edges
    assert "s8_thanks --> [*] : completed" in edges
    assert "s9_gave_up --> [*] : no answer" in edges
    # The dialogue's any: transition, from every state that waits for an answer.
    assert "s3_recommend --> s10_cancelled : (any state) only cancel|quit" in edges
    assert "s8_thanks --> s10_cancelled : (any state) only cancel|quit" not in edges
    # Every state is declared once, with a Mermaid-safe id.
    assert len(re.findall(r'^    state "', diagram, re.M)) == 11
    assert 'state "rating-again" as s1_rating_again' in diagram


def test_callback_starts_from_a_rule_and_may_not_be_answered() -> None:
    out = render(load_rules([REPO / "examples" / "callback"]), fenced=False)
    assert out.startswith("---\ntitle: callback\n---\nstateDiagram-v2\n")
    assert "s0_ring : dial the contact, says 'Hello, this is the clinic calling..." in out
    assert "[*] --> s0_ring : rule callback-request" in out
    assert "s0_ring --> [*] : not answered" in out
    assert "s0_ring --> s1_menu : answered" in out
    assert "```" not in out


def test_conditions_in_words(tmp_path: Path) -> None:
    ruleset = load_rules(
        [
            rules(
                tmp_path,
                """
                dialogues:
                  - name: words
                    mode: sms
                    start:
                      on: [sms.received]
                      when: {channel: [Main], contact: {in: ["+65*"], not_in: ["+659*"]}}
                    states:
                      ask:
                        say: "Quote: \\"a\\"; #1 {x} <y>"
                        on:
                          - {text: {regex: '^(?P<n>\\d+)$'}, goto: done}
                          - {text: {phrase: [call me], empty: false}, goto: done}
                          - time: {timezone: Asia/Singapore, days: mon-fri, hours: "09:00-18:00"}
                            goto: done
                          - {values: {Color: {category: [Red]}}, goto: done}
                          - {expr: "text|length > 100", goto: done}
                          - {not: {text: {any_word: [no]}}, goto: done}
                          - {any: [{status: [D]}, {flow: {name: [Survey]}}], goto: done}
                      done: {say: "Bye", end: true}
                """,
            )
        ]
    )
    dialogue = ruleset.dialogues["words"]
    labels = [describe(t.when) for t in dialogue.states["ask"].on]
    assert labels == [
        r"regex ^(?P<n>\d+)$",
        "phrase call me not empty",
        "time Asia/Singapore mon,tue,wed,thu,fri 09:00-18:00",
        "Color category red",
        "if text|length > 100",
        "not (any word no)",
        "(status d) or (flow.name survey)",
    ]
    assert dialogue.start is not None
    assert describe(dialogue.start.when) == "channel main and contact +65* not +659*"
    diagram = dialogue_diagram(dialogue, [])
    # Mermaid entity codes stand in for the characters its syntax would read.
    assert "s0_ask : Quote#58; #quot;a#quot;#59; #35;1 #123;x#125; #lt;y#gt;" in diagram
    assert "[*] --> s0_ask : on sms.received if channel main and contact +65* not +659*" in diagram
    assert "s0_ask --> s1_done : regex ^(?P#lt;n#gt;\\d+)$" in diagram
    long = [line for line in diagram.splitlines() if "time Asia" in line]
    assert long == [
        "    s0_ask --> s1_done : time Asia/Singapore mon,tue,wed,thu,fri 09#58;00-18#58;00"
    ]


def test_calendar_conditions() -> None:
    when = AllOf((CalendarCondition("office", True), CalendarCondition("support", False)))
    assert describe(when) == "open office and closed support"


def test_labels_are_one_line_and_cut(tmp_path: Path) -> None:
    ruleset = load_rules(
        [
            rules(
                tmp_path,
                """
                dialogues:
                  - name: long
                    mode: sms
                    start: {on: sms.received}
                    states:
                      only: {say: "%s", end: true, outcome: "two\\nlines"}
                """
                % ("word " * 30),
            )
        ]
    )
    diagram = dialogue_diagram(ruleset.dialogues["long"], [])
    about = next(line for line in diagram.splitlines() if line.startswith("    s0_only :"))
    assert about.endswith("...")
    assert len(about.split(" : ", 1)[1]) == 60
    assert "s0_only --> [*] : two lines" in diagram


def test_graph_command_errors(tmp_path: Path, capsys) -> None:
    examples = str(REPO / "examples")
    assert main(["graph", "--rules", examples, "--dialogue", "nope"]) == 2
    assert "no dialogue 'nope' (known: callback, main-menu, survey)" in capsys.readouterr().err
    assert main(["graph", "--rules", str(REPO / "examples" / "missed-call")]) == 1
    assert "these rules have no dialogues" in capsys.readouterr().err
    broken = rules(tmp_path, "rules:\n  - name: x\n    on: sms.recieved\n")
    assert main(["graph", "--rules", str(broken)]) == 1
    assert "unknown event kind 'sms.recieved'" in capsys.readouterr().err
    assert main(["graph", "--rules", examples, "--dialogue", "survey", "--bare"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("---\ntitle: survey\n")
    assert "callback" not in out


@pytest.mark.parametrize("name", ["callback", "ivr-menu", "sms-survey"])
def test_every_state_of_every_example_is_on_its_diagram(name: str) -> None:
    ruleset = load_rules([REPO / "examples" / name])
    out = render(ruleset)
    for dialogue in ruleset.dialogues.values():
        for state in dialogue.states:
            assert f'state "{state}" as ' in out


def test_states_can_be_marked_for_the_console() -> None:
    from responder.tools.graph import diagram

    rules = load_rules([str(REPO / "examples" / "ivr-menu")])
    plain = diagram(rules, "main-menu")
    assert "classDef" not in plain
    marked = diagram(
        rules, "main-menu", {"menu": "current", "sales": "uncovered", "nope": "covered"}
    )
    assert marked.startswith(plain.rstrip("\n"))
    extra = marked[len(plain) :].splitlines()
    assert extra == [
        "    classDef current fill:#ffe08a,stroke:#a06800,stroke-width:3px",
        "    classDef uncovered fill:#fbe0e0,stroke:#b3261e,stroke-dasharray:4 3",
        "    class s0_menu current",
        "    class s1_sales uncovered",
    ]
