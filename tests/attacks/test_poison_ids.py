"""Identifiers are data: a webhook id carrying CR/LF, NUL or any other character neither breaks
the outbound request it ends up in nor holds back the contact's later replies."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from responder.testing.fakes import FakeProvider
from tests.conftest import wait_for, write_rules

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ALICE = "+6591234567"
RULES = """
rules:
  - name: ack
    on: sms.received
    sms: {text: "Got it: {{ text }}", via: hoiio}
"""
POISONED = ["P1\r\nX: y", "P1\nX-Injected: 1", "nul\x00id", "esc\x1b[31m", "é" * 300, "x" * 10_000]


def mo_sms(sms_id: str, text: str, phone: str = ALICE) -> dict[str, str]:
    return {"event": "mo_sms", "sms": sms_id, "phone": phone, "text": text, "time": "2026-12-06"}


@pytest.mark.parametrize("poisoned", POISONED, ids=range(len(POISONED)))
async def test_a_crafted_sms_id_neither_breaks_its_reply_nor_blocks_the_next_ones(
    make_client, tmp_path: Path, fake_hoiio: FakeProvider, poisoned: str, caplog
) -> None:
    client = await make_client(write_rules(tmp_path / "rules", RULES))
    caplog.set_level(logging.INFO)
    response = await client.post("/webhooks/textit", data=mo_sms(poisoned, "first"))
    assert response.status == 200
    for n in range(2, 5):
        response = await client.post("/webhooks/textit", data=mo_sms(f"P{n}", f"msg {n}"))
        assert response.status == 200
    await wait_for(lambda: len(fake_hoiio.calls("/sms/send")) == 4, what="4 replies sent")
    sent = fake_hoiio.calls("/sms/send")
    # In commit order, the crafted one first.
    assert [r.params["msg"] for r in sent] == ["Got it: first"] + [
        f"Got it: msg {n}" for n in range(2, 5)
    ]
    keys = [r.headers["Idempotency-Key"] for r in sent]
    assert all(key.isascii() and key.isprintable() and len(key) <= 200 for key in keys)
    assert len(set(keys)) == 4
    # The same crafted webhook again is the same event: answered from the store, nothing sent.
    response = await client.post("/webhooks/textit", data=mo_sms(poisoned, "first"))
    assert response.status == 200
    assert len(fake_hoiio.calls("/sms/send")) == 4
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_crafted_hoiio_txn_ref_is_sent_and_deduplicated(
    make_client, tmp_path: Path, fake_hoiio: FakeProvider
) -> None:
    client = await make_client(write_rules(tmp_path / "rules", RULES))
    sms = {"from": ALICE, "to": "+6560000000", "msg": "hi", "txn_ref": "T1\r\nX: y"}
    for _ in range(2):
        response = await client.post("/webhooks/hoiio", data=sms)
        assert response.status == 200
    await wait_for(lambda: len(fake_hoiio.calls("/sms/send")) == 1, what="the reply sent")
    response = await client.post("/webhooks/hoiio", data={**sms, "txn_ref": "T2", "msg": "again"})
    await wait_for(lambda: len(fake_hoiio.calls("/sms/send")) == 2, what="the next reply sent")
    assert [r.params["msg"] for r in fake_hoiio.calls("/sms/send")] == [
        "Got it: hi",
        "Got it: again",
    ]
