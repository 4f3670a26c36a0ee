"""One pipeline: the HTTP server, ``responder replay`` and the transcript harness hand the same
webhooks to ``Handling`` and come to the same outcome and the same commit, for a rule with a
limit, a dialogue step and a contact who opted out."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest

from responder.rules.loader import load_rules
from responder.runtime.handling import Handled, Handling
from responder.runtime.outcome import Outcome
from responder.tools.replay import World
from responder.transcripts.harness import Harness, Setup
from responder.web.recording import Record
from responder.web.server import HANDLING
from tests.conftest import write_rules

T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC).timestamp()
ALICE = "+6591234567"
BOB = "+6598765432"
RULES = """
rules:
  - name: welcome
    on: sms.received
    when: {text: {keyword: [hi]}}
    limit: {per_contact: 1, every: 1h}
    reply: {text: "Welcome, {{ contact }}!"}
  - name: survey
    on: sms.received
    when: {text: {keyword: [survey]}}
    start: survey
  - name: fallback
    on: sms.received
    reply: {text: "Say hi or survey."}

dialogues:
  - name: survey
    mode: sms
    states:
      ask:
        say: "How was it, 1 to 5?"
        on:
          - {text: {number: {min: 1, max: 5}}, set: {score: "{{ text }}"}, goto: thanks}
      thanks:
        say: "Thanks for the {{ vars.score }}."
        end: true
"""
# (contact, text): the limited rule twice, a dialogue step, and an opted-out contact.
MESSAGES = [
    (ALICE, "hi"),
    (ALICE, "hi"),
    (ALICE, "survey"),
    (ALICE, "4"),
    (BOB, "stop"),
    (BOB, "hi"),
    (BOB, "survey"),
]


def form(n: int, contact: str, text: str) -> dict[str, str]:
    return {
        "event": "mo_sms",
        "sms": f"M{n}",
        "phone": contact,
        "text": text,
        "time": "2026-01-05T10:00:00.000Z",
    }


def recorded(handling: Handling, into: list[Handled]) -> None:
    """Keep what every webhook handled through ``handling`` came to."""
    real = handling.webhook

    async def webhook(*args: Any, **kwargs: Any) -> Handled:
        handled = await real(*args, **kwargs)
        into.append(handled)
        return handled

    handling.webhook = webhook  # type: ignore[method-assign]


async def through_the_server(make_client: Any, rules: Path) -> list[Handled]:
    client = await make_client(rules, clock=lambda: T0, store="memory://")
    seen: list[Handled] = []
    recorded(client.server.app[HANDLING], seen)
    for n, (contact, text) in enumerate(MESSAGES):
        response = await client.post("/webhooks/textit", data=form(n, contact, text))
        assert response.status == 200
    return seen


async def through_replay(rules: Path) -> list[Handled]:
    world = World(load_rules([rules]), "hoiio")
    await world.store.open()
    seen: list[Handled] = []
    recorded(world.handling, seen)
    for n, (contact, text) in enumerate(MESSAGES):
        body = urlencode(form(n, contact, text)).encode()
        record = Record(T0, "textit", "textit", (), body, "application/x-www-form-urlencoded")
        await world.play(record)
    return seen


async def through_the_harness(rules: Path) -> list[Handled]:
    start = datetime.fromtimestamp(T0, UTC)
    setup = Setup("textit", "textit", ALICE, None, "+6531234567", start, ZoneInfo("UTC"))
    harness = Harness(load_rules([rules]), setup)
    await harness.store.open()
    seen: list[Handled] = []
    recorded(harness.handling, seen)
    for n, (contact, text) in enumerate(MESSAGES):
        await harness._post("textit", form(n, contact, text))
    return seen


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    return write_rules(tmp_path / "rules", RULES)


async def test_server_replay_and_harness_decide_and_commit_alike(
    make_client: Any, rules: Path
) -> None:
    server = await through_the_server(make_client, rules)
    replay = await through_replay(rules)
    harness = await through_the_harness(rules)
    assert len(server) == len(replay) == len(harness) == len(MESSAGES)
    for index, (a, b, c) in enumerate(zip(server, replay, harness, strict=True)):
        assert a.outcome == b.outcome == c.outcome, MESSAGES[index]
        assert a.commit == b.commit == c.commit, MESSAGES[index]
        assert a.response == b.response == c.response, MESSAGES[index]
    outcomes = [handled.outcome for handled in server]
    first, limited, started, stepped, stop, opted_hi, opted_survey = (
        outcome or Outcome() for outcome in outcomes
    )
    assert None not in outcomes
    assert first.matched == ("welcome",)
    # The hit is committed with the limit it was counted against, on every path.
    assert server[0].commit is not None
    assert server[0].commit.limits == first.limits != ()
    # The limit holds: the second "hi" falls through to the fallback.
    assert limited.limited == ("welcome",)
    assert limited.matched == ("fallback",)
    assert started.transition == ("survey", "(start)", "ask")
    assert stepped.moves == (("survey", "ask", "ask:0", "thanks"),)
    assert stepped.conversation is not None
    assert stepped.conversation.status == "ended"
    assert stop.opt_outs == ((BOB, True),)
    # Opted out: the rules match, but Bob gets no reply and no dialogue.
    assert opted_hi.reply_text is None
    assert not opted_hi.calls
    assert opted_survey.conversation is None
    assert [h.response.body for h in server[5:]] == [b"", b""]
