"""Coverage: every rule, state and reachable transition, and which of them a run took."""

from __future__ import annotations

from responder.rules.loader import load_rules
from responder.transcripts.coverage import Coverage, summary
from tests.conftest import REPO


def test_totals_of_the_ivr_menu() -> None:
    coverage = Coverage.of(load_rules([REPO / "examples" / "ivr-menu"]))
    assert coverage.rules == set()
    assert {s for _, s in coverage.states} == {"menu", "sales", "voicemail", "thanks", "goodbye"}
    # The gather's "no key matched" edge is left out: `otherwise` catches every key.
    assert {(s, t, d) for _, s, t, d in coverage.transitions} == {
        ("menu", "menu:0", "sales"),
        ("menu", "menu:1", "voicemail"),
        ("menu", "menu:2", "menu"),
        ("menu", "menu:2:then", "goodbye"),
        ("sales", "sales:failure", "voicemail"),
        ("voicemail", "voicemail:next", "thanks"),
    }


def test_moves_of_the_machine_are_counted() -> None:
    ruleset = load_rules([REPO / "examples" / "ivr-menu"])
    coverage = Coverage.of(ruleset)
    machine = ruleset.dialogues["main-menu"].machine
    move = ("main-menu", "menu", "menu:1", machine.fire("menu", "menu:1"))
    coverage.saw(["dialogue:main-menu"], {("main-menu", "menu")}, {move})
    assert coverage.counts() == {"rules": (0, 0), "states": (2, 5), "transitions": (1, 6)}
    assert coverage.missing()[:3] == [
        "state main-menu.goodbye",
        "state main-menu.sales",
        "state main-menu.thanks",
    ]
    assert "transition main-menu: menu -> goodbye (on[2], after max_visits)" in coverage.missing()
    assert "transition main-menu: sales -> voicemail (transfer failed)" in coverage.missing()


def test_rules_count_by_name_and_runs_merge() -> None:
    ruleset = load_rules([REPO / "examples" / "keyword-autoresponder"])
    one, two = Coverage.of(ruleset), Coverage.of(ruleset)
    one.saw(["hours", "compliance:stop"], set())
    two.saw(["fallback"], set())
    one.merge(two)
    assert one.hit_rules == {"hours", "fallback"}
    assert one.summary() == "coverage: rules 2/4 (50%), states 0/0, transitions 0/0"
    assert summary({"rules": (0, 0)}) == "coverage: rules 0/0"


def test_an_after_max_visits_edge_that_no_conversation_can_take_is_left_out() -> None:
    # rating-reminder (max_visits: 1) is entered from rating only on the first timeout, and
    # rating cannot be reached again after it: "rating -> gave-up" can never happen. From
    # rating-again it can (rating-reminder -> rating-again -> timeout -> rating-reminder).
    coverage = Coverage.of(load_rules([REPO / "examples" / "sms-survey"]))
    then_edges = {(s, d) for _, s, t, d in coverage.transitions if t.endswith(":timeout:then")}
    assert ("rating", "gave-up") not in then_edges
    assert ("rating-again", "gave-up") in then_edges
    assert ("recommend", "gave-up") not in then_edges
    assert ("recommend-again", "gave-up") in then_edges
