"""SendBatcher's queueing and failure isolation, with plain functions as commits."""

from __future__ import annotations

import asyncio

import pytest

from confab_core.identity import Caller
from conversation.handlers.sendbatch import PendingSend, SendBatcher

CALLER = Caller("t", "u")


def item(n: int) -> PendingSend:
    return PendingSend(CALLER, 1, {"n": n}, [])


@pytest.mark.asyncio
async def test_waiting_sends_ride_one_batch_and_a_bad_one_fails_alone() -> None:
    batches: list[list[int]] = []
    gate = asyncio.Event()

    async def many(items: list[PendingSend]) -> None:
        batches.append([i.doc["n"] for i in items])
        if any(i.doc["n"] == 3 for i in items):
            raise ValueError("one bad item")
        for i in items:
            i.done.set_result(i.doc)

    async def one(items: list[PendingSend]) -> None:
        batches.append([i.doc["n"] for i in items])
        if items[0].doc["n"] == 0:
            await gate.wait()
        if items[0].doc["n"] == 3:
            raise ValueError("bad")
        items[0].done.set_result(items[0].doc)

    batcher = SendBatcher(many, one)
    first = asyncio.create_task(batcher.submit(item(0)))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(batcher.submit(item(n))) for n in range(1, 5)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(first, *rest, return_exceptions=True)
    assert batches[0] == [0]
    assert batches[1] == [1, 2, 3, 4]  # the batch, which failed
    assert batches[2:] == [[1], [2], [3], [4]]  # then one by one
    assert [r["n"] if isinstance(r, dict) else type(r).__name__ for r in results] == [
        0,
        1,
        2,
        "ValueError",
        4,
    ]


@pytest.mark.asyncio
async def test_a_caller_that_gives_up_does_not_cancel_the_commit() -> None:
    committed = asyncio.Event()
    gate = asyncio.Event()

    async def one(items: list[PendingSend]) -> None:
        await gate.wait()
        items[0].done.set_result(items[0].doc)
        committed.set()

    batcher = SendBatcher(one, one)
    waiter = asyncio.create_task(batcher.submit(item(1)))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    gate.set()
    await asyncio.wait_for(committed.wait(), 5)
