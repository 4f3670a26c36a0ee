"""Conversation as stored: its JSON form and the keys conversations are filed under."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from responder.conversations import Conversation, conversation_key, dial_key
from responder.speed import dumps

FULL = Conversation(
    key="hoiio:ivr:S-1",
    dialogue="main-menu",
    state="menu",
    channel="hoiio",
    provider="hoiio",
    contact="+6591234567",
    session="S-1",
    vars={"captures": {"name": "Ann"}, "recording": "é", "list": [1, "two", None], "n": 2.5},
    visits={"menu": 2, "sales": 1},
    seq=3,
    version=7,
    status="ended",
    outcome="voicemail left",
    started=1.5,
    updated=2.25,
    expires=86_402.0,
    ref="0123456789abcdef",
)
BARE = Conversation(key="textit:sms:+1", dialogue="d", state="s", channel="textit", provider="x")


@pytest.mark.parametrize("conversation", [FULL, BARE])
def test_to_json_writes_what_asdict_would(conversation: Conversation) -> None:
    assert conversation.to_json() == dumps(asdict(conversation))
    assert list(json.loads(conversation.to_json())) == list(asdict(conversation))


@pytest.mark.parametrize("conversation", [FULL, BARE])
def test_json_round_trip(conversation: Conversation) -> None:
    assert Conversation.from_json(conversation.to_json()) == conversation


def test_to_json_leaves_the_vars_alone() -> None:
    text = FULL.to_json()
    assert FULL.vars["captures"] == {"name": "Ann"}
    assert json.loads(text)["vars"] == FULL.vars


def test_keys() -> None:
    assert conversation_key("hoiio", "+65", "S-1") == "hoiio:ivr:S-1"
    assert conversation_key("textit", "+65", None) == "textit:sms:+65"
    assert conversation_key("textit", None, None) == "textit:sms:-"
    assert dial_key("hoiio", "ab") == "hoiio:ivr:dial-ab"
