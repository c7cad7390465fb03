"""Group commit: the sends waiting while a transaction runs share the next one.

A send's transaction is a handful of round trips whatever it carries, so under
load most of a send's cost is the transaction itself. Sends queue here; one
batch at a time commits in one transaction (any conversations, any tenants),
and whoever arrives meanwhile rides the next. A lone send waits for nothing.

If a batch fails (a retried send whose message exists, a conversation deleted
in between), its items are committed one by one, so each gets its own answer
and one bad item never fails the others.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from prometheus_client import Histogram

from confab_core.identity import Caller
from conversation.storage.messages import Message, NewMessage

log = logging.getLogger(__name__)

BATCH_SIZE = Histogram(
    "confab_conversation_send_batch_messages",
    "Messages committed per send transaction",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200),
)


@dataclass
class PendingSend:
    caller: Caller
    conversation_kind: int
    # The message, without its seq (the commit assigns it).
    message: NewMessage
    # The sender's trace context, so the event's trace continues their request.
    headers: list[tuple[str, bytes]]
    done: asyncio.Future[Message] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


Commit = Callable[[list[PendingSend]], Awaitable[None]]


class SendBatcher:
    def __init__(self, commit_many: Commit, commit_one: Commit, max_batch: int = 200) -> None:
        self._many = commit_many
        self._one = commit_one
        self._max = max_batch
        self._queue: list[PendingSend] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, item: PendingSend) -> Message:
        self._queue.append(item)
        if self._drainer is None or self._drainer.done():
            # A clean context: the drainer outlives the request that woke it.
            self._drainer = asyncio.create_task(self._drain(), context=contextvars.Context())
        # Shielded: a caller that gives up does not cancel a commit others share.
        return await asyncio.shield(item.done)

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max], self._queue[self._max :]
            await self._commit(batch)

    async def _commit(self, batch: list[PendingSend]) -> None:
        try:
            if len(batch) == 1:
                await self._one(batch)
            else:
                await self._many(batch)
            BATCH_SIZE.observe(len(batch))
            return
        except asyncio.CancelledError:
            _fail(batch, asyncio.CancelledError())
            raise
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch, exc)
                return
            log.info("send batch of %d failed (%s); committing one by one", len(batch), exc)
        for item in batch:
            try:
                await self._one([item])
                BATCH_SIZE.observe(1)
            except asyncio.CancelledError:
                _fail([item], asyncio.CancelledError())
                raise
            except Exception as exc:
                _fail([item], exc)


def _fail(items: list[PendingSend], exc: BaseException) -> None:
    for item in items:
        if not item.done.done():
            item.done.set_exception(exc)
