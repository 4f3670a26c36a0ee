"""Hypothesis profiles for the fuzz tests, and a count of the cases each property ran.

``ci`` (the default) runs a small, derandomized sample so every CI run is the same and
quick; ``HYPOTHESIS_PROFILE=fuzz`` runs the full fuzz (see docs/security.md, Fuzzing).
No profile writes an example database into the repository.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

# One server per property serves all its examples: that is the point, not a mistake.
_SHARED = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]

CI_EXAMPLES = 150
FUZZ_EXAMPLES = 2000

settings.register_profile(
    "ci",
    max_examples=CI_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=_SHARED,
)
settings.register_profile(
    "fuzz",
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=_SHARED,
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)

CASES = pytest.StashKey[Counter[str]]()


@pytest.fixture
def count_case(request: pytest.FixtureRequest) -> Callable[[], None]:
    """Call once per example: the session summary reports the cases each property ran."""
    counter = request.config.stash.setdefault(CASES, Counter())
    name = request.node.nodeid.removeprefix("tests/fuzz/")

    def count() -> None:
        counter[name] += 1

    return count


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    counter = config.stash.get(CASES, Counter())
    if not counter:
        return
    terminalreporter.write_sep("-", f"fuzz cases (profile {PROFILE})")
    for name, n in sorted(counter.items()):
        terminalreporter.write_line(f"{n:>7,}  {name}")
    terminalreporter.write_line(f"{sum(counter.values()):>7,}  total")
