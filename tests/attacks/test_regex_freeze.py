"""A rule regex must not freeze the server. ``check`` refuses the patterns that backtrack
catastrophically, naming the file and line; and should the checker ever miss one, a search
still takes at most its budget, so the webhooks of other contacts are answered meanwhile.

The second test stands in for such a miss: it loads the pathological patterns with the
checker switched off and sends texts made to hurt them while others post normal webhooks."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from responder.cli import main
from responder.matching.bounded import REGEX_BUDGET
from responder.rules import spec
from tests.attacks.support import ms, percentile, pick
from tests.conftest import write_rules
from tests.matching.test_bounded import HOSTILE, PATHOLOGICAL, hostile

ROUNDS = pick(10, 60)


def rules_with(patterns: list[str]) -> str:
    out = ["rules:"]
    for n, pattern in enumerate(patterns):
        escaped = pattern.replace("\\", "\\\\")
        out += [
            f"  - name: trap{n}",
            "    on: sms.received",
            f'    when: {{text: {{regex: "{escaped}"}}}}',
            f'    reply: {{text: "trap {n}"}}',
        ]
    out += ["  - name: normal", "    on: sms.received", '    reply: {text: "ok"}']
    return "\n".join(out) + "\n"


def test_check_refuses_every_pathological_pattern(tmp_path: Path, capsys) -> None:
    rules = write_rules(tmp_path / "rules", rules_with(PATHOLOGICAL))
    assert main(["check", str(rules)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(PATHOLOGICAL)
    for n, line in enumerate(out):
        assert line.startswith(f"{rules / 'rules.yaml'}:{3 + 4 * n + 1}: rules[{n}].when.text")
        assert "refused" in line


@pytest.mark.parametrize("script", ["ascii", "non-ascii", "newline"])
async def test_hostile_texts_hold_nobody_back(
    make_client, tmp_path: Path, monkeypatch, script: str, record_figure
) -> None:
    monkeypatch.setattr(spec, "check_regex", lambda pattern, flags=0: None)  # a checker miss
    client = await make_client(write_rules(tmp_path / "rules", rules_with(PATHOLOGICAL)))
    prefix = "é" if script == "non-ascii" else ""
    suffix = "\n" if script == "newline" else ""
    counter = iter(range(10**6))

    async def post(text: str) -> float:
        n = next(counter)
        data = {"event": "mo_sms", "sms": f"R{n}", "phone": f"+659{n:07d}", "text": text}
        began = time.perf_counter()
        response = await client.post("/webhooks/textit", data=data)
        assert response.status == 200
        await response.read()
        return time.perf_counter() - began

    baseline = [await post("hello") for _ in range(20)]
    hostile_times: list[float] = []
    normal_times: list[float] = []
    for _ in range(ROUNDS):
        for pattern in HOSTILE:
            attack = asyncio.ensure_future(post(prefix + hostile(pattern, 30) + suffix))
            normal = await asyncio.gather(*(post("hello") for _ in range(3)))
            hostile_times.append(await attack)
            normal_times.extend(normal)
    worst = max(hostile_times)
    # RE2 answers for every one of these texts: microseconds, where re took minutes. (A text
    # RE2 cannot answer for goes to re, cut at REGEX_BUDGET per rule: tests/matching.)
    limit = 0.5
    assert worst < limit
    assert percentile(normal_times, 0.5) < limit
    record_figure(
        f"regex traps ({script} 30-char texts, {len(hostile_times)} of them, checker off): "
        f"hostile webhook p50/max {ms(percentile(hostile_times, 0.5))}/{ms(worst)}; other "
        f"webhooks meanwhile p50/p99 {ms(percentile(normal_times, 0.5))}/"
        f"{ms(percentile(normal_times, 0.99))} (alone: {ms(percentile(baseline, 0.5))})"
    )


async def test_a_trap_without_an_re2_translation_costs_its_budget(
    make_client, tmp_path: Path, monkeypatch, record_figure
) -> None:
    """The last line of defence: re, cut after REGEX_BUDGET. Other webhooks wait behind a
    hostile one at most that long."""
    monkeypatch.setattr(spec, "check_regex", lambda pattern, flags=0: None)
    client = await make_client(write_rules(tmp_path / "rules", rules_with([r"(a|a)*(?!b)$"])))
    counter = iter(range(10**6))

    async def post(text: str) -> float:
        n = next(counter)
        data = {"event": "mo_sms", "sms": f"B{n}", "phone": f"+659{n:07d}", "text": text}
        began = time.perf_counter()
        response = await client.post("/webhooks/textit", data=data)
        assert response.status == 200
        await response.read()
        return time.perf_counter() - began

    hostile_times: list[float] = []
    normal_times: list[float] = []
    for _ in range(ROUNDS):
        attack = asyncio.ensure_future(post("a" * 30 + "!"))
        normal_times.extend(await asyncio.gather(*(post("hello") for _ in range(3))))
        hostile_times.append(await attack)
    assert max(hostile_times) < REGEX_BUDGET + 0.5
    record_figure(
        f"regex trap with a lookahead (no RE2 translation; re cut at {ms(REGEX_BUDGET)}): "
        f"hostile webhook p50/max {ms(percentile(hostile_times, 0.5))}/{ms(max(hostile_times))}; "
        f"other webhooks meanwhile p50/p99 {ms(percentile(normal_times, 0.5))}/"
        f"{ms(percentile(normal_times, 0.99))}"
    )
