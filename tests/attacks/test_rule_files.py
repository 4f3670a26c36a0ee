"""Rule files with a byte YAML refuses (NUL, ESC, other control characters): every command
names the file and line, none prints a traceback, and a reload keeps the rules it has."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from responder.cli import main
from responder.web.server import reload_rules
from tests.conftest import REPO, write_rules

GOOD = """
rules:
  - name: hello
    on: sms.received
    reply: {text: "hello"}
"""
# (byte, what the problem line shows)
BYTES = [("\x00", "\\x00"), ("\x1b", "\\x1b"), ("\x07", "\\x07"), ("\x7f", "\\x7f")]


def poisoned(directory: Path, byte: str) -> Path:
    text = f'rules:\n  - name: hello\n    on: sms.received\n    reply: {{text: "a{byte}b"}}\n'
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "rules.yaml").write_text(text)
    return directory / "rules.yaml"


@pytest.mark.parametrize(("byte", "shown"), BYTES, ids=[b[1] for b in BYTES])
def test_check_names_the_file_and_line(tmp_path: Path, capsys, byte: str, shown: str) -> None:
    path = poisoned(tmp_path, byte)
    assert main(["check", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == (
        f"{path}:4: character '{shown}' is not allowed in YAML (write it as an escape inside "
        'a double-quoted string, e.g. "\\x1b")\n'
    )
    assert "Traceback" not in out + err
    assert byte not in out + err


def test_serve_refuses_to_start_with_a_file_line_error(tmp_path: Path) -> None:
    path = poisoned(tmp_path / "rules", "\x00")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "responder", "serve", "--rules", str(path.parent), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 1
    assert f"{path}:4: character '\\x00' is not allowed in YAML" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


async def test_a_reload_logs_the_problem_and_keeps_the_rules(
    make_client, tmp_path: Path, caplog
) -> None:
    rules = write_rules(tmp_path / "rules", GOOD)
    client = await make_client(rules)
    poisoned(rules, "\x1b")
    caplog.set_level(logging.INFO)
    assert reload_rules(client.server.app) is False
    problems = [r.getMessage() for r in caplog.records if "not allowed in YAML" in r.getMessage()]
    assert problems, caplog.text
    assert not [r for r in caplog.records if r.exc_info]
    response = await client.post(
        "/webhooks/textit",
        data={"event": "mo_sms", "sms": "1", "phone": "+6590000001", "text": "x"},
    )
    assert response.status == 200
    assert (await response.json())["text"] == "hello"
