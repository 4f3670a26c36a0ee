"""Requests that never finish: a body shorter than its Content-Length, a chunked body without
its last chunk. Each is answered 408 and closed after RESPONDER_BODY_TIMEOUT, so 1,000 of
them neither use up the server's descriptors nor hold back the webhooks of everyone else."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from responder.testing.fakes import FakeProvider
from tests.attacks.support import (
    ACK_RULES,
    Serve,
    clean_env,
    count_rows,
    descriptors,
    ms,
    percentile,
    pick,
    raise_descriptor_limit,
    timed_posts,
)
from tests.conftest import wait_for, write_rules

CONNECTIONS = pick(1000, 3000)
BODY_TIMEOUT = 3.0


async def unfinished(port: int, n: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST /webhooks/textit HTTP/1.1\r\nHost: x\r\nX-N: {n}\r\n"
    if n % 2:
        body = f"event=mo_sms&sms=U{n}&phone=%2B65&text="
        writer.write(
            f"{head}Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: 1000\r\n\r\n{body}".encode()
        )
    else:
        writer.write(f"{head}Transfer-Encoding: chunked\r\n\r\n5\r\nevent\r\n".encode())
    await writer.drain()
    return reader, writer


async def test_bodies_that_never_end_time_out_and_hold_back_nothing(
    tmp_path: Path, fake_hoiio: FakeProvider, record_figure
) -> None:
    # The child inherits the limit: each held connection costs it one descriptor.
    limit = raise_descriptor_limit(4 * CONNECTIONS + 1000)
    db = tmp_path / "responder.db"
    env = clean_env(
        HOIIO_APP_ID="app-1",
        HOIIO_ACCESS_TOKEN="token-1",
        HOIIO_API_URL=fake_hoiio.url,
        RESPONDER_BODY_TIMEOUT=str(BODY_TIMEOUT),
        RESPONDER_LOG_LEVEL="WARNING",
    )
    server = await Serve(write_rules(tmp_path / "rules", ACK_RULES), f"sqlite:///{db}", env).start()
    try:
        async with aiohttp.ClientSession() as http:
            before = await timed_posts(http, server.url, 100)
            idle_fds = descriptors(server.pid)
            opened = time.monotonic()
            held = []
            for start in range(0, CONNECTIONS, 100):
                held += await asyncio.gather(
                    *(unfinished(server.port, n) for n in range(start, start + 100))
                )
            await asyncio.sleep(0.2)
            peak_fds = descriptors(server.pid)
            assert idle_fds + CONNECTIONS <= peak_fds < limit
            during = await timed_posts(http, server.url, 100)
            # Each held connection is answered 408 and closed once its body is overdue.
            answers = await asyncio.gather(
                *(asyncio.wait_for(r.read(), BODY_TIMEOUT + 30) for r, _ in held)
            )
            closed_after = time.monotonic() - opened
            for _, writer in held:
                writer.close()
            assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), {a[:20] for a in answers}
            await wait_for(lambda: descriptors(server.pid) <= idle_fds + 5, 10, "descriptors freed")
            after = await timed_posts(http, server.url, 50)
        await wait_for(lambda: len(fake_hoiio.calls("/sms/send")) == 250, 30, "replies")
    finally:
        assert await server.stop() == 0
    # Durable effects: only the 250 normal webhooks were stored, each reply sent once.
    counts = count_rows(db)
    assert counts["idempotency"] == 250
    assert counts["outbox"] == 250
    timeouts = server.output().count("body not received within")
    assert timeouts == CONNECTIONS
    record_figure(
        f"unfinished bodies ({CONNECTIONS} connections, RESPONDER_BODY_TIMEOUT={BODY_TIMEOUT:g}): "
        f"all answered 408 and closed within {closed_after:.1f} s; server descriptors "
        f"{idle_fds} idle, {peak_fds} at the peak, back to <= {idle_fds + 5}; normal webhook "
        f"p50/p99 {ms(percentile(before, 0.5))}/{ms(percentile(before, 0.99))} before, "
        f"{ms(percentile(during, 0.5))}/{ms(percentile(during, 0.99))} while held, "
        f"{ms(percentile(after, 0.5))}/{ms(percentile(after, 0.99))} after"
    )
    assert percentile(during, 0.99) < 1.0
