"""Growth under steady traffic: with short retention settings, the server's memory, its open
descriptors and the store's rows stop growing once the retention is reached; the purge keeps
each table at about what the retention allows. 25 s in the short profile, 5 minutes in the
long one (RESPONDER_ATTACKS=long)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from responder.testing.fakes import FakeProvider
from tests.attacks.support import (
    Serve,
    clean_env,
    count_rows,
    descriptors,
    pick,
    rss_mb,
    sms,
)
from tests.conftest import write_rules

DURATION = pick(25.0, 300.0)
RATE = 100  # webhooks a second, each from a new contact with a new conversation
RETAIN = 4.0  # seconds, for everything
RULES = """
compliance:
  loop_guard: {replies: 10, within: 2s}  # its hits are kept as long as its window
rules:
  - name: ack
    on: sms.received
    limit: {per_contact: 5, every: 1s}
    sms: {text: "Got it: {{ text }}", via: hoiio}
dialogues:
  - name: survey
    start: {on: sms.received, when: {text: {keyword: survey}}}
    states:
      q1:
        say: "How was it?"
        on:
          - {otherwise: true, goto: done}
      done:
        say: "Thanks."
        end: true
"""


async def test_steady_traffic_keeps_memory_descriptors_and_rows_bounded(
    tmp_path: Path, fake_hoiio: FakeProvider, record_figure
) -> None:
    db = tmp_path / "responder.db"
    env = clean_env(
        HOIIO_APP_ID="app-1",
        HOIIO_ACCESS_TOKEN="token-1",
        HOIIO_API_URL=fake_hoiio.url,
        RESPONDER_IDEMPOTENCY_TTL=str(RETAIN),
        RESPONDER_RETAIN_SENT=str(RETAIN),
        RESPONDER_RETAIN_DEAD=str(RETAIN),
        RESPONDER_RETAIN_HITS=str(RETAIN),
        RESPONDER_RETAIN_CONVERSATIONS=str(RETAIN),
        RESPONDER_PURGE_EVERY="1",
        RESPONDER_LOG_LEVEL="WARNING",
    )
    server = await Serve(write_rules(tmp_path / "rules", RULES), f"sqlite:///{db}", env).start()
    samples: list[tuple[float, float, int, dict[str, int], int]] = []
    sent = 0
    try:
        async with aiohttp.ClientSession() as http:
            began = time.monotonic()
            next_sample = began
            while (now := time.monotonic()) - began < DURATION:
                text = "survey" if sent % 2 else f"m{sent}"
                async with http.post(f"{server.url}/webhooks/textit", data=sms(sent, text)) as resp:
                    assert resp.status == 200
                sent += 1
                if now >= next_sample:
                    rows = count_rows(db)
                    samples.append(
                        (now - began, rss_mb(server.pid), descriptors(server.pid), rows, sent)
                    )
                    next_sample += 1.0
                await asyncio.sleep(max(0.0, began + sent / RATE - time.monotonic()))
    finally:
        assert await server.stop() == 0
    # Once past twice the retention (plus a purge), a table holds at most what RATE webhooks
    # write in the retention and a purge interval; the second half of the run looks like the
    # first half after warm-up.
    settled = [s for s in samples if s[0] >= 2 * RETAIN + 2]
    half = len(settled) // 2
    most = {
        table: max(s[3][table] for s in settled)
        for table in ("idempotency", "outbox", "hits", "conversations")
    }
    bound = RATE * (RETAIN + 2) * 1.5  # rows a table may hold: retention + purge + slack
    assert most["idempotency"] <= bound
    assert most["outbox"] <= bound  # an SMS for every other webhook (the rest start a survey)
    assert most["hits"] <= 2 * bound  # the rule's limit and the loop guard's
    assert most["conversations"] <= bound
    early, late = settled[:half], settled[half:]

    # A plateau, not a slope: no table holds more late in the run than early on for what was
    # sent within the retention and a purge before each look (on a busy machine the sender
    # falls behind its schedule and catches up, so the rows follow its pace, not the clock's).
    def per_webhook(sample: tuple[float, float, int, dict[str, int], int], table: str) -> float:
        since = max((s for s in samples if s[0] <= sample[0] - RETAIN - 2), key=lambda s: s[0])
        return sample[3][table] / max(1, sample[4] - since[4])

    for table in most:
        early_most = max(per_webhook(s, table) for s in early)
        late_most = max(per_webhook(s, table) for s in late)
        assert late_most <= early_most * 1.2 + 0.05, (table, early_most, late_most)
    rss_early, rss_late = max(s[1] for s in early), max(s[1] for s in late)
    fds_early, fds_late = max(s[2] for s in early), max(s[2] for s in late)
    assert rss_late <= rss_early + pick(8.0, 15.0)
    assert fds_late <= fds_early + 5
    record_figure(
        f"growth ({DURATION:g} s at {RATE}/s, {sent} webhooks, retention {RETAIN:g} s, purge "
        f"every 1 s): rows at most {most}; RSS {rss_early:.1f} -> {rss_late:.1f} MB, "
        f"descriptors {fds_early} -> {fds_late} (first and second half after warm-up)"
    )
