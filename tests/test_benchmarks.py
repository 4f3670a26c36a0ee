"""Every benchmark starts with its documented command (figures in benchmarks/README.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
# Run by the others, not on their own.
HELPERS = {
    "http_setup.py",
    "http_load.py",
    "http_floor.py",
    "handler_request.py",
    "open_loop.py",
}


def test_the_helpers_are_what_they_say() -> None:
    for name in HELPERS:
        assert "argparse" not in (BENCHMARKS / name).read_text()


@pytest.mark.parametrize(
    "script", sorted(p.name for p in BENCHMARKS.glob("*.py") if p.name not in HELPERS)
)
def test_a_benchmark_starts_from_its_directory(script: str) -> None:
    # As documented: ``python benchmarks/NAME.py``, which puts benchmarks/ first on the path.
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=BENCHMARKS.parent,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout
