"""The simulator through its JSON steps: the shipped survey and IVR menu played to the end,
timers moved on, bad steps refused; a session saved as a transcript that ``responder test``
passes; and the real store and providers never touched."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from responder.console.sims import MAX_SESSIONS, Refused, Simulations
from responder.rules.loader import load_rules
from responder.testing.fakes import FakeProvider
from responder.transcripts.run import run_file
from responder.web.server import STORE
from tests.console.conftest import EXAMPLES, ConsoleFactory


class Sim:
    def __init__(self, client: TestClient[Any, Any], view: dict[str, Any]) -> None:
        self.client = client
        self.view = view

    @classmethod
    async def start(cls, client: TestClient[Any, Any], **body: Any) -> Sim:
        resp = await client.post("/console/simulator/sessions", json=body, headers=_csrf(client))
        assert resp.status == 200, await resp.text()
        return cls(client, await resp.json())

    async def play(self, action: str, value: Any = True, status: int = 200) -> dict[str, Any]:
        resp = await self.client.post(
            f"/console/simulator/sessions/{self.view['id']}/steps",
            json={"action": action, "value": value},
            headers=_csrf(self.client),
        )
        data: dict[str, Any] = await resp.json()
        assert resp.status == status, data
        if status == 200:
            self.view = data
        return data

    async def transcript(self) -> str:
        resp = await self.client.get(f"/console/simulator/sessions/{self.view['id']}/transcript")
        assert resp.status == 200
        assert resp.headers["Content-Disposition"].endswith('.test.yaml"')
        return await resp.text()


def _csrf(client: TestClient[Any, Any]) -> dict[str, str]:
    return {"X-CSRF-Token": client.csrf}  # type: ignore[attr-defined]


def said(view: dict[str, Any]) -> list[str]:
    return [
        e.get("say") or e.get("text") or "" for e in view["events"] if "text" in e or "say" in e
    ]


async def passes(transcript: str, example: str, tmp_path: Path) -> None:
    """The transcript, saved beside a copy of the example's rules, passes responder test."""
    folder = tmp_path / example
    shutil.copytree(EXAMPLES / example, folder, dirs_exist_ok=True)
    for old in folder.glob("*.test.yaml"):
        old.unlink()
    path = folder / "saved.test.yaml"
    path.write_text(transcript)
    result = await run_file(path)
    assert result.problems == [], result.problems
    assert [c.failure for c in result.cases] == [None], transcript
    assert len(result.cases) == 1


async def test_the_survey_chat_to_its_end_saved_as_a_passing_test(
    console: ConsoleFactory, tmp_path: Path, fake_textit: FakeProvider
) -> None:
    client = await console(EXAMPLES / "sms-survey")
    sim = await Sim.start(client, kind="sms", provider="textit", contact="+15551230000")
    view = await sim.play("sms", "JOIN")
    assert said(view)[0].startswith("Thanks for joining our survey!")
    assert view["conversation"]["state"] == "rating"
    assert {"kind": "matched", "rules": ["survey-join", "dialogue:survey"]} in view["events"]
    await sim.play("sms", "4")
    await sim.play("sms", "yes")
    view = await sim.play("sms", "Faster delivery please")
    assert said(view) == ["Thank you for your answers!"]
    http = [e for e in view["events"] if e["kind"] == "http"]
    assert http[0]["url"] == "https://survey.example.com/responses"
    assert http[0]["json"]["comment"] == "Faster delivery please"
    assert view["conversation"]["status"] == "ended"
    assert view["conversation"]["outcome"] == "completed"
    assert view["conversation"]["vars"] == {
        "rating": "4",
        "recommend": "yes",
        "comment": "Faster delivery please",
    }
    transcript = await sim.transcript()
    assert "sms: JOIN" in transcript
    assert "outcome: completed" in transcript
    await passes(transcript, "sms-survey", tmp_path)
    # Nothing of it reached the server's store or the providers.
    store = client.server.app[STORE]
    assert await store.find_conversations() == []
    assert await store.outbox() == []
    assert fake_textit.requests == []


async def test_a_silent_contact_is_reminded_then_given_up_as_the_clock_moves(
    console: ConsoleFactory, tmp_path: Path
) -> None:
    client = await console(EXAMPLES / "sms-survey")
    sim = await Sim.start(client, kind="sms")
    await sim.play("sms", "JOIN")
    start = sim.view["clock"]
    view = await sim.play("wait", 3600)
    assert view["clock"] == start + 3600
    assert said(view) == ["Reminder: how would you rate our service, from 1 (poor) to 5 (great)?"]
    assert [e["kind"] for e in view["events"] if e["kind"] != "matched"] == ["sms"]
    view = await sim.play("wait", 3600)
    assert view["conversation"]["outcome"] == "no answer"
    transcript = await sim.transcript()
    assert "wait: 1h" in transcript
    await passes(transcript, "sms-survey", tmp_path)


@pytest.mark.parametrize(
    ("keys", "then", "outcome"),
    [
        ("2", [("record", True)], "voicemail left"),
        ("1", [("transfer", "busy"), ("record", True)], "voicemail left"),
        ("9", [("press", "8"), ("press", "")], "no valid choice"),
    ],
)
async def test_the_ivr_menu_on_the_keypad_to_its_end_saved_as_a_passing_test(
    console: ConsoleFactory,
    tmp_path: Path,
    fake_hoiio: FakeProvider,
    keys: str,
    then: list[tuple[str, Any]],
    outcome: str,
) -> None:
    client = await console(EXAMPLES / "ivr-menu")
    sim = await Sim.start(client, kind="call")
    assert sim.view["provider"] == "hoiio"
    view = await sim.play("call", "incoming")
    assert view["in_call"]
    assert view["pending"] == "ivr/middle/gather"
    ivr = [e for e in view["events"] if e["kind"] == "ivr"]
    assert ivr[0]["say"] == "Welcome. Press 1 for sales, 2 to leave a message."
    assert ivr[0]["params"]["max_digits"] == 1
    assert "notify_url" not in ivr[0]["params"]
    view = await sim.play("press", keys)
    for action, value in then:
        view = await sim.play(action, value)
    assert view["conversation"]["status"] == "ended"
    assert view["conversation"]["outcome"] == outcome
    assert not view["in_call"]
    assert view["pending"] is None
    assert [e["endpoint"] for e in view["events"] if e["kind"] == "ivr"] == ["ivr/end/hangup"]
    await passes(await sim.transcript(), "ivr-menu", tmp_path)
    assert fake_hoiio.requests == []


async def test_steps_that_cannot_be_played_are_refused_and_not_recorded(
    console: ConsoleFactory,
) -> None:
    client = await console(EXAMPLES / "ivr-menu")
    sim = await Sim.start(client, kind="call")
    for action, value, why in [
        ("press", "1", "no call is on"),
        ("hangup", True, "no call is on"),
        ("dance", 1, "unknown step"),
        ("sms", "", "an SMS is 1 to"),
        ("sms", "x" * 1001, "an SMS is 1 to"),
        ("wait", -5, "wait between"),
        ("wait", "soon", "wait takes seconds"),
    ]:
        assert why in (await sim.play(action, value, status=409))["error"]
    await sim.play("call", "incoming")
    assert "a call is on" in (await sim.play("call", "incoming", status=409))["error"]
    assert "keys are" in (await sim.play("press", "1; drop", status=409))["error"]
    assert "not record" in (await sim.play("record", True, status=409))["error"]
    assert sim.view["steps"] == 1
    resp = await client.post(
        "/console/simulator/sessions/9-nope/steps", json={"action": "sms"}, headers=_csrf(client)
    )
    assert resp.status == 404
    for body in [
        {"kind": "sms", "contact": "not a number"},
        {"kind": "sms", "provider": "smoke-signals"},
        {"kind": "sms", "channel": "nowhere"},
        {"kind": "fax"},
    ]:
        resp = await client.post("/console/simulator/sessions", json=body, headers=_csrf(client))
        assert resp.status == 409, body


def test_sessions_are_bounded_and_idle_ones_dropped() -> None:
    rules = load_rules([str(EXAMPLES / "sms-survey")])
    now = [0.0]
    sims = Simulations(lambda: now[0])

    def start() -> str:
        return sims.start(
            rules,
            (),
            kind="sms",
            provider="textit",
            channel="textit",
            contact="+1555",
            number="+1556",
        ).id

    first = start()
    for _ in range(MAX_SESSIONS + 5):
        start()
    assert len(sims) == MAX_SESSIONS
    assert sims.get(first) is None
    with pytest.raises(Refused):
        sims.start(
            rules, (), kind="call", provider="textit", channel="t", contact="+1", number="+1"
        )
