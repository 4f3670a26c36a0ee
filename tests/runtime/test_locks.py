"""KeyedLocks: one holder per key at a time, keys independent, nothing kept once released."""

from __future__ import annotations

import asyncio

import pytest

from responder.runtime.locks import KeyedLocks


async def test_same_key_is_serialised_in_arrival_order() -> None:
    locks = KeyedLocks()
    inside = 0
    most = 0
    order: list[int] = []

    async def worker(n: int) -> None:
        nonlocal inside, most
        async with locks.hold("conv"):
            inside += 1
            most = max(most, inside)
            order.append(n)
            await asyncio.sleep(0.005)
            inside -= 1

    await asyncio.gather(*(worker(n) for n in range(10)))
    assert most == 1
    assert order == list(range(10))
    assert len(locks) == 0


async def test_different_keys_do_not_block_each_other() -> None:
    locks = KeyedLocks()
    a_in = asyncio.Event()
    b_in = asyncio.Event()

    async def a() -> None:
        async with locks.hold("a"):
            a_in.set()
            await b_in.wait()  # deadlocks if "b" had to wait for "a"

    async def b() -> None:
        async with locks.hold("b"):
            b_in.set()
            await a_in.wait()

    await asyncio.wait_for(asyncio.gather(a(), b()), 2)
    assert len(locks) == 0


async def test_released_keys_are_forgotten_and_waiters_counted() -> None:
    locks = KeyedLocks()
    assert len(locks) == 0
    release = asyncio.Event()
    entered: list[str] = []

    async def holder(name: str) -> None:
        async with locks.hold("k"):
            entered.append(name)
            await release.wait()

    first = asyncio.create_task(holder("first"))
    second = asyncio.create_task(holder("second"))
    await asyncio.sleep(0.01)
    assert entered == ["first"]
    assert len(locks) == 1  # one entry for the key, however many wait on it
    async with locks.hold("other"):
        assert len(locks) == 2
    assert len(locks) == 1
    release.set()
    await asyncio.gather(first, second)
    assert entered == ["first", "second"]
    assert len(locks) == 0


async def test_an_error_inside_releases_and_forgets_the_key() -> None:
    locks = KeyedLocks()
    with pytest.raises(RuntimeError):
        async with locks.hold("k"):
            raise RuntimeError("boom")
    assert len(locks) == 0
    async with asyncio.timeout(1):
        async with locks.hold("k"):  # not left locked
            pass
    assert len(locks) == 0


async def test_a_cancelled_waiter_leaves_nothing_behind() -> None:
    locks = KeyedLocks()
    release = asyncio.Event()

    async def holder() -> None:
        async with locks.hold("k"):
            await release.wait()

    async def waiter() -> None:
        async with locks.hold("k"):
            raise AssertionError("a cancelled waiter must never get the lock")

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(waiter())
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert len(locks) == 1
    release.set()
    await held
    assert len(locks) == 0
    async with asyncio.timeout(1):
        async with locks.hold("k"):
            pass
    assert len(locks) == 0


async def test_a_cancelled_holder_releases_the_key_for_the_next() -> None:
    locks = KeyedLocks()
    started = asyncio.Event()
    got: list[str] = []

    async def holder() -> None:
        async with locks.hold("k"):
            started.set()
            await asyncio.sleep(3600)

    async def next_in_line() -> None:
        async with locks.hold("k"):
            got.append("next")

    held = asyncio.create_task(holder())
    await started.wait()
    following = asyncio.create_task(next_in_line())
    await asyncio.sleep(0.01)
    held.cancel()
    await asyncio.wait_for(following, 1)
    assert got == ["next"]
    assert len(locks) == 0


def count_releases(locks: KeyedLocks) -> list[str]:
    """Every key handed on or let go, in order (the holder's exit, or a cancelled waiter
    passing on a key it was handed)."""
    released: list[str] = []
    real = locks._release

    def release(key: str) -> None:
        released.append(key)
        real(key)

    locks._release = release  # type: ignore[method-assign]
    return released


async def test_a_waiter_cancelled_as_the_key_is_released_passes_it_on() -> None:
    locks = KeyedLocks()
    released = count_releases(locks)
    release = asyncio.Event()
    got: list[str] = []

    async def holder() -> None:
        async with locks.hold("k"):
            await release.wait()

    async def waiter(name: str) -> None:
        async with locks.hold("k"):
            got.append(name)

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    cancelled = asyncio.create_task(waiter("cancelled"))
    await asyncio.sleep(0)
    following = asyncio.create_task(waiter("following"))
    await asyncio.sleep(0)
    release.set()
    await asyncio.sleep(0)  # the holder leaves, handing the key to "cancelled"...
    cancelled.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await asyncio.wait_for(asyncio.gather(held, following), 1)
    assert got == ["following"]
    assert len(locks) == 0
    assert len(released) == 3  # the holder, the cancelled waiter handing on, "following"


async def test_a_waiter_cancelled_before_the_release_reaches_it_is_skipped() -> None:
    locks = KeyedLocks()
    released = count_releases(locks)
    release = asyncio.Event()
    got: list[str] = []

    async def holder() -> None:
        async with locks.hold("k"):
            await release.wait()
            waiting.cancel()  # cancelled, and the release below passes over it

    async def waiter(name: str) -> None:
        async with locks.hold("k"):
            got.append(name)

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(waiter("cancelled"))
    following = asyncio.create_task(waiter("following"))
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.wait_for(asyncio.gather(held, following), 1)
    assert got == ["following"]
    assert len(locks) == 0
    assert len(released) == 2  # the holder passed over it; only "following" after
