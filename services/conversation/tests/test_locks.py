"""KeyedLocks: one holder per key, others run freely, nothing kept once released."""

from __future__ import annotations

import asyncio

import pytest

from conversation.handlers.locks import KeyedLocks


@pytest.mark.asyncio
async def test_same_key_runs_one_at_a_time_in_arrival_order() -> None:
    locks = KeyedLocks()
    order: list[str] = []
    first_in = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with locks.hold("c1"):
            order.append("first in")
            first_in.set()
            await release.wait()
            order.append("first out")

    async def second() -> None:
        await first_in.wait()
        async with locks.hold("c1"):
            order.append("second in")

    tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
    await first_in.wait()
    # Let the second reach the lock and queue behind the first.
    for _ in range(5):
        await asyncio.sleep(0)
    assert order == ["first in"]
    release.set()
    await asyncio.gather(*tasks)
    assert order == ["first in", "first out", "second in"]
    assert locks.active() == 0


@pytest.mark.asyncio
async def test_other_keys_do_not_wait() -> None:
    locks = KeyedLocks()
    async with locks.hold(("t", "c1")), locks.hold(("t", "c2")):
        assert locks.active() == 2
    assert locks.active() == 0


@pytest.mark.asyncio
async def test_released_when_the_body_raises() -> None:
    locks = KeyedLocks()
    with pytest.raises(RuntimeError):
        async with locks.hold("c1"):
            raise RuntimeError("boom")
    assert locks.active() == 0
    async with locks.hold("c1"):
        pass
