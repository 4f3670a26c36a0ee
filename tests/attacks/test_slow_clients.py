"""Slow clients: 500 connections sending their headers a byte at a time while normal webhooks
keep being answered; idle keep-alive connections reclaimed; headers and bodies over their
limits refused. RESPONDER_HEADER_TIMEOUT bounds how long any of them holds a descriptor."""

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
    connections,
    count_rows,
    descriptors,
    ms,
    percentile,
    pick,
    raise_descriptor_limit,
    sms,
    timed_posts,
)
from tests.conftest import wait_for, write_rules

SLOW = pick(500, 2000)
HEADER_TIMEOUT = 3.0
TRICKLE = 0.25  # seconds between two bytes of a slow client's headers
NORMAL = pick(200, 2000)


async def slowloris(port: int, n: int) -> float:
    """Send a request head a byte at a time until the server hangs up; the seconds it took."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    began = time.monotonic()
    head = f"POST /webhooks/textit HTTP/1.1\r\nHost: x\r\nX-Slow-{n}: ".encode() + b"a" * 10_000
    try:
        for byte in head:
            writer.write(bytes([byte]))
            await writer.drain()
            try:
                await asyncio.wait_for(reader.read(1), TRICKLE)
                break  # the server answered or hung up
            except TimeoutError:
                continue
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
    return time.monotonic() - began


async def raw_status(port: int, request: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return int(answer.split(b" ", 2)[1]) if answer else 0


async def test_slow_clients_are_cut_and_others_answered_meanwhile(
    tmp_path: Path, fake_hoiio: FakeProvider, record_figure
) -> None:
    raise_descriptor_limit(4 * SLOW + 1000)
    db = tmp_path / "responder.db"
    env = clean_env(
        HOIIO_APP_ID="app-1",
        HOIIO_ACCESS_TOKEN="token-1",
        HOIIO_API_URL=fake_hoiio.url,
        RESPONDER_HEADER_TIMEOUT=str(HEADER_TIMEOUT),
        RESPONDER_LOG_LEVEL="WARNING",
    )
    server = await Serve(write_rules(tmp_path / "rules", ACK_RULES), f"sqlite:///{db}", env).start()
    try:
        async with aiohttp.ClientSession() as http:
            idle_fds = descriptors(server.pid)
            before = await timed_posts(http, server.url, 50)
            slow = [asyncio.create_task(slowloris(server.port, n)) for n in range(SLOW)]
            await wait_for(
                lambda: connections(server.port) >= SLOW * 0.95, HEADER_TIMEOUT, "slow clients in"
            )
            peak_fds = descriptors(server.pid)
            during = await timed_posts(http, server.url, NORMAL, every=0.01)
            held = await asyncio.gather(*slow)
            # Idle keep-alive connections: 100 at once, then nothing.
            connector = aiohttp.TCPConnector(limit=100)
            async with aiohttp.ClientSession(connector=connector) as pool:

                async def one(n: int) -> None:
                    async with pool.post(
                        f"{server.url}/webhooks/textit", data=sms(900_000 + n)
                    ) as resp:
                        assert resp.status == 200

                await asyncio.gather(*(one(n) for n in range(100)))
                kept = connections(server.port)
                began = time.monotonic()
                await wait_for(
                    lambda: connections(server.port) == 0,
                    HEADER_TIMEOUT + 5,
                    "idle keep-alive connections closed",
                )
                reclaimed = time.monotonic() - began
            # Limits on heads and bodies.
            long_line = await raw_status(
                server.port,
                b"POST /webhooks/textit HTTP/1.1\r\nHost: x\r\nX-Long: "
                + b"a" * 9000
                + b"\r\nContent-Length: 0\r\n\r\n",
            )
            many = b"".join(b"X-H%d: 1\r\n" % i for i in range(200))
            many_headers = await raw_status(
                server.port,
                b"POST /webhooks/textit HTTP/1.1\r\nHost: x\r\n"
                + many
                + b"Content-Length: 0\r\n\r\n",
            )
            body = b"text=" + b"x" * (1024 * 1024)
            big_body = await raw_status(
                server.port,
                b"POST /webhooks/textit HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body,
            )
        await wait_for(
            lambda: len(fake_hoiio.calls("/sms/send")) == 50 + NORMAL + 100, 60, "replies"
        )
    finally:
        assert await server.stop() == 0
    assert (long_line, many_headers, big_body) == (400, 400, 413)
    assert max(held) < HEADER_TIMEOUT + 2
    assert peak_fds >= idle_fds + SLOW * 0.95
    assert kept >= 90
    assert percentile(during, 0.99) < 1.0
    # Durable effects: the normal webhooks only, each reply sent once.
    counts = count_rows(db)
    assert counts["idempotency"] == counts["outbox"] == 50 + NORMAL + 100
    record_figure(
        f"slow clients ({SLOW} sending headers a byte per {TRICKLE:g} s, "
        f"RESPONDER_HEADER_TIMEOUT={HEADER_TIMEOUT:g}): all cut after at most "
        f"{max(held):.1f} s (median {percentile(held, 0.5):.1f} s); server descriptors {idle_fds} "
        f"idle, {peak_fds} at the peak; {NORMAL} normal webhooks meanwhile p50/p99 "
        f"{ms(percentile(during, 0.5))}/{ms(percentile(during, 0.99))} "
        f"(before: {ms(percentile(before, 0.5))}/{ms(percentile(before, 0.99))})"
    )
    record_figure(
        f"idle keep-alive: {kept} connections closed by the server {reclaimed:.1f} s "
        f"after their last answer; head line of 9,000 bytes -> {long_line}, 200 headers -> "
        f"{many_headers}, body of 1 MiB + 1 -> {big_body}"
    )
