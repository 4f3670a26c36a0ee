"""The engine against real rule files, a MemoryStore and a fixed clock."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import pytest

from responder.events import Event, Flow, FlowValue
from responder.outbound import Commit, HitLimit, OutboundCall, StoredResponse
from responder.rules.loader import load_rules
from responder.runtime.engine import Engine
from responder.runtime.outcome import Outcome
from responder.stores.memory import MemoryStore
from tests.conftest import dialogue_runner, write_rules
from tests.stores.counting import CountingMemoryStore

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
HOUR = 3600.0
ALICE = "+6591234567"
BOB = "+6598765432"


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def engine_for(tmp_path: Path, yaml_text: str, clock: Clock | None = None) -> Engine:
    rules = load_rules([write_rules(tmp_path / "rules", yaml_text)])
    return Engine(rules, MemoryStore(), dialogue_runner(None), clock or Clock())


def sms(text: str, contact: str = ALICE, provider: str = "textit", **kw: object) -> Event:
    return Event(
        provider=provider, channel=provider, kind="sms.received", contact=contact, text=text, **kw
    )  # type: ignore[arg-type]


async def record(engine: Engine, outcome: Outcome, key: str) -> None:
    """Commit an outcome the way the server does, so its limit hits count."""
    commit = Commit(
        key, StoredResponse(200, "text/plain", b""), outcome.calls, outcome.hits, engine.clock()
    )
    _, fresh, _ = await engine.store.commit(commit)
    assert fresh


# -- matching -------------------------------------------------------------------------------


async def test_first_matching_rule_wins(tmp_path: Path) -> None:
    engine = engine_for(
        tmp_path,
        """
        rules:
          - name: hours
            on: sms.received
            when: {text: {keyword: [hours]}}
            reply: {text: "Open 9-18"}
          - name: hours-too
            on: sms.received
            when: {text: {any_word: [hours]}}
            reply: {text: "Should not be used"}
            http: {url: "https://example.com/never"}
          - name: fallback
            on: sms.received
            reply: {text: "Text HOURS"}
        """,
    )
    outcome = await engine.handle(sms("hours please"), "k1")
    assert outcome.matched == ("hours",)
    assert outcome.reply_text == "Open 9-18"
    assert outcome.calls == ()
    assert outcome.errors == ()
    other = await engine.handle(sms("hello"), "k2")
    assert (other.matched, other.reply_text) == (("fallback",), "Text HOURS")
    nothing = await engine.handle(
        Event(provider="textit", channel="textit", kind="call.missed", contact=ALICE), "k3"
    )
    assert nothing == Outcome()


async def test_priority_beats_file_order_and_ties_keep_file_order(tmp_path: Path) -> None:
    engine = engine_for(
        tmp_path,
        """
        rules:
          - name: first-in-file
            on: sms.received
            reply: {text: "first"}
          - name: second-in-file
            on: sms.received
            reply: {text: "second"}
          - name: urgent
            on: sms.*
            priority: 10
            when: {text: {keyword: [urgent]}}
            reply: {text: "urgent"}
        """,
    )
    assert (await engine.handle(sms("urgent!"), "k1")).matched == ("urgent",)
    assert (await engine.handle(sms("hello"), "k2")).matched == ("first-in-file",)


async def test_continue_collects_calls_but_only_the_first_reply_counts(tmp_path: Path) -> None:
    engine = engine_for(
        tmp_path,
        """
        rules:
          - name: log-it
            on: sms.received
            continue: true
            http: {url: "https://log.example.com/in", json: {text: "{{ text }}"}}
          - name: answer
            on: sms.received
            continue: true
            reply: {text: "first reply"}
            sms: {text: "copy for the boss", to: "+6580000000"}
          - name: also-answer
            on: sms.received
            reply: {text: "second reply"}
            http: {url: "https://crm.example.com/{{ contact }}"}
          - name: never
            on: sms.received
            reply: {text: "not reached"}
        """,
    )
    outcome = await engine.handle(sms("hi"), "evt")
    assert outcome.matched == ("log-it", "answer", "also-answer")
    assert outcome.reply_text == "first reply"
    assert [(c.key, c.rule, c.endpoint) for c in outcome.calls] == [
        ("evt#0", "log-it", "https://log.example.com/in"),
        ("evt#1", "answer", "broadcasts.json"),
        ("evt#2", "also-answer", "https://crm.example.com/%2B6591234567"),  # encoded
    ]
    assert outcome.calls[0].params == {"json": {"text": "hi"}}


async def test_hoiio_reply_sms_is_attributed_to_the_rule_that_replied(tmp_path: Path) -> None:
    engine = engine_for(
        tmp_path,
        """
        rules:
          - name: log-it
            on: sms.received
            continue: true
            http: {url: "https://log.example.com/in"}
          - name: answer
            on: sms.received
            reply: {text: "hello back"}
        """,
    )
    outcome = await engine.handle(sms("hi", provider="hoiio"), "evt")
    assert outcome.reply_text is None
    assert [(c.key, c.rule, c.endpoint) for c in outcome.calls] == [
        ("evt#0", "log-it", "https://log.example.com/in"),
        ("evt#1", "answer", "sms/send"),
    ]


# -- limits ---------------------------------------------------------------------------------

LIMITED = """
rules:
  - name: welcome
    on: sms.received
    limit: {per_contact: 1, every: 6h}
    reply: {text: "Welcome!"}
  - name: fallback
    on: sms.received
    reply: {text: "Hi again"}
"""


async def test_limit_per_contact_falls_through_then_expires(tmp_path: Path) -> None:
    clock = Clock()
    engine = engine_for(tmp_path, LIMITED, clock)
    first = await engine.handle(sms("hi"), "e1")
    assert first.matched == ("welcome",)
    assert first.limited == ()
    assert [h for h in first.hits if h.startswith("limit:")] == ["limit:welcome:textit:+6591234567"]
    await record(engine, first, "e1")

    clock.now = T0 + 5 * HOUR
    second = await engine.handle(sms("hi"), "e2")
    assert second.limited == ("welcome",)
    assert second.matched == ("fallback",)
    assert second.reply_text == "Hi again"
    assert [h for h in second.hits if h.startswith("limit:")] == []
    await record(engine, second, "e2")

    # Another contact has a limit of its own.
    bob = await engine.handle(sms("hi", contact=BOB), "e3")
    assert bob.matched == ("welcome",)

    clock.now = T0 + 6 * HOUR + 1
    third = await engine.handle(sms("hi"), "e4")
    assert third.matched == ("welcome",)
    assert third.limited == ()
    assert third.hits == first.hits


async def test_a_limit_hit_is_only_counted_once_committed(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, LIMITED)
    await engine.handle(sms("hi"), "e1")  # never committed: e.g. lost to a concurrent retry
    assert (await engine.handle(sms("hi"), "e2")).matched == ("welcome",)


# -- errors ---------------------------------------------------------------------------------


async def test_a_template_error_is_reported_and_makes_no_calls(tmp_path: Path) -> None:
    engine = engine_for(
        tmp_path,
        """
        rules:
          - name: broken
            on: sms.received
            limit: {per_contact: 1, every: 1h}
            reply: {text: "Your order {{ captures.missing.value }}"}
            sms: {text: "ping", to: "+6580000000"}
            http: {url: "https://example.com/hook"}
        """,
    )
    outcome = await engine.handle(sms("hi", provider="hoiio"), "e1")
    assert outcome.calls == ()
    assert outcome.reply_text is None
    assert outcome.hits == ()  # a rule that did not fire does not use up its limit
    assert outcome.matched == ()
    assert len(outcome.errors) == 1
    assert "'broken'" in outcome.errors[0]
    assert "missing" in outcome.errors[0]


async def test_an_sms_without_any_recipient_is_an_error(tmp_path: Path) -> None:
    engine = engine_for(
        tmp_path,
        """
        rules:
          - name: notify
            on: channel.alarm
            sms: {text: "alarm"}
        """,
    )
    event = Event(provider="textit", channel="textit", kind="channel.alarm")
    outcome = await engine.handle(event, "e1")
    assert outcome.calls == ()
    assert "'notify'" in outcome.errors[0]


# -- actions --------------------------------------------------------------------------------


async def test_hoiio_reply_becomes_an_sms_to_the_contact(tmp_path: Path) -> None:
    engine = engine_for(
        tmp_path,
        """
        rules:
          - name: echo
            on: sms.received
            reply: {text: "You said {{ text }}"}
        """,
    )
    outcome = await engine.handle(sms("hello", provider="hoiio"), "hoiio:AA-1")
    assert outcome.reply_text is None
    assert outcome.calls == (
        OutboundCall(
            "hoiio:AA-1#0",
            "hoiio",
            "sms/send",
            {"dest": ALICE, "msg": "You said hello"},
            rule="echo",
            contact=ALICE,
        ),
    )


async def test_hangup_ends_the_session_before_the_reply_sms(tmp_path: Path) -> None:
    engine = engine_for(
        tmp_path,
        """
        rules:
          - name: missed
            on: ivr.answer
            hangup: {say: "Goodbye {{ contact }}"}
            reply: {text: "Sorry we missed you"}
        """,
    )
    event = Event(
        provider="hoiio", channel="hoiio", kind="ivr.answer", contact=ALICE, session="S-42"
    )
    outcome = await engine.handle(event, "ivr")
    hangup, text = outcome.calls
    assert (hangup.key, hangup.provider, hangup.endpoint) == ("ivr#0", "hoiio", "ivr/end/hangup")
    assert hangup.params == {"session": "S-42", "msg": f"Goodbye {ALICE}"}
    assert hangup.contact == ALICE
    assert (text.key, text.endpoint, text.params) == (
        "ivr#1",
        "sms/send",
        {"dest": ALICE, "msg": "Sorry we missed you"},
    )


async def test_hangup_without_a_session_makes_no_call(tmp_path: Path) -> None:
    engine = engine_for(
        tmp_path,
        """
        rules:
          - name: hang
            on: ivr.answer
            hangup: {}
        """,
    )
    event = Event(provider="hoiio", channel="hoiio", kind="ivr.answer", contact=ALICE)
    outcome = await engine.handle(event, "ivr")
    assert outcome.matched == ("hang",)
    assert outcome.calls == ()


async def test_sms_via_textit_uses_broadcasts_with_urns(tmp_path: Path) -> None:
    engine = engine_for(
        tmp_path,
        """
        rules:
          - name: copy
            on: sms.received
            continue: true
            sms:
              - text: "Thanks {{ contact_name }}"
              - {text: "New message from {{ contact }}", to: "+6580000000"}
              - {text: "via urn", to: "whatsapp:6580000001"}
          - name: cross
            on: sms.received
            sms: {text: "via textit from hoiio", via: textit}
        """,
    )
    event = sms("hi", urn=f"tel:{ALICE}", contact_name="Alice")
    outcome = await engine.handle(event, "tx")
    assert [(c.key, c.provider, c.endpoint, c.params, c.contact) for c in outcome.calls] == [
        (
            "tx#0",
            "textit",
            "broadcasts.json",
            {"urns": [f"tel:{ALICE}"], "text": "Thanks Alice"},
            ALICE,
        ),
        (
            "tx#1",
            "textit",
            "broadcasts.json",
            {"urns": ["tel:+6580000000"], "text": f"New message from {ALICE}"},
            "+6580000000",
        ),
        (
            "tx#2",
            "textit",
            "broadcasts.json",
            {"urns": ["whatsapp:6580000001"], "text": "via urn"},
            "whatsapp:6580000001",
        ),
        (
            "tx#3",
            "textit",
            "broadcasts.json",
            {"urns": [f"tel:{ALICE}"], "text": "via textit from hoiio"},
            ALICE,
        ),
    ]
    from_hoiio = await engine.handle(sms("hi", provider="hoiio"), "hx")
    assert from_hoiio.calls[0].provider == "hoiio"
    assert from_hoiio.calls[3].provider == "textit"
    assert from_hoiio.calls[3].params == {"urns": [f"tel:{ALICE}"], "text": "via textit from hoiio"}


async def test_http_action_renders_url_headers_and_json(tmp_path: Path) -> None:
    engine = engine_for(
        tmp_path,
        """
        rules:
          - name: order
            on: sms.received
            when: {text: {regex: 'order (?P<number>\\d+)'}}
            http:
              url: "https://orders.example.com/{{ captures.number }}"
              method: PUT
              headers: {X-Contact: "{{ contact }}"}
              json: {order: "{{ captures.number }}", count: 2, tags: ["{{ rule }}", true]}
              timeout: 5s
        """,
    )
    outcome = await engine.handle(sms("my order 12345"), "h")
    assert outcome.calls == (
        OutboundCall(
            "h#0",
            "http",
            "https://orders.example.com/12345",
            {"json": {"order": "12345", "count": 2, "tags": ["order", True]}},
            rule="order",
            contact=ALICE,
            method="PUT",
            headers={"X-Contact": ALICE},
            timeout=5.0,
        ),
    )


async def test_http_url_that_renders_to_a_non_http_url_is_an_error(tmp_path: Path) -> None:
    engine = engine_for(
        tmp_path,
        """
        rules:
          - name: hook
            on: sms.received
            http: {url: "{{ text }}"}
        """,
    )
    outcome = await engine.handle(sms("file:///etc/passwd"), "h")
    assert outcome.calls == ()
    assert "'hook'" in outcome.errors[0]


async def test_call_keys_are_stable_for_the_same_event(tmp_path: Path) -> None:
    engine = engine_for(
        tmp_path,
        """
        rules:
          - name: all
            on: sms.received
            sms: [{text: "a"}, {text: "b", to: "+6580000000"}]
            http: {url: "https://example.com/x"}
            reply: {text: "done"}
        """,
    )
    event = sms("hi", provider="hoiio")
    first = await engine.handle(event, "hoiio:AA-7")
    again = await engine.handle(event, "hoiio:AA-7")
    assert [c.key for c in first.calls] == [f"hoiio:AA-7#{n}" for n in range(4)]
    assert again == first
    other = await engine.handle(event, "hoiio:AA-8")
    assert [c.key for c in other.calls] == [f"hoiio:AA-8#{n}" for n in range(4)]


async def test_flow_step_reply_json_returns_rendered_variables(tmp_path: Path) -> None:
    engine = engine_for(
        tmp_path,
        """
        rules:
          - name: order-status
            on: flow.step
            when:
              flow: {name: "Order Status"}
              values:
                Order Number: {value: {regex: '^(?P<order>CU\\d{3,})$'}}
            reply:
              json:
                status: Shipped
                order: "{{ captures.order }}"
                who: "{{ contact }}"
                nested: {ok: true, n: 3, list: ["{{ flow.name }}"]}
        """,
    )
    event = Event(
        provider="textit",
        channel="textit",
        kind="flow.step",
        contact=ALICE,
        flow=Flow(name="Order Status", uuid="f-1"),
        values=MappingProxyType(
            {"order_number": FlowValue("Order Number", "All Responses", "CU123", "CU123")}
        ),
    )
    outcome = await engine.handle(event, "flow")
    assert outcome.reply_text is None
    assert outcome.variables == {
        "status": "Shipped",
        "order": "CU123",
        "who": ALICE,
        "nested": {"ok": True, "n": 3, "list": ["Order Status"]},
    }
    assert outcome.calls == ()
    other_flow = Event(
        provider="textit", channel="textit", kind="flow.step", flow=Flow(name="Survey")
    )
    assert (await engine.handle(other_flow, "flow2")).matched == ()


@pytest.mark.parametrize("hour", [0, 12])
async def test_clock_drives_time_conditions(tmp_path: Path, hour: int) -> None:
    engine = engine_for(
        tmp_path,
        """
        rules:
          - name: night
            on: sms.received
            when: {time: {timezone: UTC, hours: "22:00-06:00"}}
            reply: {text: "closed"}
          - name: day
            on: sms.received
            reply: {text: "open"}
        """,
        Clock(1_700_006_400.0 + hour * HOUR),  # 2023-11-15 00:00 UTC + hour
    )
    outcome = await engine.handle(sms("hi"), "t")
    assert outcome.reply_text == ("closed" if hour == 0 else "open")


async def test_hoiio_reply_without_a_contact_is_an_error_not_an_sms_to_nobody(
    tmp_path: Path,
) -> None:
    engine = engine_for(
        tmp_path,
        """
        rules:
          - name: echo
            on: sms.received
            reply: {text: "hi"}
        """,
    )
    outcome = await engine.handle(sms("hello", provider="hoiio", contact=None), "k")  # type: ignore[arg-type]
    assert outcome.calls == ()
    assert outcome.reply_text is None
    assert "'echo'" in outcome.errors[0]


# -- reads: what a decision will most likely read, in one store call ------------------------

SURVEY = """
compliance:
  cap: {per_contact: 5, every: 1d}
rules:
  - name: join
    on: sms.received
    when: {text: {keyword: [join]}}
    start: survey
  - name: fallback
    on: sms.received
    reply: {text: "Text JOIN"}
dialogues:
  - name: survey
    mode: sms
    states:
      rating:
        say: "Rate us from 1 to 5"
        on:
          - {text: {number: {min: 1, max: 5}}, goto: thanks}
      thanks:
        say: "Thank you"
        end: true
"""


def counted(tmp_path: Path, yaml_text: str, clock: Clock | None = None) -> Engine:
    rules = load_rules([write_rules(tmp_path / "rules", yaml_text)])
    return Engine(rules, CountingMemoryStore(), dialogue_runner(None), clock or Clock())


def reads_of(engine: Engine) -> list[str]:
    store = engine.store
    assert isinstance(store, CountingMemoryStore)
    return store.reads


async def decide(engine: Engine, event: Event, key: str) -> Outcome:
    """Decide as the server does: prepare (one read), then handle; then commit."""
    outcome = await engine.handle(event, key, None, await engine.prepare(event, key))
    commit = Commit(
        key,
        StoredResponse(200, "text/plain", b""),
        outcome.calls,
        outcome.hits,
        engine.clock(),
        conversation=outcome.conversation,
        expected_version=outcome.expected_version,
        timer=outcome.timer,
        opt_outs=outcome.opt_outs,
        limits=outcome.limits,
    )
    await engine.store.commit(commit)
    return outcome


async def test_a_rule_reply_reads_the_store_once(tmp_path: Path) -> None:
    engine = counted(tmp_path, SURVEY)
    outcome = await decide(engine, sms("hello"), "k1")
    assert outcome.reply_text == "Text JOIN"
    # The cap and the loop guard were counted, from the one read.
    assert outcome.limits == (
        HitLimit(f"loop:{ALICE}", T0 - 60.0, 10),
        HitLimit(f"cap:{ALICE}", T0 - 86400.0, 5),
    )
    assert reads_of(engine) == ["snapshot"]


async def test_a_dialogue_step_reads_the_store_once(tmp_path: Path) -> None:
    engine = counted(tmp_path, SURVEY)
    started = await decide(engine, sms("join"), "k1")
    assert started.reply_text == "Rate us from 1 to 5"
    assert reads_of(engine) == ["snapshot"]  # no conversation yet: the snapshot said so
    reads_of(engine).clear()
    step = await decide(engine, sms("4"), "k2")
    assert step.reply_text == "Thank you"
    assert step.expected_version == 1  # the conversation came from the snapshot
    assert reads_of(engine) == ["snapshot"]


async def test_prefetched_counts_hold_the_guard_and_caps(tmp_path: Path) -> None:
    engine = counted(tmp_path, SURVEY)
    for n in range(5):
        assert (await decide(engine, sms("hello"), f"k{n}")).reply_text == "Text JOIN"
    reads_of(engine).clear()
    capped = await decide(engine, sms("hello"), "k5")
    assert capped.reply_text is None
    assert capped.matched == ("fallback",)
    assert reads_of(engine) == ["snapshot"]


async def test_a_prepared_opt_out_is_honoured(tmp_path: Path) -> None:
    engine = counted(tmp_path, SURVEY)
    await decide(engine, sms("stop"), "k1")
    reads_of(engine).clear()
    assert (await decide(engine, sms("hello"), "k2")).reply_text is None
    assert (await decide(engine, sms("join"), "k3")).conversation is None  # not started
    assert reads_of(engine) == ["snapshot", "snapshot"]


OTHERS = """
rules:
  - name: missed
    on: call.missed
    sms: {text: "missed call from {{ contact }}", to: "+6598765432", via: hoiio}
    start: survey
dialogues:
  - name: survey
    mode: sms
    states:
      rating:
        say: "Rate us from 1 to 5"
        on:
          - {text: {number: {min: 1, max: 5}}, goto: rating}
"""


async def test_what_was_not_prefetched_is_read_from_the_store(tmp_path: Path) -> None:
    engine = counted(tmp_path, LIMITED)
    assert (await decide(engine, sms("hi"), "k1")).matched == ("welcome",)
    assert reads_of(engine) == ["snapshot", "count_hits"]  # the rule's own limit
    assert (await decide(engine, sms("hi"), "k2")).matched == ("fallback",)
    # A missed call has no conversation of its own: the one it starts is read on its own,
    # and the opt-out mark of the other number the rule texts too.
    engine = counted(tmp_path / "2", OTHERS)
    missed = Event(provider="textit", channel="textit", kind="call.missed", contact=ALICE)
    outcome = await decide(engine, missed, "k3")
    assert outcome.conversation is not None
    assert [c.contact for c in outcome.calls] == [BOB]
    assert reads_of(engine) == ["snapshot", "get_conversation", "opted_out"]


async def test_a_prepared_decision_keeps_the_rules_it_was_prepared_with(tmp_path: Path) -> None:
    engine = counted(tmp_path, SURVEY)
    event = sms("hello")
    prepared = await engine.prepare(event, "k1")
    engine.rules = load_rules([write_rules(tmp_path / "new", LIMITED)])  # a reload meanwhile
    assert (await engine.handle(event, "k1", None, prepared)).reply_text == "Text JOIN"
    assert (await engine.handle(event, "k2")).matched == ("welcome",)
