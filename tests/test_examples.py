"""Every example in examples/ driven over HTTP against fake provider APIs."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import REPO, SUMMARY, wait_for

EXAMPLES = REPO / "examples"
NOT_RULES = {"deploy"}  # examples/deploy: nginx and a run script for several replicas


def rule_sets() -> list[Path]:
    return sorted(p for p in EXAMPLES.iterdir() if p.is_dir() and p.name not in NOT_RULES)


def _clock(hour_sgt: int) -> float:
    # A Wednesday, at the given hour in Singapore (UTC+8).
    return datetime(2026, 11, 25, (hour_sgt - 8) % 24, 30, tzinfo=UTC).timestamp()


async def test_missed_call_textit(make_client) -> None:
    client = await make_client(EXAMPLES / "missed-call")
    form = {
        "event": "mo_miss",
        "call": "1",
        "relayer": "5",
        "phone": "+250788123123",
        "contact_name": "Joe Blow",
        "duration": "0",
    }
    resp = await client.post("/webhooks/textit", data=form)
    assert await resp.json() == {
        "phone": ["+250788123123"],
        "text": "Sorry we missed your call, Joe Blow. We'll call you back within the hour.",
        "channel": 5,
    }
    # The same caller again (a new call id) within 6 hours: nothing.
    resp = await client.post("/webhooks/textit", data={**form, "call": "2"})
    assert resp.status == 200
    assert await resp.read() == b""
    # Staff numbers never get a reply.
    resp = await client.post("/webhooks/textit", data={**form, "call": "3", "phone": "+6590000000"})
    assert await resp.read() == b""


async def test_missed_call_hoiio(make_client, fake_hoiio) -> None:
    client = await make_client(EXAMPLES / "missed-call")
    query = "ivr_block=answer&session=S-1&txn_ref=AA-I-1&from=%2B6591234567&to=%2B6531234567"
    assert (await client.post(f"/webhooks/hoiio?{query}")).status == 200
    await wait_for(lambda: len(fake_hoiio.requests) == 2)
    assert [r.path for r in fake_hoiio.requests] == ["/open/ivr/end/hangup", "/open/sms/send"]
    assert fake_hoiio.requests[1].params["msg"].startswith("Sorry we missed your call")
    # Calling again an hour later: hung up, no second SMS.
    query2 = query.replace("S-1", "S-2").replace("AA-I-1", "AA-I-2")
    assert (
        await client.post(
            "/webhooks/hoiio",
            data=dict(p.split("=") for p in query2.replace("%2B", "+").split("&")),
        )
    ).status == 200
    await wait_for(lambda: len(fake_hoiio.requests) == 3)
    assert fake_hoiio.requests[2].path == "/open/ivr/end/hangup"
    assert fake_hoiio.requests[2].params["session"] == "S-2"


async def test_keyword_autoresponder(make_client, fake_http, tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(EXAMPLES / "keyword-autoresponder", rules)
    path = rules / "rules.yaml"
    path.write_text(path.read_text().replace("https://orders.example.com", fake_http.url))
    client = await make_client(rules, clock=lambda: _clock(11))

    async def say(text: str, sms_id: str) -> dict[str, object] | None:
        resp = await client.post(
            "/webhooks/textit",
            data={
                "event": "mo_sms",
                "sms": sms_id,
                "relayer": "1",
                "phone": "+15551230000",
                "text": text,
            },
        )
        body = await resp.read()
        return json.loads(body) if body else None

    assert (await say("Hours?", "1"))["text"].startswith("We are open Mon-Fri")
    reply = await say("where is my order #123456 please", "2")
    assert reply["text"] == "Thanks! We are looking up order 123456 and will text you back."
    await wait_for(lambda: len(fake_http.requests) == 1)
    assert fake_http.requests[0].json == {"order": "123456", "contact": "+15551230000"}
    assert (await say("hello", "3"))["text"].startswith("Text HOURS")

    night = await make_client(rules, clock=lambda: _clock(23), store="memory://")
    resp = await night.post(
        "/webhooks/textit",
        data={"event": "mo_sms", "sms": "9", "phone": "+15551230000", "text": "hello"},
    )
    assert (await resp.json())["text"].startswith("We're closed right now")


async def test_flow_order_status_legacy_form(make_client) -> None:
    client = await make_client(EXAMPLES / "flow-order-status")
    values = [
        {
            "label": "Order Number",
            "category": {"base": "All Responses"},
            "value": "CU001",
            "text": "CU001",
        },
        {
            "label": "Shipping",
            "category": {"base": "Express"},
            "value": "express",
            "text": "express please",
        },
    ]
    resp = await client.post(
        "/webhooks/textit",
        data={
            "run": "1234",
            "flow": "12",
            "flow_name": "Order Status",
            "step": "node-1",
            "phone": "+250788382382",
            "relayer": "-1",
            "values": json.dumps(values),
        },
    )
    assert await resp.json() == {"status": "Shipped", "order": "CU001", "eta": "tomorrow"}


async def test_flow_order_status_json_webhook(make_client) -> None:
    client = await make_client(EXAMPLES / "flow-order-status")
    body = {
        "contact": {
            "uuid": "5d76d86b-3bb9-4d5a-b822-c9d86f5d8e4f",
            "name": "Ryan Lewis",
            "urn": "tel:+12024561111",
        },
        "flow": {"uuid": "50c3706e-fedb-42c0-8eab-dda3335714b7", "name": "Order Status"},
        "results": {
            "order_number": {"value": "CU002", "category": "All Responses"},
            "shipping": {"value": "standard", "category": "Standard"},
        },
    }
    resp = await client.post("/webhooks/textit", json=body)
    assert await resp.json() == {"status": "Processing", "order": "CU002", "eta": "in 3-5 days"}
    body["results"] = {"order_number": {"value": "nope", "category": "Other"}}
    resp = await client.post("/webhooks/textit", json=body)
    assert await resp.json() == {"status": "Unknown", "order": "nope"}


def test_every_example_is_valid_and_driven_by_a_test() -> None:
    from responder.rules.loader import load_rules

    tests = "".join(p.read_text() for p in (REPO / "tests").rglob("test_*.py"))
    for example in rule_sets():
        load_rules([example])
        assert f'"{example.name}"' in tests, f"no test drives examples/{example.name}"


def test_every_example_ships_transcripts_that_pass(pytestconfig: pytest.Config) -> None:
    """CI runs the transcripts: `responder test examples/ rules/` passes and prints coverage."""
    import re
    import subprocess
    import sys

    examples = [p.name for p in rule_sets()]
    for name in examples:
        assert list((EXAMPLES / name).glob("*.test.yaml")), f"{name} has no transcript"
    assert (REPO / "rules" / "default.test.yaml").is_file()
    result = subprocess.run(
        [sys.executable, "-m", "responder", "test", "examples/", "rules/"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"total: \d+ passed, 0 failed", lines[-2]), lines[-2]
    counts = re.fullmatch(
        r"total coverage: rules (\d+)/(\d+) \(100%\), states (\d+)/(\d+) \(100%\), "
        r"transitions (\d+)/(\d+) \(\d+%\)",
        lines[-1],
    )
    assert counts, lines[-1]
    assert int(counts[2]) > 0
    assert int(counts[4]) > 0
    assert int(counts[6]) > 0
    assert sum(line.endswith(".test.yaml") for line in lines) == len(examples) + 1
    pytestconfig.stash[SUMMARY] = ["responder test examples/ rules/", *lines[-2:]]
