"""The dialogue Runner through real rule files, the Engine and a MemoryStore: visit limits,
variables, chains, recordings, transfers and the end of calls."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from responder.appstate import AppState, Signer
from responder.conversations import Conversation, Timer
from responder.dialogues.runner import MAX_CHAIN, Runner
from responder.events import Event
from responder.outbound import Commit, StoredResponse
from responder.rules.loader import load_rules
from responder.runtime.engine import Engine
from responder.runtime.outcome import Outcome
from responder.stores.memory import MemoryStore

T0 = 1_700_000_000.0
ALICE = "+6591234567"
PUBLIC = "https://ivr.example.org"
SESSION = "S-1"


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Harness:
    """Events in, commits as the server makes them, conversations out."""

    def __init__(self, tmp_path: Path, text: str) -> None:
        path = tmp_path / "rules.yaml"
        path.write_text(textwrap.dedent(text))
        self.rules = load_rules([path])
        self.store = MemoryStore()
        self.clock = Clock()
        self.engine = Engine(self.rules, self.store, Runner(Signer(b"k" * 32), PUBLIC), self.clock)
        self.count = 0
        self.writes = 0

    async def send(self, event: Event, app_state: AppState | None = None) -> Outcome:
        self.count += 1
        key = f"ev{self.count}"
        outcome = await self.engine.handle(event, key, app_state)
        commit = Commit(
            key,
            StoredResponse(200, "text/plain", b""),
            outcome.calls,
            outcome.hits,
            self.clock(),
            86400.0,
            outcome.conversation,
            outcome.expected_version,
            outcome.timer,
        )
        _, fresh, _ = await self.store.commit(commit)
        assert fresh
        if outcome.conversation is not None:
            self.writes += 1
        return outcome

    async def sms(self, text: str, contact: str = ALICE) -> Outcome:
        return await self.send(
            Event("textit", "textit", "sms.received", contact=contact, text=text)
        )

    async def ivr(self, kind: str, signed: bool = True, **kw: Any) -> Outcome:
        raw = kw.pop("raw", {})
        event = Event("hoiio", "hoiio", kind, contact=ALICE, session=SESSION, raw=raw, **kw)
        state = None
        if signed and kind != "ivr.answer":
            current = await self.conversation(f"hoiio:ivr:{SESSION}")
            state = AppState(current.dialogue, current.state, current.seq)
        return await self.send(event, state)

    async def conversation(self, key: str = f"textit:sms:{ALICE}") -> Conversation:
        found = await self.store.get_conversation(key)
        assert found is not None
        return found


def texts(outcome: Outcome) -> list[str]:
    """Every text for the contact: the reply body first, then the SMS calls."""
    out = [outcome.reply_text] if outcome.reply_text is not None else []
    for call in outcome.calls:
        if call.endpoint == "broadcasts.json":
            out.append(call.params["text"])
        elif call.endpoint == "sms/send":
            out.append(call.params["msg"])
    return out


def blocks(outcome: Outcome) -> list[str]:
    return [c.endpoint for c in outcome.calls if c.endpoint.startswith("ivr/")]


# -- visit limits ------------------------------------------------------------------------------

STATE_LIMIT = """
dialogues:
  - name: quiz
    start: {on: sms.received, when: {text: {keyword: quiz}}}
    states:
      ask:
        say: "Capital of France?"
        on:
          - {text: {keyword: paris}, goto: right}
          - {otherwise: true, goto: wrong}
      wrong:
        say: "Wrong, try again."
        max_visits: 2
        then: give-up
        next: ask
      right: {say: "Correct!", end: true, outcome: right}
      give-up: {say: "It was Paris.", end: true, outcome: gave up}
"""


async def test_state_level_visit_limit(tmp_path: Path) -> None:
    h = Harness(tmp_path, STATE_LIMIT)
    assert texts(await h.sms("quiz")) == ["Capital of France?"]
    assert texts(await h.sms("london")) == ["Wrong, try again.", "Capital of France?"]
    assert texts(await h.sms("rome")) == ["Wrong, try again.", "Capital of France?"]
    # 'wrong' was entered twice: the third time goes to its 'then' instead.
    assert texts(await h.sms("berlin")) == ["It was Paris."]
    conversation = await h.conversation()
    assert conversation.status == "ended"
    assert conversation.outcome == "gave up"
    assert conversation.visits == {"ask": 3, "wrong": 2, "give-up": 1}
    assert conversation.state == "give-up"


async def test_state_level_limit_not_reached(tmp_path: Path) -> None:
    h = Harness(tmp_path, STATE_LIMIT)
    await h.sms("quiz")
    await h.sms("london")
    assert texts(await h.sms("Paris")) == ["Correct!"]
    conversation = await h.conversation()
    assert (conversation.status, conversation.outcome) == ("ended", "right")
    assert conversation.visits == {"ask": 2, "wrong": 1, "right": 1}


TRANSITION_LIMIT = """
dialogues:
  - name: quiz
    start: {on: sms.received, when: {text: {keyword: quiz}}}
    states:
      ask:
        say: "Capital of France?"
        on:
          - {text: {keyword: paris}, goto: right}
          - {text: {keyword: repeat}, goto: ask}
          - {otherwise: true, goto: ask, max_visits: 3, then: give-up}
      right: {say: "Correct!", end: true}
      give-up: {say: "It was Paris.", end: true, outcome: gave up}
"""


async def test_transition_level_visit_limit(tmp_path: Path) -> None:
    h = Harness(tmp_path, TRANSITION_LIMIT)
    await h.sms("quiz")  # ask: 1
    assert texts(await h.sms("a")) == ["Capital of France?"]  # ask: 2
    assert texts(await h.sms("b")) == ["Capital of France?"]  # ask: 3
    assert texts(await h.sms("c")) == ["It was Paris."]
    conversation = await h.conversation()
    assert conversation.visits == {"ask": 3, "give-up": 1}
    assert conversation.outcome == "gave up"


async def test_transition_level_limit_only_limits_its_transition(tmp_path: Path) -> None:
    h = Harness(tmp_path, TRANSITION_LIMIT)
    await h.sms("quiz")
    for _ in range(5):  # 'repeat' has no limit
        assert texts(await h.sms("repeat")) == ["Capital of France?"]
    assert (await h.conversation()).visits == {"ask": 6}
    # ...but the limit counts every visit of the target, however it was entered.
    assert texts(await h.sms("x")) == ["It was Paris."]


async def test_ivr_menu_transition_limit(tmp_path: Path) -> None:
    h = Harness(tmp_path, (Path(__file__).parents[2] / "examples/ivr-menu/rules.yaml").read_text())
    answer = await h.ivr("ivr.answer")
    assert blocks(answer) == ["ivr/middle/gather"]
    for seq in (2, 3):
        out = await h.ivr("ivr.gather", digits="7")
        assert blocks(out) == ["ivr/middle/gather"]
        assert f"app_state=main-menu%3Amenu%3A{seq}" in out.calls[0].params["notify_url"]
    out = await h.ivr("ivr.gather", digits="7")
    assert blocks(out) == ["ivr/end/hangup"]
    assert out.calls[0].params["msg"] == "Sorry, we did not get that. Goodbye."
    conversation = await h.conversation(f"hoiio:ivr:{SESSION}")
    assert (conversation.status, conversation.outcome) == ("ended", "no valid choice")


TRANSFER_LIMIT = """
dialogues:
  - name: desk
    start: {on: ivr.answer}
    states:
      menu:
        gather: {say: "Press 1 for the desk."}
        on:
          - {digits: "1", goto: connect}
          - {otherwise: true, goto: menu}
      connect:
        transfer: {to: "+6561234567", on_failure: busy}
      busy:
        say: "The desk is busy."
        max_visits: 1
        then: give-up
        next: menu
      give-up:
        hangup: {say: "Please call again later."}
        outcome: desk busy
"""


async def test_visit_limit_on_a_transfer_failure_target(tmp_path: Path) -> None:
    h = Harness(tmp_path, TRANSFER_LIMIT)
    await h.ivr("ivr.answer")
    assert blocks(await h.ivr("ivr.gather", digits="1")) == ["ivr/end/transfer"]
    out = await h.ivr("ivr.transfer", status="busy")
    assert blocks(out) == ["ivr/middle/play"]
    assert blocks(await h.ivr("ivr.play")) == ["ivr/middle/gather"]
    assert blocks(await h.ivr("ivr.gather", digits="1")) == ["ivr/end/transfer"]
    # 'busy' was visited once: the second failure goes to its 'then'.
    out = await h.ivr("ivr.transfer", status="busy")
    assert blocks(out) == ["ivr/end/hangup"]
    assert out.calls[0].params["msg"] == "Please call again later."
    conversation = await h.conversation(f"hoiio:ivr:{SESSION}")
    assert (conversation.status, conversation.outcome) == ("ended", "desk busy")


# -- variables ---------------------------------------------------------------------------------

VARS = r"""
dialogues:
  - name: signup
    start: {on: sms.received, when: {text: {keyword: join}}}
    states:
      ask-name:
        say: "Your name?"
        set: {step: "1"}
        on:
          - text: {regex: '^(?P<name>[a-z]+)$'}
            goto: ask-age
            set: {name: "{{ captures.name | title }}", raw: "{{ text }}"}
      ask-age:
        say: "How old are you, {{ vars.name }}?"
        set: {step: "{{ vars.step | int + 1 }}", greeting: "Hi {{ vars.name }}"}
        on:
          - {text: {number: {min: 1, max: 150}}, goto: done, set: {age: "{{ text }}"}}
          - {otherwise: true, goto: ask-age}
      done:
        say: "{{ vars.greeting }}, {{ vars.age }} (step {{ vars.step }}, {{ vars.raw }})"
        end: true
"""


async def test_set_vars_and_templates_see_them(tmp_path: Path) -> None:
    h = Harness(tmp_path, VARS)
    assert texts(await h.sms("join")) == ["Your name?"]
    assert (await h.conversation()).vars == {"step": "1"}
    assert texts(await h.sms("alice")) == ["How old are you, Alice?"]
    assert (await h.conversation()).vars == {
        "step": "2",
        "name": "Alice",
        "raw": "alice",
        "greeting": "Hi Alice",
    }
    assert texts(await h.sms("old")) == ["How old are you, Alice?"]
    assert (await h.conversation()).vars["step"] == "3"
    assert texts(await h.sms("42")) == ["Hi Alice, 42 (step 3, alice)"]
    conversation = await h.conversation()
    assert conversation.vars["age"] == "42"
    assert conversation.status == "ended"
    assert conversation.outcome == "ended in done"


async def test_start_captures_are_kept_in_vars(tmp_path: Path) -> None:
    h = Harness(
        tmp_path,
        r"""
        dialogues:
          - name: order
            start: {on: sms.received, when: {text: {regex: '^order (?P<id>\d+)$'}}}
            states:
              confirm:
                say: "Order {{ vars.captures.id }}: reply YES."
                on: [{text: {keyword: yes}, goto: done}]
              done: {say: "Order {{ vars.captures.id }} confirmed.", end: true}
        """,
    )
    assert texts(await h.sms("order 77")) == ["Order 77: reply YES."]
    assert texts(await h.sms("yes")) == ["Order 77 confirmed."]


# -- chains ------------------------------------------------------------------------------------


async def test_next_chain_sends_several_texts_in_one_step(tmp_path: Path) -> None:
    h = Harness(
        tmp_path,
        """
        dialogues:
          - name: intro
            start: {on: sms.received, when: {text: {keyword: info}}}
            states:
              one: {say: "First.", next: two}
              two: {say: "Second.", next: silent}
              silent: {set: {seen: "yes"}, next: three}
              three:
                say: "Third: reply MORE."
                on: [{text: {keyword: more}, goto: four}]
              four: {say: "Fourth.", next: five}
              five: {say: "Fifth.", end: true, outcome: done}
        """,
    )
    out = await h.sms("info")
    assert out.reply_text == "First."
    assert [(c.provider, c.endpoint) for c in out.calls] == [("textit", "broadcasts.json")] * 2
    assert [c.params for c in out.calls] == [
        {"urns": [f"tel:{ALICE}"], "text": "Second."},
        {"urns": [f"tel:{ALICE}"], "text": "Third: reply MORE."},
    ]
    assert len({c.key for c in out.calls}) == 2
    conversation = await h.conversation()
    assert conversation.state == "three"
    assert conversation.seq == 4
    assert conversation.visits == {"one": 1, "two": 1, "silent": 1, "three": 1}
    assert conversation.vars == {"seen": "yes"}
    out = await h.sms("more")
    assert texts(out) == ["Fourth.", "Fifth."]
    assert (await h.conversation()).outcome == "done"


async def test_hoiio_sms_dialogue_texts_all_go_as_sms(tmp_path: Path) -> None:
    h = Harness(
        tmp_path,
        """
        dialogues:
          - name: intro
            start: {on: sms.received}
            states:
              one: {say: "First.", next: two}
              two: {say: "Second.", end: true}
        """,
    )
    out = await h.send(Event("hoiio", "hoiio", "sms.received", contact=ALICE, text="hi"))
    assert out.reply_text is None  # Hoiio ignores response bodies
    assert [(c.endpoint, c.params) for c in out.calls] == [
        ("sms/send", {"dest": ALICE, "msg": "First."}),
        ("sms/send", {"dest": ALICE, "msg": "Second."}),
    ]


def chain(length: int) -> str:
    states = "\n".join(
        f"      s{i}: {{say: 'step {i}', next: s{i + 1}}}" for i in range(length - 1)
    )
    return (
        "dialogues:\n  - name: long\n    start: {on: sms.received}\n    states:\n"
        f"{states}\n      s{length - 1}: {{say: 'last', end: true, outcome: finished}}\n"
    )


async def test_chain_of_max_chain_states_completes(tmp_path: Path) -> None:
    h = Harness(tmp_path, chain(MAX_CHAIN))
    out = await h.sms("go")
    assert len(texts(out)) == MAX_CHAIN
    assert texts(out)[-1] == "last"
    conversation = await h.conversation()
    assert (conversation.status, conversation.outcome) == ("ended", "finished")


async def test_chain_longer_than_max_chain_is_stopped(tmp_path: Path) -> None:
    h = Harness(tmp_path, chain(MAX_CHAIN + 1))
    out = await h.sms("go")
    assert len(texts(out)) == MAX_CHAIN
    assert "last" not in texts(out)
    conversation = await h.conversation()
    assert conversation.status == "ended"
    assert conversation.outcome == f"stopped: more than {MAX_CHAIN} states in a row without input"


async def test_next_loop_is_stopped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(
        tmp_path,
        """
        dialogues:
          - name: loop
            start: {on: sms.received}
            states:
              ping: {say: "ping", next: pong}
              pong: {next: ping}
        """,
    )
    with caplog.at_level("INFO"):
        out = await h.sms("go")
    assert texts(out) == ["ping"] * (MAX_CHAIN // 2)
    conversation = await h.conversation()
    assert conversation.status == "ended"
    assert conversation.outcome is not None
    assert conversation.outcome.startswith("stopped")
    assert sum(conversation.visits.values()) == MAX_CHAIN
    assert "looped through" in caplog.text
    # The next message starts over instead of looping forever.
    out = await h.sms("again")
    assert texts(out) == ["ping"] * (MAX_CHAIN // 2)


# -- IVR blocks --------------------------------------------------------------------------------

IVR = """
dialogues:
  - name: desk
    start: {on: ivr.answer}
    states:
      menu:
        gather: {say: "1 for sales, 2 to record.", max_digits: 1, timeout: 7, attempts: 2}
        on:
          - {digits: "1", goto: sales}
          - {digits: "2", goto: voicemail}
      sales:
        transfer: {to: "+6561234567", say: "Connecting.", caller_id: "+6530000000"}
        outcome: transferred to sales
      voicemail:
        record: {say: "Speak now.", max_duration: 30}
        next: thanks
      thanks:
        hangup: {say: "Got {{ vars.recording }}"}
        outcome: voicemail left
"""


async def test_gather_block_parameters_and_no_match_repeats(tmp_path: Path) -> None:
    h = Harness(tmp_path, IVR)
    out = await h.ivr("ivr.answer")
    [call] = out.calls
    assert call.endpoint == "ivr/middle/gather"
    assert call.params["session"] == SESSION
    assert (call.params["max_digits"], call.params["timeout"], call.params["attempts"]) == (
        1,
        7,
        2,
    )
    assert call.params["notify_url"].startswith(
        f"{PUBLIC}/webhooks/hoiio?app_state=desk%3Amenu%3A1"
    )
    out = await h.ivr("ivr.gather", digits="9")
    assert blocks(out) == ["ivr/middle/gather"]
    assert "desk%3Amenu%3A2" in out.calls[0].params["notify_url"]
    # Anything but a gather while waiting for keys is ignored: nothing is written.
    version = (await h.conversation(f"hoiio:ivr:{SESSION}")).version
    out = await h.ivr("ivr.record", raw={"record_url": "https://rec/x"})
    assert out.conversation is None
    assert out.calls == ()
    assert (await h.conversation(f"hoiio:ivr:{SESSION}")).version == version


async def test_record_keeps_the_recording_in_vars(tmp_path: Path) -> None:
    h = Harness(tmp_path, IVR)
    await h.ivr("ivr.answer")
    out = await h.ivr("ivr.gather", digits="2")
    [call] = out.calls
    assert call.endpoint == "ivr/middle/record"
    assert (call.params["msg"], call.params["max_duration"]) == ("Speak now.", 30)
    out = await h.ivr("ivr.record", raw={"record_url": "https://rec.example/1.mp3"})
    assert blocks(out) == ["ivr/end/hangup"]
    assert out.calls[0].params["msg"] == "Got https://rec.example/1.mp3"
    conversation = await h.conversation(f"hoiio:ivr:{SESSION}")
    assert conversation.vars["recording"] == "https://rec.example/1.mp3"
    assert (conversation.status, conversation.outcome) == ("ended", "voicemail left")


async def test_transfer_answered_is_no_step_and_the_end_records_the_outcome(
    tmp_path: Path,
) -> None:
    h = Harness(tmp_path, IVR)
    await h.ivr("ivr.answer")
    out = await h.ivr("ivr.gather", digits="1")
    [call] = out.calls
    assert call.endpoint == "ivr/end/transfer"
    assert call.params["dest"] == "+6561234567"
    assert call.params["caller_id"] == "+6530000000"
    assert call.params["on_failure"] == "hangup"
    before = await h.conversation(f"hoiio:ivr:{SESSION}")
    writes = h.writes
    out = await h.ivr("ivr.transfer", status="answered")
    assert out.conversation is None
    assert out.calls == ()
    assert h.writes == writes
    assert await h.conversation(f"hoiio:ivr:{SESSION}") == before
    assert before.status == "active"
    out = await h.ivr("ivr.ended", status="ended")
    assert out.calls == ()
    conversation = await h.conversation(f"hoiio:ivr:{SESSION}")
    assert (conversation.status, conversation.outcome) == ("ended", "transferred to sales")
    assert conversation.version == before.version + 1


async def test_failed_transfer_without_on_failure_ends(tmp_path: Path) -> None:
    h = Harness(tmp_path, IVR)
    await h.ivr("ivr.answer")
    await h.ivr("ivr.gather", digits="1")
    out = await h.ivr("ivr.transfer", status="busy")
    assert out.calls == ()
    conversation = await h.conversation(f"hoiio:ivr:{SESSION}")
    assert (conversation.status, conversation.outcome) == ("ended", "transfer failed (busy)")


@pytest.mark.parametrize("kind", ["ivr.ended", "ivr.hangup"])
@pytest.mark.parametrize("signed", [True, False])
async def test_ended_notification_ends_with_the_state_outcome(
    tmp_path: Path, kind: str, signed: bool
) -> None:
    h = Harness(tmp_path, IVR)
    await h.ivr("ivr.answer")
    await h.ivr("ivr.gather", digits="2")
    out = await h.ivr(kind, signed=signed)
    assert out.calls == ()
    conversation = await h.conversation(f"hoiio:ivr:{SESSION}")
    assert conversation.status == "ended"
    assert conversation.outcome == "call ended in voicemail"
    assert conversation.state == "voicemail"
    # Later notifications of the ended call change nothing.
    version = conversation.version
    out = await h.ivr("ivr.record", signed=False, raw={"record_url": "https://rec/late"})
    assert out.conversation is None
    assert (await h.conversation(f"hoiio:ivr:{SESSION}")).version == version


async def test_ended_in_a_state_with_an_outcome(tmp_path: Path) -> None:
    h = Harness(tmp_path, IVR)
    await h.ivr("ivr.answer")
    await h.ivr("ivr.gather", digits="1")
    await h.ivr("ivr.ended")
    conversation = await h.conversation(f"hoiio:ivr:{SESSION}")
    assert conversation.outcome == "transferred to sales"


async def test_unsigned_notification_for_an_ivr_conversation_is_ignored(tmp_path: Path) -> None:
    h = Harness(tmp_path, IVR)
    await h.ivr("ivr.answer")
    out = await h.ivr("ivr.gather", signed=False, digits="1")
    assert out.conversation is None
    assert out.calls == ()
    assert (await h.conversation(f"hoiio:ivr:{SESSION}")).state == "menu"


async def test_stale_notification_is_ignored(tmp_path: Path) -> None:
    h = Harness(tmp_path, IVR)
    await h.ivr("ivr.answer")
    stale = AppState("desk", "menu", 1)
    await h.ivr("ivr.gather", digits="9")  # menu again, seq 2
    event = Event("hoiio", "hoiio", "ivr.gather", contact=ALICE, session=SESSION, digits="1")
    out = await h.send(event, stale)
    assert out.conversation is None
    assert out.calls == ()
    conversation = await h.conversation(f"hoiio:ivr:{SESSION}")
    assert (conversation.state, conversation.seq) == ("menu", 2)


# -- SMS waits ---------------------------------------------------------------------------------


async def test_wait_sets_a_timer_and_its_timeout_moves_on(tmp_path: Path) -> None:
    h = Harness(
        tmp_path,
        """
        dialogues:
          - name: nudge
            start: {on: sms.received, when: {text: {keyword: hi}}}
            states:
              ask:
                say: "Rate us 1-5."
                on: [{text: {number: {min: 1, max: 5}}, goto: thanks}]
                wait: {timeout: 1h, goto: reminder}
              reminder:
                say: "Still there? Rate us 1-5."
                on: [{text: {number: {min: 1, max: 5}}, goto: thanks}]
                wait: {timeout: 1h, goto: gone}
              thanks: {say: "Thanks!", end: true, outcome: rated}
              gone: {end: true, outcome: no answer}
        """,
    )
    out = await h.sms("hi")
    assert out.timer is not None
    assert (out.timer.due, out.timer.seq) == (T0 + 3600, 1)
    # A message that matches nothing stays, keeping the timer.
    out = await h.sms("maybe")
    assert out.timer is None
    assert (await h.conversation()).state == "ask"
    h.clock.now = T0 + 3600
    outcome, key = await h.engine.handle_timer(Timer(f"textit:sms:{ALICE}", T0 + 3600, 1))
    assert key == f"timer:textit:sms:{ALICE}:1"
    assert outcome.conversation is not None
    assert outcome.conversation.state == "reminder"
    assert texts(outcome) == ["Still there? Rate us 1-5."]
    assert outcome.timer is not None
    assert outcome.timer.due == T0 + 7200
    # A timer of an older step does nothing but clear itself.
    stale, _ = await h.engine.handle_timer(Timer(f"textit:sms:{ALICE}", T0, 0))
    assert stale.conversation is None
    assert stale.timer is not None
    assert stale.timer.due is None


async def test_a_restarted_conversation_keeps_counting_steps(tmp_path: Path) -> None:
    # Timer firings are keyed by (conversation key, step): a survey taken a second time
    # must not reuse the first one's step numbers, or its timers would never fire.
    h = Harness(
        tmp_path,
        """
        dialogues:
          - name: nudge
            start: {on: sms.received, when: {text: {keyword: hi}}}
            states:
              ask:
                say: "Rate us 1-5."
                on: [{text: {number: {min: 1, max: 5}}, goto: thanks}]
                wait: {timeout: 1h, goto: gone}
              thanks: {say: "Thanks!", end: true, outcome: rated}
              gone: {end: true, outcome: no answer}
        """,
    )
    await h.sms("hi")
    await h.sms("5")
    first = await h.conversation()
    assert (first.status, first.seq) == ("ended", 2)
    out = await h.sms("hi")
    assert out.conversation is not None
    assert out.conversation.seq == 3
    assert out.timer is not None
    assert out.timer.seq == 3
    h.clock.now = T0 + 3600
    timer = Timer(f"textit:sms:{ALICE}", T0 + 3600, 3)
    outcome, key = await h.engine.handle_timer(timer)
    assert key == f"timer:textit:sms:{ALICE}:3"
    assert outcome.conversation is not None
    assert outcome.conversation.outcome == "no answer"
