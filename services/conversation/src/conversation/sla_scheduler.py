"""Fires due SLA timers. One scheduler at a time holds a lease in MongoDB (like
the outbox relay); each timer fires in one unit of work that marks it fired
conditionally, so a timer fires exactly once even when two schedulers overlap
(a lease taken over from a stalled holder) or one dies before its commit (the
next one finds the timer still unfired)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from prometheus_client import Counter
from pymongo.errors import PyMongoError

from confab_core.clock import Clock
from confab_core.ids import new_id
from conversation.handlers.sla import SlaEngine
from conversation.storage.db import Database

log = logging.getLogger(__name__)

FIRED = Counter("confab_sla_timers_fired_total", "SLA timers fired", ["kind"])
LEASE_ID = "sla-scheduler"


class SlaScheduler:
    def __init__(
        self,
        db: Database,
        engine: SlaEngine,
        clock: Clock,
        *,
        batch_size: int,
        poll_seconds: float,
        lease_seconds: float,
    ) -> None:
        self._queue = db.sla_timers()
        self._leases = db.leases()
        self._engine = engine
        self._clock = clock
        self._batch = batch_size
        self._poll = poll_seconds
        self._lease = lease_seconds
        self.owner = new_id()

    async def run(self) -> None:
        backoff = self._poll
        while True:
            try:
                if await self.hold_lease():
                    fired = await self.fire_due()
                    backoff = self._poll
                    if fired >= self._batch:
                        continue
            except (PyMongoError, OSError) as exc:
                log.warning("sla scheduler paused: %s", exc)
                backoff = min(backoff * 2, 5.0)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self._engine.wakeup.wait()
            self._engine.wakeup.clear()

    async def hold_lease(self) -> bool:
        return await self._leases.take(
            LEASE_ID, self.owner, self._clock.now(), timedelta(seconds=self._lease)
        )

    async def fire_due(self) -> int:
        """One pass: breach actions left over by a crash, then the due timers."""
        for timer in await self._queue.with_pending_actions(self._batch):
            await self._engine.apply(timer)
        due = await self._queue.due(self._clock.now(), self._batch)
        fired = 0
        for timer in due:
            if await self._engine.fire(timer):
                FIRED.labels(timer.kind).inc()
                fired += 1
        return len(due)
