"""``responder simulate`` walks an IVR and an SMS exchange without network or credentials."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

from responder.rules.loader import load_rules
from responder.tools.simulate import Simulator
from tests.conftest import REPO, write_rules


def lines(*items: str) -> Callable[[], str]:
    feed = iter([f"{item}\n" for item in items])
    return lambda: next(feed, "")


async def test_call_mode_walks_the_ivr_menu() -> None:
    out = io.StringIO()
    sim = Simulator(
        load_rules([REPO / "examples" / "ivr-menu"]), out, lines("1", "n", ""), provider="hoiio"
    )
    assert await sim.run(call=True) == 0
    text = out.getvalue()
    assert "bot says> Welcome. Press 1 for sales, 2 to leave a message." in text
    assert "(transferring to +6561234567) answered? [y/N]" in text
    assert "bot says> Please leave a message after the tone." in text
    assert text.rstrip().endswith("(the bot hung up)")


async def test_call_mode_three_wrong_keys() -> None:
    out = io.StringIO()
    sim = Simulator(
        load_rules([REPO / "examples" / "ivr-menu"]), out, lines("7", "8", "9"), provider="hoiio"
    )
    assert await sim.run(call=True) == 0
    assert out.getvalue().count("Press 1 for sales") == 3
    assert "Sorry, we did not get that. Goodbye." in out.getvalue()


async def test_sms_mode_replies_and_captures_http_calls() -> None:
    out = io.StringIO()
    sim = Simulator(
        load_rules([REPO / "examples" / "keyword-autoresponder"]),
        out,
        lines("hours?", "my order 123456", "/quit"),
    )
    assert await sim.run(call=False) == 0
    text = out.getvalue()
    assert "bot> We are open Mon-Fri 9:00-18:00 and Sat 10:00-14:00." in text
    assert "bot> Thanks! We are looking up order 123456" in text
    # The rule's webhook went to the simulator's capture server, not to the internet.
    assert "(call POST /https://orders.example.com/lookups {'order': '123456'" in text


async def test_call_mode_shows_an_sms_sent_from_an_ivr_state_once_as_an_sms(
    tmp_path: Path,
) -> None:
    rules = write_rules(
        tmp_path,
        """
        dialogues:
          - name: menu
            start: {on: ivr.answer}
            states:
              ask:
                gather: {say: "Press 1 for a text.", max_digits: 1}
                on: [{digits: "1", goto: text}]
              text:
                say: "Sending it now."
                sms: [{text: "Our address: 1 Main Street", via: hoiio}]
                next: bye
              bye: {hangup: {say: "Goodbye."}}
        """,
    )
    out = io.StringIO()
    sim = Simulator(load_rules([rules]), out, lines("1"), provider="hoiio")
    assert await sim.run(call=True) == 0
    text = out.getvalue()
    assert text.count("Our address: 1 Main Street") == 1
    assert "(SMS to " in text
    assert "bot says> Our address" not in text
