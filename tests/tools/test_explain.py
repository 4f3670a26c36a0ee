"""``responder explain`` over the JSON logs of a real server: a contact's story, one trace by
id, masked logs, and clear answers when there is nothing to tell."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from responder.cli import main
from responder.web.logs import JsonFormatter, TraceFilter
from tests.conftest import REPO, write_rules

RULES = """
rules:
  - name: hours
    on: sms.received
    when: {text: {keyword: hours}}
    limit: {per_contact: 1, every: 1h}
    reply: {text: "We are open 9-18."}
    sms: {text: "asked about hours", to: "+6500000000", via: hoiio}
  - name: fragile
    on: sms.received
    when: {text: {keyword: fragile}}
    reply: {text: "{{ event.missing }}"}
  - name: fallback
    on: sms.received
    reply: {text: "Sorry, I did not understand."}
"""
ALICE = "+6591234567"


@pytest.fixture
def json_log(tmp_path: Path) -> Iterator[Path]:
    """What ``responder serve --log-format json`` writes, captured to a file."""
    path = tmp_path / "responder.log"
    handler = logging.FileHandler(path)
    handler.addFilter(TraceFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield path
    root.removeHandler(handler)
    root.setLevel(level)
    handler.close()


async def sms(client: Any, n: int, text: str, contact: str = ALICE) -> str:
    data = {"event": "mo_sms", "sms": str(n), "phone": contact, "text": text}
    resp = await client.post("/webhooks/textit", data=data)
    assert resp.status == 200
    return str(resp.headers["X-Trace-Id"])


async def explain(*args: str) -> int:
    return await asyncio.to_thread(main, ["explain", *args])


async def test_a_contacts_story_tells_what_matched_what_was_answered_and_sent(
    make_client: Any, tmp_path: Path, json_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await make_client(write_rules(tmp_path / "r", RULES))
    first = await sms(client, 1, "hours?")
    await sms(client, 2, "hours?")  # limited: the fallback answers
    await sms(client, 2, "hours?")  # a retried delivery
    await sms(client, 3, "fragile")
    await sms(client, 4, "hello", "+6500000009")  # someone else
    assert await explain("--log", str(json_log), "--contact", ALICE) == 0
    out = capsys.readouterr().out
    stories = out.split("  trace ")[1:]
    assert len(stories) == 4
    assert stories[0].startswith(first)
    assert 'textit sms.received (mo_sms) from +6591234567: "hours?"' in stories[0]
    assert "rule 'hours' matched" in stories[0]
    assert 'replied: "We are open 9-18."' in stories[0]
    assert (
        'queued: hoiio sms/send {"dest": "+6500000000", "msg": "asked about hours"} (rule hours)'
        in stories[0]
    )
    assert "rule 'hours' matched but had reached its limit for this contact" in stories[1]
    assert "rule 'fallback' matched" in stories[1]
    assert "a retried delivery" in stories[2]
    assert "error: rule 'fragile'" in stories[3]
    assert "log: ERROR responder.engine: rule 'fragile': template failed" in stories[3]
    assert "+6500000009" not in out

    assert await explain("--log", str(json_log), "--trace", first) == 0
    only = capsys.readouterr().out
    assert only.count("  trace ") == 1
    assert "rule 'hours' matched" in only

    assert await explain("--log", str(json_log), "--contact", ALICE, "--last", "1") == 0
    last = capsys.readouterr().out
    assert last.startswith("(the last 1 of 4 traces; --last 0 for all)")
    assert "fragile" in last


async def test_dialogue_steps_are_told_as_transitions(
    make_client: Any, json_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await make_client(REPO / "examples" / "sms-survey")
    await sms(client, 1, "JOIN")
    await sms(client, 2, "5")
    assert await explain("--log", str(json_log), "--contact", ALICE) == 0
    out = capsys.readouterr().out
    assert "dialogue 'survey': started in state 'rating'" in out
    assert "dialogue 'survey': 'rating' -> 'recommend'" in out
    assert 'replied: "Would you recommend us to a friend? Reply YES or NO."' in out


async def test_masked_logs_are_found_by_the_full_number(
    make_client: Any, tmp_path: Path, json_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = await make_client(write_rules(tmp_path / "r", RULES), log_contacts="masked")
    await sms(client, 1, "hours")
    assert ALICE not in await asyncio.to_thread(json_log.read_text)
    assert await explain("--log", str(json_log), "--contact", ALICE) == 0
    assert "from +65*****567" in capsys.readouterr().out


def test_nothing_found_text_logs_and_missing_files_get_clear_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text_log = tmp_path / "text.log"
    text_log.write_text("2026-11-25 10:00:00 INFO responder: serving rules\n")
    assert main(["explain", "--log", str(text_log), "--contact", ALICE]) == 2
    assert "RESPONDER_LOG_FORMAT=json" in capsys.readouterr().out
    json_log = tmp_path / "json.log"
    json_log.write_text('{"message": "serving", "level": "INFO"}\n')
    assert main(["explain", "--log", str(json_log), "--contact", ALICE]) == 1
    assert capsys.readouterr().out == f"no webhook traces for contact {ALICE}\n"
    assert main(["explain", "--log", str(tmp_path / "nope.log"), "--trace", "abc"]) == 2
    assert "cannot read" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["explain", "--log", str(json_log)])  # --contact or --trace is required
