"""The package's layers and its freedom from import circles, checked by import-linter against
the contracts in pyproject.toml; and proof that the check fails when either is broken."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the ``responder`` package found under ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    code = "import sys; from importlinter.cli import lint_imports_command; lint_imports_command()"
    return subprocess.run(
        [sys.executable, "-c", code, str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_layers_and_no_circles_contracts_are_kept() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "added", "broken"),
    [
        # a lower layer importing from a higher one
        ("stores/base.py", "import responder.web.metrics", "Layers"),
        # a circle inside one layer: the guard taking the engine that calls it
        ("runtime/guard.py", "import responder.runtime.engine", "No import circles"),
    ],
)
def test_the_check_fails_when_an_import_breaks_a_contract(
    tmp_path: Path, module: str, added: str, broken: str
) -> None:
    copy = tmp_path / "responder"
    shutil.copytree(REPO / "responder", copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text() + f"\n{added}  # noqa\n")
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout
    assert f"{broken} BROKEN" in result.stdout
