"""Secrets stay secret when outbound calls fail: with every secret set and DEBUG logs, in both
log formats, calls refused (401), failing (500) and timing out leave no secret in the logs,
in /metrics, in the recording or in ``responder outbox`` (text and ``--json``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest

from responder.testing.fakes import Behaviour, FakeProvider
from responder.web.auth import body_signature
from tests.attacks.support import Serve, clean_env, rows
from tests.conftest import REPO, wait_for, write_rules

SECRETS = {
    "RESPONDER_WEBHOOK_SECRET": "global-hook-secret-Q7x3",
    "RESPONDER_WEBHOOK_SECRET_TEXTIT": "textit-hook-secret-K2p9",
    "RESPONDER_WEBHOOK_SECRET_HOIIO": "hoiio-hook-secret-M4v8",
    "RESPONDER_STATE_KEY": "state-key-secret-0123456789-Z5n1",
    "RESPONDER_METRICS_TOKEN": "metrics-token-secret-W6c2",
    "HOIIO_ACCESS_TOKEN": "hoiio-access-token-secret-R8b4",
    "TEXTIT_API_TOKEN": "textit-api-token-secret-J3f7",
}
RULES = """
rules:
  - name: everything
    on: sms.received
    reply: {text: "hello"}
    sms:
      - {text: "via hoiio", via: hoiio}
      - {text: "via textit", via: textit}
    http: {url: "%s/hook", json: {text: "{{ text }}"}, timeout: 1s}
"""


def leaks(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_failed_calls_leave_no_secret_anywhere(
    tmp_path: Path, log_format: str, record_figure
) -> None:
    db = tmp_path / "responder.db"
    recording = tmp_path / "webhooks.jsonl"
    async with (
        FakeProvider("hoiio", behaviour=Behaviour(fail_next=10**6, fail_status=401)) as hoiio,
        FakeProvider("textit", behaviour=Behaviour(fail_next=10**6, fail_status=500)) as textit,
        FakeProvider("http", behaviour=Behaviour(delay=3.0)) as hook,
        aiohttp.ClientSession() as http,
    ):
        rules = write_rules(tmp_path / "rules", RULES % hook.url)
        (rules / "ivr.yaml").write_text((REPO / "examples/ivr-menu/rules.yaml").read_text())
        env = clean_env(
            **SECRETS,
            HOIIO_APP_ID="app-1",
            HOIIO_API_URL=hoiio.url,
            TEXTIT_API_URL=textit.url,
            HOIIO_VERIFY_SIGNATURE="true",
            RESPONDER_PUBLIC_URL="https://ivr.example.org",
            RESPONDER_RECORD=str(recording),
            RESPONDER_LOG_LEVEL="DEBUG",
            RESPONDER_LOG_FORMAT=log_format,
            RESPONDER_RETRY_BASE="0.05",
            RESPONDER_RETRY_MAX="0.1",
            RESPONDER_DELIVERY_MAX_ATTEMPTS="2",
        )
        server = await Serve(rules, f"sqlite:///{db}", env).start()
        try:
            password = SECRETS["RESPONDER_WEBHOOK_SECRET_TEXTIT"]
            textit_hook = f"{server.url}/webhooks/textit?password={password}"
            for n in range(3):
                form = {"event": "mo_sms", "sms": f"S{n}", "phone": f"+659000000{n}", "text": "hi"}
                async with http.post(textit_hook, data=form) as resp:
                    assert resp.status == 200
            body = urlencode(
                {
                    "ivr_block": "answer",
                    "session": "S-1",
                    "txn_ref": "AA-S-1",
                    "from": "+6591234567",
                }
            ).encode()
            signature = body_signature(SECRETS["HOIIO_ACCESS_TOKEN"], body)
            async with http.post(
                f"{server.url}/webhooks/hoiio?secret={SECRETS['RESPONDER_WEBHOOK_SECRET_HOIIO']}",
                data=body,
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Hoiio-Signature": signature,
                },
            ) as resp:
                assert resp.status == 200
            # 3 x (hoiio sms, textit sms, http hook) + 1 IVR block: all dead after two tries.
            await wait_for(
                lambda: rows(db, "SELECT COUNT(*) FROM outbox WHERE status = 'dead'") == [(10,)],
                30,
                "every call dead",
            )
            async with http.get(
                f"{server.url}/metrics",
                headers={"Authorization": f"Bearer {SECRETS['RESPONDER_METRICS_TOKEN']}"},
            ) as resp:
                assert resp.status == 200
                metrics = await resp.text()
        finally:
            assert await server.stop() == 0
    # The secrets did reach the providers (so their absence elsewhere means something).
    assert any(SECRETS["HOIIO_ACCESS_TOKEN"] in str(r.params) for r in hoiio.requests)
    assert any(
        SECRETS["TEXTIT_API_TOKEN"] in r.headers.get("Authorization", "") for r in textit.requests
    )
    assert any(
        SECRETS["RESPONDER_WEBHOOK_SECRET_HOIIO"] in r.params.get("notify_url", "")
        for r in hoiio.requests
    )
    outbox = {}
    for args in (["outbox"], ["outbox", "--json"], ["outbox", "--status", "dead", "--json"]):
        done = subprocess.run(  # noqa: ASYNC221 - the servers are stopped by now
            [sys.executable, "-m", "responder", *args, "--store", f"sqlite:///{db}"],
            capture_output=True,
            text=True,
            env=clean_env(),
            timeout=60,
            check=True,
        )
        outbox[" ".join(args)] = done.stdout + done.stderr
    logs = server.output()
    places = {
        "logs": logs,
        "metrics": metrics,
        "recording": recording.read_text(),
        **outbox,
    }
    found = {where: leaks(text) for where, text in places.items() if leaks(text)}
    assert found == {}
    # Each failure was logged (the 401 as Hoiio's missing status), without its secrets.
    assert "hoiio ivr/middle/gather: no status" in logs
    assert "textit broadcasts.json: HTTP 500" in logs
    assert "/hook: no answer within 1s" in logs
    record_figure(
        f"secrets ({log_format} logs at DEBUG, {len(SECRETS)} secrets set): "
        f"{len(logs.splitlines())} log lines, {len(metrics.splitlines())} metrics lines, "
        f"{len(places['recording'].splitlines())} recorded webhooks and the outbox listings "
        "after 10 calls died (401, 500, timeouts): 0 secrets found"
    )
