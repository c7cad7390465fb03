"""One writer at a time per conversation, within this process.

Every write to a conversation takes seqs from its document, so two transactions
on one conversation always conflict: the loser is aborted and retried with
backoff, which under load turns into seconds of latency and timed-out sends.
Queuing them here instead costs nothing (they could not have run in parallel)
and leaves retries for the rarer conflicts between replicas.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager


class KeyedLocks:
    def __init__(self) -> None:
        # Entries live only while someone holds or waits for them.
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    @asynccontextmanager
    async def hold_all(self, keys: Iterable[Hashable]) -> AsyncIterator[None]:
        """Several keys at once, always taken in sorted order: two holders of
        overlapping sets can never wait for each other in a cycle."""
        async with AsyncExitStack() as stack:
            for key in sorted(set(keys), key=repr):
                await stack.enter_async_context(self.hold(key))
            yield

    # Not __len__: an empty table would be falsy, and `locks or KeyedLocks()`
    # once gave every handler a table of its own.
    def holders(self, key: Hashable) -> int:
        """How many hold or wait for ``key`` right now."""
        entry = self._locks.get(key)
        return entry[1] if entry else 0

    def active(self) -> int:
        """Keys held or waited for right now."""
        return len(self._locks)
