from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.conftest import REPO, wait_for

# The default rules answer differently out of office hours: a Tuesday morning in Singapore.
OPEN = datetime(2026, 3, 10, 10, 0, tzinfo=ZoneInfo("Asia/Singapore")).timestamp()


async def test_default_rules_answer_a_missed_call(make_client, fake_hoiio) -> None:
    client = await make_client(REPO / "rules", clock=lambda: OPEN)
    resp = await client.post(
        "/webhooks/textit",
        data={"event": "mo_miss", "call": "7", "phone": "+250788123123", "relayer": "1"},
    )
    assert resp.status == 200
    assert await resp.json() == {
        "phone": ["+250788123123"],
        "text": "Sorry we missed your call. We will call you back as soon as we can.",
        "channel": 1,
    }
    resp = await client.post(
        "/webhooks/hoiio?ivr_block=answer&session=S-1&txn_ref=AA-1"
        "&from=%2B6591234567&to=%2B6531234567"
    )
    assert resp.status == 200
    await wait_for(lambda: len(fake_hoiio.requests) == 2)
    hangup, sms = fake_hoiio.requests
    assert hangup.path == "/open/ivr/end/hangup"
    assert hangup.params["session"] == "S-1"
    assert sms.path == "/open/sms/send"
    assert sms.params["dest"] == "+6591234567"
    assert sms.params["access_token"] == "token-secret-1"


async def test_healthz(make_client, tmp_path: Path) -> None:
    client = await make_client(REPO / "rules")
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"
