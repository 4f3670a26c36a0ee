"""The retention the purge applies keeps hits as long as any window that counts them."""

from __future__ import annotations

from pathlib import Path

from responder.retention import DAY, Retention
from responder.rules.loader import load_rules
from responder.web.server import purge_retention
from tests.conftest import write_rules


def test_hits_outlive_the_longest_limit_and_the_compliance_windows(tmp_path: Path) -> None:
    rules = load_rules(
        [
            write_rules(
                tmp_path / "rules",
                """
                compliance:
                  cap: {per_contact: 5, every: 2d}
                rules:
                  - name: quarterly
                    on: sms.received
                    limit: {per_contact: 1, every: 90d}
                    reply: {text: "hi"}
                """,
            )
        ]
    )
    # A limit of 90 days counted only 31 days of hits before.
    assert purge_retention(Retention(), rules).hits == 90 * DAY
    short = load_rules([write_rules(tmp_path / "short", "rules: []\n")])
    # The default loop guard counts replies within 60 s.
    assert purge_retention(Retention(hits=10.0), short).hits == 60.0
    assert purge_retention(Retention(), short).hits == 31 * DAY
