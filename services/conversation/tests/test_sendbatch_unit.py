"""SendBatcher's queueing and failure isolation, with plain functions as commits."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from confab_core.identity import Caller
from conversation.handlers.sendbatch import PendingSend, SendBatcher
from conversation.storage.messages import Message, NewMessage

CALLER = Caller("t", "u")


def item(n: int) -> PendingSend:
    new = NewMessage(
        id=str(n),
        conversation_id="c",
        sender_id="u",
        sender_name="",
        kind=1,
        text=f"m{n}",
        client_msg_id=str(n),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        thread_root_id="",
        mentions=(),
        mentions_all=False,
        file=None,
        search_terms=[],
    )
    return PendingSend(CALLER, 1, new, [])


def n_of(item: PendingSend) -> int:
    return int(item.message.id)


@pytest.mark.asyncio
async def test_waiting_sends_ride_one_batch_and_a_bad_one_fails_alone() -> None:
    batches: list[list[int]] = []
    gate = asyncio.Event()

    async def many(items: list[PendingSend]) -> None:
        batches.append([n_of(i) for i in items])
        if any(n_of(i) == 3 for i in items):
            raise ValueError("one bad item")
        for i in items:
            i.done.set_result(i.message.at(n_of(i)))

    async def one(items: list[PendingSend]) -> None:
        batches.append([n_of(i) for i in items])
        if n_of(items[0]) == 0:
            await gate.wait()
        if n_of(items[0]) == 3:
            raise ValueError("bad")
        items[0].done.set_result(items[0].message.at(n_of(items[0])))

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
    assert [r.seq if isinstance(r, Message) else type(r).__name__ for r in results] == [
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
        items[0].done.set_result(items[0].message.at(n_of(items[0])))
        committed.set()

    batcher = SendBatcher(one, one)
    waiter = asyncio.create_task(batcher.submit(item(1)))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    gate.set()
    await asyncio.wait_for(committed.wait(), 5)
