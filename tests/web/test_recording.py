"""Recording webhooks to JSON lines: what a line holds, secrets redacted, rotation, reading back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from responder.web.recording import Record, Recorder, read_records, redact_body, worker_path
from tests.conftest import write_rules

RULES = """
rules:
  - name: hi
    on: sms.received
    reply: {text: "hi"}
"""


async def test_the_server_records_each_webhook_with_secrets_redacted(
    make_client: Any, tmp_path: Path
) -> None:
    path = tmp_path / "rec" / "webhooks.jsonl"
    client = await make_client(
        write_rules(tmp_path / "r", RULES), record=str(path), webhook_secret="wh-secret-5"
    )
    form = "event=mo_sms&sms=1&phone=%2B6591234567&text=caf%C3%A9&password=form-secret-2"
    resp = await client.post(
        "/webhooks/textit?secret=wh-secret-5&relayer=3",
        data=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status == 200
    trace_id = resp.headers["X-Trace-Id"]
    # Recorded as received, before it is judged (this one's app_state is refused).
    resp = await client.post(
        "/webhooks/hoiio?app_state=menu%3Aa%3A1&sig=abcdef&secret=wh-secret-5",
        data=b"msg=\xe9t\xe9&from=%2B6591234567",
        headers={"Content-Type": "application/octet-stream"},
    )
    assert resp.status == 403
    # Refused requests are not recorded.
    assert (await client.post("/webhooks/textit", data={"event": "mo_sms"})).status == 401
    text = path.read_text()
    for secret in ("wh-secret-5", "form-secret-2", "abcdef"):
        assert secret not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["channel"] == "textit"
    assert first["provider"] == "textit"
    assert first["query"] == [["secret", "***"], ["relayer", "3"]]
    assert "password=%2A%2A%2A" in first["body"]
    assert "text=caf%C3%A9" in first["body"]
    assert first["trace_id"] == trace_id
    assert second["query"] == [["app_state", "menu:a:1"], ["sig", "***"], ["secret", "***"]]
    assert "body" not in second
    record = Record.from_json(text.splitlines()[1])
    assert record.body == b"msg=\xe9t\xe9&from=%2B6591234567"
    assert record.content_type == "application/octet-stream"


def test_a_body_without_secrets_is_kept_byte_for_byte() -> None:
    body = b"event=mo_sms&text=a+b%20c&x=%zz"
    assert redact_body(body, "application/x-www-form-urlencoded") is body
    doc = b'{"contact": {"urn": "tel:+1"}, "token": "t-1"}'
    assert json.loads(redact_body(doc, "application/json")) == {
        "contact": {"urn": "tel:+1"},
        "token": "***",
    }
    assert redact_body(b"{not json", "application/json") == b"{not json"


def _record(n: int) -> Record:
    return Record(float(n), "textit", "textit", (("n", str(n)),), b"x" * 100)


def test_the_file_rotates_before_it_grows_past_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    recorder = Recorder(path, max_bytes=4096, keep=2)
    recorder.open()
    for n in range(200):
        recorder.write(_record(n))
    recorder.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["w.jsonl", "w.jsonl.1", "w.jsonl.2"]
    assert all(p.stat().st_size <= 4096 for p in tmp_path.iterdir())
    records, problems = read_records(
        [path.with_name("w.jsonl.2"), path.with_name("w.jsonl.1"), path]
    )
    assert problems == []
    times = [r.time for r in records]
    assert times == sorted(times)
    assert times[-1] == 199.0
    # The oldest ones were dropped: only keep + 1 files' worth remain.
    assert times[0] > 0


def test_keep_zero_starts_the_file_afresh(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    recorder = Recorder(path, max_bytes=4096, keep=0)
    for n in range(100):
        recorder.write(_record(n))
    recorder.close()
    assert [p.name for p in tmp_path.iterdir()] == ["w.jsonl"]
    assert path.stat().st_size <= 4096


def test_a_recorder_that_cannot_write_logs_and_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "file").write_text("")
    recorder = Recorder(tmp_path / "file" / "w.jsonl", max_bytes=4096, keep=1)
    recorder.write(_record(1))
    assert "cannot record webhook" in caplog.text


def test_reading_reports_bad_lines_with_their_place(tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    path.write_text(
        _record(2).to_json() + '\n\n[1]\n{"time": 1}\nnot json\n' + _record(1).to_json() + "\n"
    )
    records, problems = read_records([path])
    assert [r.time for r in records] == [1.0, 2.0]
    assert [p.split(": ")[0] for p in problems] == [f"{path}:3", f"{path}:4", f"{path}:5"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/var/log/webhooks.jsonl", "/var/log/webhooks.worker2.jsonl"),
        ("webhooks", "webhooks.worker2"),
        ("logs/in.coming.log", "logs/in.coming.worker2.log"),
    ],
)
def test_each_worker_records_to_a_file_of_its_own(path: str, expected: str) -> None:
    assert worker_path(path, 2) == expected
