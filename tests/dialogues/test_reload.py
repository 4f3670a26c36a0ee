"""Swapping the rules under conversations in progress with ``reload_rules``: they continue
where their dialogue and state still exist, end cleanly where not, and broken rules never
replace working ones."""

from __future__ import annotations

import json
import logging
import shutil
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from responder.conversations import Timer
from responder.web.server import ENGINE, STORE, reload_rules
from tests.conftest import REPO, wait_for

PUBLIC = "https://ivr.example.org"
CALLER = "+6591234567"
ALICE = "+6598765432"
SESSION = "S-RELOAD"
IVR_KEY = f"hoiio:ivr:{SESSION}"
SMS_KEY = f"textit:sms:{ALICE}"
IVR_MENU = (REPO / "examples" / "ivr-menu" / "rules.yaml").read_text()

SURVEY = """
dialogues:
  - name: survey
    start: {on: sms.received, when: {text: {keyword: survey}}}
    states:
      q1:
        say: "Q1?"
        on: [{otherwise: true, goto: q2, set: {a1: "{{ text }}"}}]
      q2:
        say: "Q2?"
        on: [{otherwise: true, goto: done, set: {a2: "{{ text }}"}}]
        wait: {timeout: 1h, goto: done}
      done:
        say: "Thanks: {{ vars.a1 }} / {{ vars.a2 | default('-') }}."
        end: true
        outcome: answered
rules:
  - name: hello
    on: sms.received
    when: {text: {keyword: hello}}
    reply: {text: "Hello from version 1"}
"""


def write(directory: Path, text: str) -> None:
    (directory / "rules.yaml").write_text(textwrap.dedent(text))


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    return directory


_ids = iter(range(5000, 100000))


async def sms(client: Any, text: str, contact: str = ALICE) -> str | None:
    resp = await client.post(
        "/webhooks/textit",
        data={
            "event": "mo_sms",
            "relayer": "1",
            "sms": str(next(_ids)),
            "phone": contact,
            "text": text,
            "direction": "I",
        },
    )
    assert resp.status == 200
    body = await resp.read()
    return json.loads(body)["text"] if body else None  # type: ignore[no-any-return]


class Call:
    def __init__(self, client: Any, fake: Any, session: str = SESSION) -> None:
        self.client = client
        self.fake = fake
        self.session = session
        self.seen = len(fake.requests)

    async def answer(self) -> dict[str, str]:
        resp = await self.client.post(
            "/webhooks/hoiio",
            data={
                "ivr_block": "answer",
                "session": self.session,
                "txn_ref": f"AA-{self.session}",
                "from": CALLER,
                "to": "+6531234567",
            },
        )
        assert resp.status == 200
        return await self.next_block()

    async def next_block(self) -> dict[str, str]:
        await wait_for(lambda: len(self.fake.requests) > self.seen)
        request = self.fake.requests[self.seen]
        self.seen += 1
        return {"endpoint": request.path.removeprefix("/open/"), **request.params}

    async def notify(self, block: dict[str, str], **params: str) -> int:
        url = urlsplit(block["notify_url"])
        resp = await self.client.post(
            f"{url.path}?{url.query}",
            data={
                "session": self.session,
                "txn_ref": f"AA-{self.session}",
                "from": CALLER,
                "to": "+6531234567",
                **params,
            },
        )
        return resp.status


def state_of(block: dict[str, str]) -> str:
    return parse_qs(urlsplit(block["notify_url"]).query)["app_state"][0]


# -- (a) the dialogue and state still exist: the conversation continues --------------------------


async def test_sms_conversation_continues_on_the_new_rules(
    make_client: Any, rules: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(rules, SURVEY)
    client = await make_client(rules)
    app = client.server.app
    assert await sms(client, "survey") == "Q1?"
    old = app[ENGINE].rules
    write(rules, SURVEY.replace('"Q2?"', '"Question two?"').replace("Thanks", "Merci"))
    with caplog.at_level(logging.INFO, logger="responder.reload"):
        assert reload_rules(app) is True
    assert app[ENGINE].rules is not old
    assert "rules reloaded: 1 rule(s), 1 dialogue(s)" in caplog.text
    assert await sms(client, "red") == "Question two?"
    assert await sms(client, "blue") == "Merci: red / blue."
    conversation = await app[STORE].get_conversation(SMS_KEY)
    assert (conversation.status, conversation.outcome) == ("ended", "answered")
    assert conversation.vars == {"a1": "red", "a2": "blue"}


async def test_ivr_call_continues_on_the_new_rules(
    make_client: Any, fake_hoiio: Any, rules: Path
) -> None:
    write(rules, IVR_MENU)
    client = await make_client(rules, public_url=PUBLIC)
    call = Call(client, fake_hoiio)
    menu = await call.answer()
    assert state_of(menu) == "main-menu:menu:1"
    write(rules, IVR_MENU.replace("Please leave a message after the tone.", "Speak now."))
    assert reload_rules(client.server.app) is True
    # The notify_url signed before the reload is still good.
    assert await call.notify(menu, ivr_block="gather", digits="2") == 200
    voicemail = await call.next_block()
    assert voicemail["endpoint"] == "ivr/middle/record"
    assert voicemail["msg"] == "Speak now."
    assert state_of(voicemail) == "main-menu:voicemail:2"


async def test_reload_picks_up_added_and_changed_rules(make_client: Any, rules: Path) -> None:
    write(rules, SURVEY)
    client = await make_client(rules)
    assert await sms(client, "hello") == "Hello from version 1"
    write(rules, SURVEY.replace("version 1", "version 2"))
    (rules / "more.yaml").write_text(
        "rules:\n  - name: bye\n    on: sms.received\n"
        "    when: {text: {keyword: bye}}\n    reply: {text: Bye}\n"
    )
    assert reload_rules(client.server.app) is True
    assert await sms(client, "hello", "+6500000001") == "Hello from version 2"
    assert await sms(client, "bye", "+6500000001") == "Bye"


# -- (b) the state or dialogue is gone: the conversation ends cleanly ----------------------------


async def test_sms_conversation_in_a_removed_state_is_abandoned(
    make_client: Any, rules: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(rules, SURVEY)
    client = await make_client(rules)
    app = client.server.app
    await sms(client, "survey")
    assert await sms(client, "red") == "Q2?"
    without_q2 = """
        dialogues:
          - name: survey
            start: {on: sms.received, when: {text: {keyword: survey}}}
            states:
              q1:
                say: "Q1?"
                on: [{otherwise: true, goto: done}]
              done: {say: "Thanks.", end: true}
    """
    write(rules, without_q2)
    assert reload_rules(app) is True
    with caplog.at_level(logging.INFO):
        assert await sms(client, "blue") is None
    conversation = await app[STORE].get_conversation(SMS_KEY)
    assert conversation.status == "ended"
    assert conversation.outcome is not None
    assert conversation.outcome.startswith("abandoned")
    assert "state 'q2' no longer exists in 'survey'" in conversation.outcome
    assert conversation.state == "q2"
    assert conversation.vars == {"a1": "red"}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        f"conversation {SMS_KEY} ends: state 'q2' no longer exists" in r.getMessage()
        for r in warnings
    )
    # Nothing is sent to the contact for the abandoned step; a new message starts afresh.
    assert await sms(client, "survey") == "Q1?"
    restarted = await app[STORE].get_conversation(SMS_KEY)
    assert (restarted.status, restarted.state, restarted.vars) == ("active", "q1", {})
    assert restarted.version == conversation.version + 1


async def test_sms_conversation_of_a_removed_dialogue_is_abandoned(
    make_client: Any, rules: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(rules, SURVEY)
    client = await make_client(rules)
    app = client.server.app
    await sms(client, "survey")
    write(rules, "rules:\n  - name: hi\n    on: sms.received\n    reply: {text: Hi}\n")
    assert reload_rules(app) is True
    with caplog.at_level(logging.WARNING):
        await sms(client, "red")
    conversation = await app[STORE].get_conversation(SMS_KEY)
    assert conversation.status == "ended"
    assert conversation.outcome == "abandoned: dialogue 'survey' no longer exists"
    assert "dialogue 'survey' no longer exists" in caplog.text
    assert await sms(client, "anything") == "Hi"


async def test_timer_of_a_removed_state_abandons(make_client: Any, rules: Path) -> None:
    write(rules, SURVEY)
    client = await make_client(rules)
    app = client.server.app
    await sms(client, "survey")
    await sms(client, "red")  # q2: waits with a timer
    conversation = await app[STORE].get_conversation(SMS_KEY)
    write(rules, SURVEY.replace("wait: {timeout: 1h, goto: done}", ""))
    assert reload_rules(app) is True
    outcome, _ = await app[ENGINE].handle_timer(Timer(SMS_KEY, 0.0, conversation.seq))
    assert outcome.conversation is not None
    assert outcome.conversation.status == "ended"
    assert outcome.conversation.outcome is not None
    assert outcome.conversation.outcome.startswith("abandoned")
    assert outcome.calls == ()


@pytest.mark.parametrize("remove", ["state", "dialogue"])
async def test_ivr_call_in_a_removed_state_is_hung_up(
    make_client: Any,
    fake_hoiio: Any,
    rules: Path,
    caplog: pytest.LogCaptureFixture,
    remove: str,
) -> None:
    write(rules, IVR_MENU)
    client = await make_client(rules, public_url=PUBLIC)
    app = client.server.app
    call = Call(client, fake_hoiio)
    menu = await call.answer()
    assert await call.notify(menu, ivr_block="gather", digits="2") == 200
    voicemail = await call.next_block()
    assert state_of(voicemail) == "main-menu:voicemail:2"
    if remove == "state":
        new = """
            dialogues:
              - name: main-menu
                start: {on: ivr.answer}
                states:
                  menu:
                    gather: {say: "New menu. Press 1."}
                    on: [{digits: "1", goto: bye}]
                  bye: {hangup: {say: "Bye."}}
        """
        why = "state 'voicemail' no longer exists in 'main-menu'"
    else:
        new = """
            rules:
              - name: hang-up
                on: ivr.answer
                hangup: {say: "Closed."}
        """
        why = "dialogue 'main-menu' no longer exists"
    write(rules, new)
    assert reload_rules(app) is True
    with caplog.at_level(logging.WARNING, logger="responder.engine"):
        status = await call.notify(voicemail, ivr_block="record", record_url="https://rec/1.mp3")
    assert status == 200
    hangup = await call.next_block()
    assert hangup["endpoint"] == "ivr/end/hangup"
    assert hangup["session"] == SESSION
    assert "notify_url" not in hangup
    conversation = await app[STORE].get_conversation(IVR_KEY)
    assert conversation.status == "ended"
    assert conversation.outcome == f"abandoned: {why}"
    assert f"conversation {IVR_KEY} ends: {why}" in caplog.text
    # The call's later notifications (its end) change nothing more.
    version = conversation.version
    assert await call.notify(voicemail, call_state="ended") == 200
    assert (await app[STORE].get_conversation(IVR_KEY)).version == version
    assert len(fake_hoiio.requests) == call.seen


# -- (c) broken rules: refused, the old ones keep serving -----------------------------------------


@pytest.mark.parametrize(
    "broken",
    [
        "dialogues:\n  - name: survey\n    states: {q1: {say: 'x'\n",  # YAML syntax
        "dialogues:\n  - name: survey\n    states:\n      q1: {say: x, next: nowhere}\n",
        "rules:\n  - name: x\n    on: sms.recieved\n    reply: {text: y}\n",
        "",
    ],
    ids=["syntax", "unknown-state", "unknown-kind", "empty"],
)
async def test_broken_rules_are_refused_and_old_ones_keep_serving(
    make_client: Any, rules: Path, caplog: pytest.LogCaptureFixture, broken: str
) -> None:
    write(rules, SURVEY)
    client = await make_client(rules)
    app = client.server.app
    assert await sms(client, "survey") == "Q1?"
    old = app[ENGINE].rules
    (rules / "rules.yaml").write_text(broken)
    with caplog.at_level(logging.ERROR, logger="responder.reload"):
        assert reload_rules(app) is False
    assert app[ENGINE].rules is old
    refused = [r.getMessage() for r in caplog.records if "reload refused" in r.getMessage()]
    assert refused
    assert all(str(rules / "rules.yaml") in message for message in refused)
    # The conversation and the rules go on as before.
    assert await sms(client, "red") == "Q2?"
    assert await sms(client, "hello", "+6500000002") == "Hello from version 1"
    # Fixing the file and reloading again works.
    write(rules, SURVEY.replace("version 1", "version 3"))
    assert reload_rules(app) is True
    assert await sms(client, "hello", "+6500000003") == "Hello from version 3"
    assert await sms(client, "blue") == "Thanks: red / blue."


async def test_rules_directory_gone_is_refused(make_client: Any, rules: Path) -> None:
    write(rules, SURVEY)
    client = await make_client(rules)
    app = client.server.app
    old = app[ENGINE].rules
    shutil.rmtree(rules)
    assert reload_rules(app) is False
    assert app[ENGINE].rules is old
    assert await sms(client, "hello") == "Hello from version 1"
