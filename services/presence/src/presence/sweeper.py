"""Turns users offline whose gateway stopped heartbeating (crashed or partitioned).

Every pod runs one; they may sweep the same user at once, which is harmless
because the expire script decides and applies each transition atomically.
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from confab_core.clock import Clock
from confab_core.telemetry import tracer
from presence.events import EventQueue, presence_event
from presence.metrics import CONNECTIONS, ONLINE_USERS, SWEPT_CONNECTIONS
from presence.storage.presence import PresenceDb
from presence.timing import epoch_ms

log = logging.getLogger(__name__)


class Sweeper:
    def __init__(
        self,
        db: PresenceDb,
        events: EventQueue,
        clock: Clock,
        *,
        ttl_seconds: float,
        interval_seconds: float,
        batch_size: int = 500,
    ) -> None:
        self._db = db
        self._events = events
        self._clock = clock
        self._ttl_ms = int(ttl_seconds * 1000)
        self._interval = interval_seconds
        self._batch = batch_size

    async def sweep_once(self) -> int:
        """Removes every connection expired by now; returns how many users went offline."""
        now = epoch_ms(self._clock)
        went_offline = 0
        removed_total = 0
        with tracer().start_as_current_span("confab.presence.sweep") as span:
            while True:
                due = await self._db.due(now, self._batch)
                for tenant_id, user_id in due:
                    with tracer().start_as_current_span(
                        "confab.presence.expire",
                        attributes={"confab.tenant_id": tenant_id, "confab.user_id": user_id},
                    ):
                        change, removed = await self._db.for_tenant(tenant_id).expire(
                            user_id, now_ms=now, ttl_ms=self._ttl_ms
                        )
                        removed_total += removed
                        if change.changed:
                            went_offline += 1
                            self._events.put(presence_event(tenant_id, change))
                # Each expire takes its user out of the due range, so a short
                # page means nothing is left.
                if len(due) < self._batch:
                    break
            span.set_attribute("confab.presence.swept_connections", removed_total)
            span.set_attribute("confab.presence.went_offline", went_offline)
        SWEPT_CONNECTIONS.inc(removed_total)
        if removed_total:
            log.info(
                "swept expired connections",
                extra={"connections": removed_total, "went_offline": went_offline},
            )
        connections, present = await self._db.stats()
        CONNECTIONS.set(connections)
        ONLINE_USERS.set(present)
        return went_offline

    async def run(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except (RedisError, OSError) as exc:
                log.warning("presence sweep failed, retrying next interval: %s", exc)
            await asyncio.sleep(self._interval)
