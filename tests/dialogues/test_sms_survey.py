"""The SMS survey example driven end to end over HTTP: TextIt replies in the webhook body,
Hoiio replies as ``sms/send``; reminders and give-ups fired by the timer worker on a
controllable clock."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from responder.testing.fakes import FakeProvider
from responder.web.server import STORE, TIMERS
from tests.conftest import REPO, wait_for, write_rules

EXAMPLE = REPO / "examples" / "sms-survey"
CONTACT = "+250788123123"
HOIIO_CONTACT = "+6591234567"
OUR_NUMBER = "+6531234567"
T0 = 1_800_000_000.0
HOUR = 3600.0

Q_RATING = (
    "Thanks for joining our survey! How would you rate our service, from 1 (poor) to 5 (great)?"
)
Q_RECOMMEND = "Would you recommend us to a friend? Reply YES or NO."
Q_COMMENT = "Last question: what could we do better? Reply with a short comment, or NONE."
THANKS = "Thank you for your answers!"
RATING_AGAIN = "Sorry, please answer with a number from 1 to 5."
RECOMMEND_AGAIN = "Sorry, please reply YES or NO: would you recommend us to a friend?"
RATING_REMINDER = "Reminder: how would you rate our service, from 1 (poor) to 5 (great)?"
RECOMMEND_REMINDER = "Reminder: would you recommend us to a friend? Reply YES or NO."
GAVE_UP = "No problem, we'll stop here. Text JOIN any time to take the survey again."


@pytest.fixture
def rules(tmp_path: Path, fake_http: FakeProvider) -> Path:
    """The example, with its results endpoint pointed at the fake HTTP server."""
    directory = tmp_path / "rules"
    shutil.copytree(EXAMPLE, directory)
    path = directory / "rules.yaml"
    text = path.read_text()
    assert "https://survey.example.com" in text
    path.write_text(text.replace("https://survey.example.com", fake_http.url))
    return directory


class Clock:
    def __init__(self) -> None:
        self.t = [T0]

    def __call__(self) -> float:
        return self.t[0]

    def advance(self, seconds: float) -> None:
        self.t[0] += seconds


class TextItContact:
    """Plays TextIt: posts ``mo_sms`` events, returns the reply body."""

    def __init__(self, client: Any, phone: str = CONTACT) -> None:
        self.client = client
        self.phone = phone
        self.sms_id = 100

    async def send(self, text: str) -> dict[str, Any] | None:
        self.sms_id += 1
        resp = await self.client.post(
            "/webhooks/textit",
            data={
                "event": "mo_sms",
                "sms": str(self.sms_id),
                "relayer": "5",
                "relayer_phone": "+250788000000",
                "phone": self.phone,
                "text": text,
            },
        )
        assert resp.status == 200
        body = await resp.read()
        return json.loads(body) if body else None

    async def ask(self, text: str) -> str:
        """Send ``text``; the reply must be in the webhook body, addressed to the contact."""
        reply = await self.send(text)
        assert reply is not None, f"no reply to {text!r}"
        assert reply["phone"] == [self.phone]
        return str(reply["text"])


class HoiioContact:
    """Plays Hoiio: posts incoming SMS notifications, reads the ``sms/send`` calls."""

    def __init__(self, client: Any, fake: FakeProvider, phone: str = HOIIO_CONTACT) -> None:
        self.client = client
        self.fake = fake
        self.phone = phone
        self.txn = 0
        self.seen = 0

    async def send(self, text: str) -> None:
        self.txn += 1
        resp = await self.client.post(
            "/webhooks/hoiio",
            data={
                "msg": text,
                "from": self.phone,
                "to": OUR_NUMBER,
                "txn_ref": f"AA-R-{self.txn}",
                "date": "2027-01-15 08:00:00.0",
            },
        )
        assert resp.status == 200
        assert await resp.read() == b""

    async def next_sms(self) -> str:
        await wait_for(lambda: len(self.fake.requests) > self.seen)
        request = self.fake.requests[self.seen]
        self.seen += 1
        assert request.path == "/open/sms/send"
        assert request.params["dest"] == self.phone
        assert request.params["app_id"] == "app-1"
        return request.params["msg"]

    async def ask(self, text: str) -> str:
        await self.send(text)
        return await self.next_sms()


def broadcasts(fake: FakeProvider) -> list[tuple[list[str], str]]:
    return [(r.json["urns"], r.json["text"]) for r in fake.calls("/broadcasts.json")]


async def conversation(client: Any, key: str) -> Any:
    return await client.server.app[STORE].get_conversation(key)


def timers_of(client: Any) -> Any:
    """The app's timer worker, its background loop stopped: the test fires timers itself."""
    worker = client.server.app[TIMERS]
    worker.stop()
    return worker


# -- happy paths ----------------------------------------------------------------------------


async def test_happy_path_textit(make_client, rules, fake_http, fake_textit) -> None:
    client = await make_client(rules)
    contact = TextItContact(client)
    assert await contact.ask("JOIN") == Q_RATING
    assert await contact.ask("4") == Q_RECOMMEND
    assert await contact.ask("Yes, definitely") == Q_COMMENT
    assert await contact.ask("  Faster delivery, please ") == THANKS

    await wait_for(lambda: len(fake_http.requests) == 1)
    request = fake_http.requests[0]
    assert (request.method, request.path) == ("POST", "/responses")
    assert request.json == {
        "contact": CONTACT,
        "rating": "4",
        "recommend": "yes",
        "comment": "Faster delivery, please",
    }
    done = await conversation(client, f"textit:sms:{CONTACT}")
    assert (done.status, done.outcome, done.state) == ("ended", "completed", "thanks")
    assert done.vars == {"rating": "4", "recommend": "yes", "comment": "Faster delivery, please"}
    # Every text went back in a webhook body; nothing through the TextIt API.
    assert fake_textit.requests == []

    # The survey is over: a further message is not an answer (no rule takes it) ...
    assert await contact.send("5") is None
    # ... and JOIN starts it afresh.
    assert await contact.ask("join") == Q_RATING
    again = await conversation(client, f"textit:sms:{CONTACT}")
    assert (again.status, again.state, again.vars) == ("active", "rating", {})


async def test_happy_path_hoiio(make_client, rules, fake_http, fake_hoiio) -> None:
    client = await make_client(rules)
    contact = HoiioContact(client, fake_hoiio)
    assert await contact.ask("Join") == Q_RATING
    assert await contact.ask("5") == Q_RECOMMEND
    assert await contact.ask("no") == Q_COMMENT
    assert await contact.ask("none") == THANKS

    await wait_for(lambda: len(fake_http.requests) == 1)
    assert fake_http.requests[0].json == {
        "contact": HOIIO_CONTACT,
        "rating": "5",
        "recommend": "no",
        "comment": "-",
    }
    assert [r.path for r in fake_hoiio.requests] == ["/open/sms/send"] * 4
    done = await conversation(client, f"hoiio:sms:{HOIIO_CONTACT}")
    assert (done.status, done.outcome) == ("ended", "completed")


async def test_retried_webhook_is_not_a_second_answer(make_client, rules) -> None:
    client = await make_client(rules)
    contact = TextItContact(client)
    assert await contact.ask("JOIN") == Q_RATING
    assert await contact.ask("3") == Q_RECOMMEND
    contact.sms_id -= 1  # TextIt retries the same event: the same answer, no step taken
    assert await contact.ask("3") == Q_RECOMMEND
    state = await conversation(client, f"textit:sms:{CONTACT}")
    assert (state.state, state.visits) == ("recommend", {"rating": 1, "recommend": 1})


# -- invalid answers ----------------------------------------------------------------------


async def test_invalid_answers_are_asked_again(make_client, rules, fake_http) -> None:
    client = await make_client(rules)
    contact = TextItContact(client)
    assert await contact.ask("JOIN") == Q_RATING
    assert await contact.ask("great") == RATING_AGAIN
    assert await contact.ask("9") == RATING_AGAIN
    assert await contact.ask("0") == RATING_AGAIN
    assert await contact.ask("3") == Q_RECOMMEND
    assert await contact.ask("maybe later") == RECOMMEND_AGAIN
    assert await contact.ask("N") == Q_COMMENT
    assert await contact.ask("Nothing") == THANKS
    await wait_for(lambda: len(fake_http.requests) == 1)
    assert fake_http.requests[0].json == {
        "contact": CONTACT,
        "rating": "3",
        "recommend": "no",
        "comment": "-",
    }
    done = await conversation(client, f"textit:sms:{CONTACT}")
    assert done.visits["rating-again"] == 3


async def test_invalid_answer_on_hoiio(make_client, rules, fake_hoiio) -> None:
    client = await make_client(rules)
    contact = HoiioContact(client, fake_hoiio)
    assert await contact.ask("JOIN") == Q_RATING
    assert await contact.ask("six") == RATING_AGAIN
    assert await contact.ask("2") == Q_RECOMMEND


async def test_other_texts_before_join_start_nothing(make_client, rules) -> None:
    client = await make_client(rules)
    contact = TextItContact(client)
    assert await contact.send("hello") is None
    assert await contact.send("I want to join") is None  # JOIN must be the first word
    assert await conversation(client, f"textit:sms:{CONTACT}") is None


# -- timeouts -------------------------------------------------------------------------------


async def test_timeout_reminds_then_gives_up_textit(make_client, rules, fake_textit) -> None:
    clock = Clock()
    client = await make_client(rules, clock=clock)
    timers = timers_of(client)
    contact = TextItContact(client)
    assert await contact.ask("JOIN") == Q_RATING

    clock.advance(HOUR - 1)
    assert await timers.fire_due() == 0
    clock.advance(1)
    assert await timers.fire_due() == 1
    await wait_for(lambda: len(fake_textit.requests) == 1)
    assert broadcasts(fake_textit) == [([f"tel:{CONTACT}"], RATING_REMINDER)]
    request = fake_textit.requests[0]
    assert request.headers["Authorization"] == "Token textit-secret-1"
    state = await conversation(client, f"textit:sms:{CONTACT}")
    assert (state.status, state.state) == ("active", "rating-reminder")

    clock.advance(HOUR - 1)
    assert await timers.fire_due() == 0
    clock.advance(1)
    assert await timers.fire_due() == 1
    await wait_for(lambda: len(fake_textit.requests) == 2)
    assert broadcasts(fake_textit)[1] == ([f"tel:{CONTACT}"], GAVE_UP)
    done = await conversation(client, f"textit:sms:{CONTACT}")
    assert (done.status, done.outcome, done.state) == ("ended", "no answer", "gave-up")

    clock.advance(10 * HOUR)
    assert await timers.fire_due() == 0
    assert len(fake_textit.requests) == 2
    # An answer after giving up is no longer taken as one.
    assert await contact.send("4") is None


async def test_answer_to_the_reminder_continues(make_client, rules, fake_textit) -> None:
    clock = Clock()
    client = await make_client(rules, clock=clock)
    timers = timers_of(client)
    contact = TextItContact(client)
    assert await contact.ask("JOIN") == Q_RATING
    clock.advance(HOUR)
    assert await timers.fire_due() == 1
    await wait_for(lambda: len(fake_textit.requests) == 1)
    assert await contact.ask("4") == Q_RECOMMEND
    # The next question has its own timer, counted from the answer.
    clock.advance(HOUR - 1)
    assert await timers.fire_due() == 0
    clock.advance(1)
    assert await timers.fire_due() == 1
    await wait_for(lambda: len(fake_textit.requests) == 2)
    assert broadcasts(fake_textit)[1] == ([f"tel:{CONTACT}"], RECOMMEND_REMINDER)


async def test_reply_before_timeout_cancels_it(make_client, rules, fake_textit) -> None:
    clock = Clock()
    client = await make_client(rules, clock=clock)
    timers = timers_of(client)
    contact = TextItContact(client)
    assert await contact.ask("JOIN") == Q_RATING
    clock.advance(HOUR / 2)
    assert await contact.ask("5") == Q_RECOMMEND
    clock.advance(HOUR / 2)  # when the rating reminder would have been due
    assert await timers.fire_due() == 0
    clock.advance(HOUR / 4)
    assert await contact.ask("yes") == Q_COMMENT
    assert await contact.ask("All good") == THANKS
    # Finished: no timer is left at all.
    clock.advance(24 * HOUR)
    assert await timers.fire_due() == 0
    assert fake_textit.requests == []


async def test_invalid_answer_restarts_the_wait(make_client, rules, fake_textit) -> None:
    clock = Clock()
    client = await make_client(rules, clock=clock)
    timers = timers_of(client)
    contact = TextItContact(client)
    assert await contact.ask("JOIN") == Q_RATING
    clock.advance(HOUR - 60)
    assert await contact.ask("dunno") == RATING_AGAIN
    clock.advance(60)
    assert await timers.fire_due() == 0
    clock.advance(HOUR - 60)
    assert await timers.fire_due() == 1
    await wait_for(lambda: len(fake_textit.requests) == 1)
    assert broadcasts(fake_textit) == [([f"tel:{CONTACT}"], RATING_REMINDER)]


async def test_reminder_comes_once_per_question(make_client, rules, fake_textit) -> None:
    clock = Clock()
    client = await make_client(rules, clock=clock)
    timers = timers_of(client)
    contact = TextItContact(client)
    assert await contact.ask("JOIN") == Q_RATING
    clock.advance(HOUR)
    assert await timers.fire_due() == 1
    await wait_for(lambda: len(fake_textit.requests) == 1)
    # An invalid answer to the reminder is asked again; going quiet then gives up rather
    # than reminding a second time.
    assert await contact.ask("what?") == RATING_AGAIN
    clock.advance(HOUR)
    assert await timers.fire_due() == 1
    await wait_for(lambda: len(fake_textit.requests) == 2)
    assert [text for _, text in broadcasts(fake_textit)] == [RATING_REMINDER, GAVE_UP]
    done = await conversation(client, f"textit:sms:{CONTACT}")
    assert (done.status, done.state, done.visits["rating-reminder"]) == (
        "ended",
        "gave-up",
        1,
    )


async def test_timeout_reminds_then_gives_up_hoiio(make_client, rules, fake_hoiio) -> None:
    clock = Clock()
    client = await make_client(rules, clock=clock)
    timers = timers_of(client)
    contact = HoiioContact(client, fake_hoiio)
    assert await contact.ask("JOIN") == Q_RATING
    clock.advance(HOUR)
    assert await timers.fire_due() == 1
    assert await contact.next_sms() == RATING_REMINDER
    assert await contact.ask("5") == Q_RECOMMEND
    clock.advance(HOUR)
    assert await timers.fire_due() == 1
    assert await contact.next_sms() == RECOMMEND_REMINDER
    clock.advance(HOUR)
    assert await timers.fire_due() == 1
    assert await contact.next_sms() == GAVE_UP
    clock.advance(HOUR)
    assert await timers.fire_due() == 0
    assert len(fake_hoiio.requests) == 5
    done = await conversation(client, f"hoiio:sms:{HOIIO_CONTACT}")
    assert (done.status, done.outcome, done.vars) == ("ended", "no answer", {"rating": "5"})


async def test_transition_conditions_see_the_answers_so_far(make_client, tmp_path) -> None:
    # A survey variant that branches on an earlier answer: expr conditions read vars.
    rules = write_rules(
        tmp_path / "branching",
        """
        rules:
          - {name: join, on: sms.received, when: {text: {keyword: [join]}}, start: short}
        dialogues:
          - name: short
            states:
              rating:
                say: "Rate us 1-5."
                on:
                  - {text: {number: {min: 1, max: 5}}, set: {rating: "{{ text }}"}, goto: why}
              why:
                say: "Why?"
                on:
                  - {expr: "vars.rating | int <= 2", goto: sorry}
                  - {otherwise: true, goto: glad}
              sorry: {say: "Sorry to hear that.", end: true}
              glad: {say: "Glad to hear it.", end: true}
        """,
    )
    client = await make_client(rules)
    low, high = TextItContact(client, "+15550000001"), TextItContact(client, "+15550000002")
    high.sms_id = 200  # TextIt message ids are unique across contacts
    assert await low.ask("join") == "Rate us 1-5."
    assert await high.ask("join") == "Rate us 1-5."
    assert await low.ask("2") == "Why?"
    assert await high.ask("5") == "Why?"
    assert await low.ask("slow") == "Sorry to hear that."
    assert await high.ask("fast") == "Glad to hear it."
