"""Start-up problems told plainly: which setting, what to do; no traceback for a user mistake."""

from __future__ import annotations

import errno
import signal
import socket
import subprocess
import sys
import time

import pytest

from responder.rules.loader import load_rules
from responder.web.startup import listen_problem, public_url_warning, where
from tests.conftest import REPO


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (OSError(errno.EADDRINUSE, "in use"), "the port is already in use"),
        (OSError(errno.EACCES, "denied"), "ports below 1024 need privileges"),
        (OSError(errno.EADDRNOTAVAIL, "nope"), "not an address of this machine"),
        (socket.gaierror(-2, "Name or service not known"), "not a known host name"),
        (OSError(errno.EMFILE, "Too many open files"), "Too many open files"),
    ],
)
def test_listen_problems_say_what_to_do(exc: OSError, expected: str) -> None:
    assert expected in listen_problem("10.9.9.9", 8080, exc)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:///responder.db", "sqlite:///responder.db"),
        ("sqlite:////var/lib/r.db", "sqlite:////var/lib/r.db"),
        ("memory://", "memory://"),
        ("redis://:s3cret@cache:6379/0?prefix=a", "redis://cache:6379/0"),
        ("rediss://user:s3cret@cache/2", "rediss://cache/2"),
    ],
)
def test_store_urls_in_logs_hold_no_password(url: str, shown: str) -> None:
    assert where(url) == shown


def test_public_url_warning_only_for_ivr_dialogues_without_one() -> None:
    rules = load_rules([REPO / "examples" / "ivr-menu"])
    warning = public_url_warning(None, rules)
    assert warning is not None
    assert "IVR dialogues ('main-menu')" in warning
    assert "RESPONDER_PUBLIC_URL" in warning
    assert public_url_warning("https://x.test", rules) is None
    assert public_url_warning(None, load_rules([REPO / "rules"])) is None


def test_a_reader_that_goes_away_gets_no_traceback() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "responder", "schema"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.readline()  # like `responder schema | head -1`
        proc.stdout.close()
        err = proc.stderr.read().decode()
        proc.wait(timeout=60)
    assert "Traceback" not in err
    assert "BrokenPipeError" not in err


def test_ctrl_c_is_not_a_traceback() -> None:
    # `explain` reads its log from standard input: it waits there until interrupted.
    with subprocess.Popen(
        [sys.executable, "-m", "responder", "explain", "--contact", "+6591234567"],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        time.sleep(3)  # past the interpreter's start-up, into the command
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in err
    assert "responder: interrupted" in err
