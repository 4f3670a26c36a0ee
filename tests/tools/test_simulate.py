"""``responder simulate`` walks an IVR and an SMS exchange without network or credentials."""

from __future__ import annotations

import io
from collections.abc import Callable

from responder.rules.loader import load_rules
from responder.tools.simulate import Simulator
from tests.conftest import REPO


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
