"""Fires due SLA timers. One scheduler at a time holds a lease in MongoDB (like
the outbox relay); each timer fires in one unit of work that marks it fired
conditionally, so a timer fires exactly once even when two schedulers overlap
(a lease taken over from a stalled holder) or one dies before its commit (the
next one finds the timer still unfired)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from datetime import timedelta
from typing import TypeVar

from prometheus_client import Counter
from pymongo.errors import PyMongoError

from confab_core.clock import Clock
from confab_core.ids import new_id
from conversation.handlers.sla import SlaEngine
from conversation.storage.db import Database
from conversation.storage.sla import TimerRecord

log = logging.getLogger(__name__)
T = TypeVar("T")

FIRED = Counter("confab_sla_timers_fired_total", "SLA timers fired", ["kind"])
FAILED = Counter("confab_sla_timer_failures_total", "SLA timer firings that raised")
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
                    settled = await self.fire_due()
                    backoff = self._poll
                    if settled >= self._batch:
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
        """One pass: breach actions left over by a crash, then the due timers.
        Returns how many timers it settled (fired or dropped as stale); a full
        batch means more may be waiting."""
        for timer in await self._queue.with_pending_actions(self._batch):
            await self._guarded(timer, self._engine.apply(timer))
        settled = 0
        for timer in await self._queue.due(self._clock.now(), self._batch):
            fired = await self._guarded(timer, self._engine.fire(timer))
            if fired is not None:
                settled += 1
            if fired:
                FIRED.labels(timer.kind).inc()
        return settled

    async def _guarded(self, timer: TimerRecord, step: Awaitable[T]) -> T | None:
        """Runs one timer's step; None when it failed. One broken timer must not
        stop the others (nor the loop): it stays as it was and is tried again on
        the next pass. Database and network errors pause the whole loop."""
        try:
            return await step
        except (PyMongoError, OSError):
            raise
        except Exception:
            FAILED.inc()
            log.exception("sla timer %s failed", timer.id)
            return None
