"""``responder replay``: recorded webhooks against the old and a candidate rule set, with no
side effects; differences in replies and calls per event, a summary and exit codes."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from responder.cli import main
from responder.rules.loader import load_rules
from responder.testing.fakes import FakeProvider
from responder.tools.replay import World, compare
from responder.web.recording import Record
from tests.conftest import REPO, wait_for, write_rules

OLD = """
rules:
  - name: hours
    on: sms.received
    when: {text: {keyword: hours}}
    reply: {text: "We are open 9-18."}
  - name: missed
    on: call.missed
    reply: {text: "Sorry we missed you."}
    sms: {text: "missed call from {{ contact }}", to: "+6500000000", via: hoiio}
"""
NEW = OLD.replace("9-18", "9-20").replace(
    'sms: {text: "missed call from {{ contact }}", to: "+6500000000", via: hoiio}', ""
)
T0 = 1_764_000_000.0  # 2025-11-24 16:00 UTC


def form(**data: str) -> bytes:
    return urlencode(data).encode()


def textit(n: int, at: float, **data: str) -> Record:
    phone = data.pop("phone", "+6591234567")
    body = form(event=data.pop("event", "mo_sms"), sms=str(n), phone=phone, **data)
    return Record(at, "textit", "textit", (), body, "application/x-www-form-urlencoded")


def write_log(path: Path, records: list[Record]) -> Path:
    path.write_text("".join(r.to_json() + "\n" for r in records))
    return path


async def test_recorded_traffic_replayed_shows_what_the_new_rules_change_and_sends_nothing(
    make_client: Any,
    tmp_path: Path,
    fake_hoiio: FakeProvider,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old, new = write_rules(tmp_path / "old", OLD), write_rules(tmp_path / "new", NEW)
    log = tmp_path / "webhooks.jsonl"
    client = await make_client(old, record=str(log))
    posts = [
        {"event": "mo_sms", "sms": "1", "phone": "+6591234567", "text": "hours?"},
        {"event": "mo_sms", "sms": "1", "phone": "+6591234567", "text": "hours?"},  # a retry
        {"event": "mo_sms", "sms": "2", "phone": "+6591234567", "text": "thanks"},
        {"event": "mo_miss", "call": "3", "phone": "+6598765432"},
    ]
    for data in posts:
        assert (await client.post("/webhooks/textit", data=data)).status == 200
    await wait_for(lambda: len(fake_hoiio.calls("/sms/send")) == 1)
    await client.close()
    sent = len(fake_hoiio.requests)

    assert (
        await asyncio.to_thread(main, ["replay", str(log), "--rules", str(new), "--old", str(old)])
        == 1
    )
    out = capsys.readouterr().out
    assert len(fake_hoiio.requests) == sent  # replaying sent nothing
    lines = out.splitlines()
    assert lines[0].startswith("#1 ")
    assert 'textit sms.received from +6591234567 "hours?"' in lines[0]
    assert lines[2] == '  reply - {"phone":["+6591234567"],"text":"We are open 9-18."}'
    assert lines[3] == '        + {"phone":["+6591234567"],"text":"We are open 9-20."}'
    # The retried delivery (#2) answers like the first in both; #3 matched nothing in both.
    assert "#2 " in out  # its stored answer differs too, as the first delivery's did
    assert "#3 " not in out
    assert "#4 " in out
    assert (
        '  call  - hoiio sms/send {"dest": "+6500000000", "msg": "missed call from +6598765432"}'
        in lines
    )
    assert lines[-1] == (
        f"4 event(s) replayed against {old} (-) and {new} (+): 3 differ "
        "(2 in their reply, 1 in their outbound calls)"
    )

    assert (
        await asyncio.to_thread(main, ["replay", str(log), "--rules", str(old), "--old", str(old)])
        == 0
    )
    assert capsys.readouterr().out.endswith(
        "4 event(s) replayed against "
        f"{old} (-) and {old} (+): 0 differ (0 in their reply, 0 in their outbound calls)\n"
    )


async def test_the_clock_follows_the_records_so_timers_fire_between_them(tmp_path: Path) -> None:
    old = load_rules([REPO / "examples" / "sms-survey"])
    changed = tmp_path / "survey"
    shutil.copytree(REPO / "examples" / "sms-survey", changed)
    path = changed / "rules.yaml"
    path.write_text(path.read_text().replace("Reminder: how would", "Just checking: how would"))
    new = load_rules([changed])
    records = [
        textit(1, T0, text="JOIN"),
        textit(2, T0 + 30 * 60, text="hello", phone="+6590000001"),  # before the reminder
        textit(3, T0 + 90 * 60, text="hello", phone="+6590000002"),  # after it
    ]
    report = await compare(records, old, old)
    assert report.differences == []
    report = await compare(records, old, new)
    (difference,) = report.differences
    assert difference.index == 3
    assert difference.reply_differs is False
    assert [c for c in difference.old.calls if "Reminder: how would" in c]
    assert [c for c in difference.new.calls if "Just checking: how would" in c]


async def test_an_ivr_call_is_followed_through_its_recorded_app_state(tmp_path: Path) -> None:
    old = load_rules([REPO / "examples" / "ivr-menu"])
    changed = tmp_path / "ivr"
    shutil.copytree(REPO / "examples" / "ivr-menu", changed)
    path = changed / "rules.yaml"
    path.write_text(path.read_text().replace("Connecting you to sales.", "Hold on."))
    new = load_rules([changed])
    common = {"session": "S-1", "txn_ref": "AA-1", "from": "+6591234567", "to": "+6531234567"}
    answer = Record(T0, "hoiio", "hoiio", (), form(ivr_block="answer", **common), "")
    pressed = Record(
        T0 + 5,
        "hoiio",
        "hoiio",
        (("app_state", "main-menu:menu:1"), ("sig", "***")),
        form(ivr_block="gather", digits="1", **common),
        "",
    )
    report = await compare([answer, pressed], old, new)
    (difference,) = report.differences
    assert difference.index == 2
    assert "keys 1" in difference.summary
    (old_call,) = difference.old.calls
    (new_call,) = difference.new.calls
    assert "ivr/end/transfer" in old_call
    assert '"msg": "Connecting you to sales."' in old_call
    assert '"msg": "Hold on."' in new_call


def test_broken_rules_and_unreadable_recordings_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_rules(tmp_path / "good", OLD)
    broken = write_rules(tmp_path / "broken", "rules: [{name: x, on: sms.recieved}]")
    log = write_log(tmp_path / "w.jsonl", [textit(1, T0, text="hours")])
    assert main(["replay", str(log), "--rules", str(broken), "--old", str(good)]) == 2
    err = capsys.readouterr().err
    assert "unknown event kind 'sms.recieved'" in err
    assert "cannot replay against broken rules" in err
    assert (
        main(["replay", str(tmp_path / "missing.jsonl"), "--rules", str(good), "--old", str(good)])
        == 2
    )
    assert "cannot read" in capsys.readouterr().err
    junk = tmp_path / "junk.jsonl"
    junk.write_text("not json\n{}\n")
    assert main(["replay", str(junk), "--rules", str(good), "--old", str(good)]) == 2
    err = capsys.readouterr().err
    assert f"skipped {junk}:1:" in err
    assert "no webhook records" in err


def test_bad_lines_are_skipped_and_the_rest_replayed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_rules(tmp_path / "good", OLD)
    log = tmp_path / "w.jsonl"
    log.write_text("garbage\n" + textit(1, T0, text="hours").to_json() + "\n")
    assert main(["replay", str(log), "--rules", str(good), "--old", str(good)]) == 0
    captured = capsys.readouterr()
    assert f"skipped {log}:1: not JSON (Expecting value at column 1)" in captured.err
    assert "1 event(s) replayed" in captured.out


def test_the_old_rules_default_to_the_current_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = write_rules(tmp_path / "old", OLD), write_rules(tmp_path / "new", NEW)
    log = write_log(tmp_path / "w.jsonl", [textit(1, T0, text="hours")])
    monkeypatch.setenv("RESPONDER_RULES", str(old))
    assert main(["replay", str(log), "--rules", str(new)]) == 1
    assert f"against {old} (-) and {new} (+)" in capsys.readouterr().out


async def test_requests_that_fail_to_parse_are_answered_as_the_server_would(
    tmp_path: Path,
) -> None:
    rules = load_rules([write_rules(tmp_path / "r", OLD)])
    world = World(rules, "hoiio")
    await world.store.open()
    bad = Record(T0, "textit", "textit", (), b"[1]", "application/json")
    effects = await world.play(bad)
    assert (effects.status, effects.calls) == (400, ())
    assert effects.note == "bad request: JSON body must be an object"
    forged = Record(T0, "hoiio", "hoiio", (("app_state", "x:y"), ("sig", "***")), b"", "")
    assert (await world.play(forged)).status == 403
    report = await compare([bad, forged], rules, rules)
    assert (report.events, report.differences) == (2, [])


async def test_a_flow_webhook_recorded_from_a_get_is_replayed_as_a_get(
    make_client: Any, tmp_path: Path
) -> None:
    rules = """
rules:
  - name: order
    on: flow.step
    reply: {json: {status: "OLD"}}
"""
    old = write_rules(tmp_path / "old", rules)
    new = write_rules(tmp_path / "new", rules.replace("OLD", "NEW"))
    log = tmp_path / "webhooks.jsonl"
    client = await make_client(old, record=str(log))
    query = {"contact": "5d76d86b-3bb9-4d5a-b822-c9d86f5d8e4f", "run": "r-1", "text": "CU001"}
    assert (await client.get("/webhooks/textit", params=query)).status == 200
    await client.close()
    (record,) = (Record.from_json(line) for line in log.read_text().splitlines())
    assert record.method == "GET"
    report = await compare([record], load_rules([old]), load_rules([new]))
    (difference,) = report.differences
    assert "flow.step" in difference.summary
    assert '"OLD"' in difference.old.reply
    assert '"NEW"' in difference.new.reply


def test_a_post_record_is_written_as_before() -> None:
    # Records of POSTs (every webhook but TextIt's GET flow calls) carry no method field.
    line = Record(T0, "textit", "textit", (), b"a=1", "application/x-www-form-urlencoded").to_json()
    assert "method" not in json.loads(line)
    assert Record.from_json(line).method == "POST"
