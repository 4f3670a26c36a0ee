"""``responder conversations``: a contact's conversation as the store holds it, on SQLite and
on Redis, after real webhooks."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from responder.cli import main
from tests.conftest import store_overrides, write_rules

ALICE = "+6591234567"
RULES = """
dialogues:
  - name: survey
    mode: sms
    start: {on: sms.received, when: {text: {keyword: [join]}}}
    states:
      rating:
        say: "Rate us 1-5"
        on: [{text: {number: {min: 1, max: 5}}, set: {rating: "{{ text }}"}, goto: comment}]
        wait: {timeout: 1h, goto: bye}
      comment:
        say: "Any comment?"
        on: [{otherwise: true, goto: bye}]
        wait: {timeout: 1h, goto: bye}
      bye: {say: "Thanks", end: true, outcome: done}
"""


@pytest.mark.parametrize("store", ["sqlite", "redis"])
async def test_a_contacts_conversation_is_shown_from_the_store(
    make_client: Any,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
    store: str,
) -> None:
    overrides = store_overrides(store, request)
    url = overrides.get("store", f"sqlite:///{tmp_path / 'responder.db'}")
    client = await make_client(write_rules(tmp_path / "r", RULES), **overrides)
    for n, text in enumerate(["join", "4"]):
        data = {"event": "mo_sms", "sms": f"M{n}", "phone": ALICE, "text": text}
        assert (await client.post("/webhooks/textit", data=data)).status == 200

    assert await asyncio.to_thread(main, ["conversations", ALICE, "--store", url, "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    record = json.loads(line)
    assert (record["dialogue"], record["state"], record["status"]) == (
        "survey",
        "comment",
        "active",
    )
    assert record["vars"] == {"rating": "4"}
    assert record["step"] == 2
    assert record["timer"] is not None

    assert await asyncio.to_thread(main, ["conversations", ALICE, "--store", url]) == 0
    text = capsys.readouterr().out
    assert "survey at comment  active" in text
    assert 'vars {"rating": "4"}' in text
    assert "timer due " in text

    assert await asyncio.to_thread(main, ["conversations", "+6500000000", "--store", url]) == 1
    assert capsys.readouterr().out == "no conversations for +6500000000\n"


def test_a_store_that_is_not_there_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = f"sqlite:///{tmp_path / 'typo.db'}"
    assert main(["conversations", ALICE, "--store", missing]) == 2
    assert "there is no SQLite store" in capsys.readouterr().err
