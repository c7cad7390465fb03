"""Applies the deadlines nobody else will: connections of a gateway that stopped
heartbeating (crashed or partitioned), offline graces that ran out, custom
statuses that expired.

Every pod runs one; they may sweep the same user at once, which is harmless
because the expire script decides and applies each transition atomically.
"""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from confab.presence.v1 import presence_pb2 as pb
from confab_core.clock import Clock
from confab_core.telemetry import tracer
from presence.events import EventQueue, presence_event
from presence.metrics import CONNECTIONS, ONLINE_USERS, SWEPT_CONNECTIONS, count_change
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
        """Applies every deadline passed by now; returns how many users' presence
        changed (went offline, or lost an expired custom status)."""
        now = epoch_ms(self._clock)
        changed = went_offline = grace_ended = custom_expired = 0
        removed_total = 0
        with tracer().start_as_current_span("confab.presence.sweep") as span:
            while True:
                due = await self._db.due(now, self._batch)
                for tenant_id, user_id in due:
                    with tracer().start_as_current_span(
                        "confab.presence.expire",
                        attributes={"confab.tenant_id": tenant_id, "confab.user_id": user_id},
                    ) as user_span:
                        change = await self._db.for_tenant(tenant_id).expire(
                            user_id, now_ms=now, ttl_ms=self._ttl_ms
                        )
                        user_span.set_attribute("confab.presence.changed", change.changed)
                        user_span.set_attribute("confab.presence.grace", change.grace)
                        user_span.set_attribute(
                            "confab.presence.custom_status_expired", change.custom_expired
                        )
                        count_change(change)
                        removed_total += change.removed
                        grace_ended += change.grace == "ended"
                        custom_expired += change.custom_expired
                        if change.changed:
                            changed += 1
                            went_offline += change.state.status == pb.PRESENCE_STATUS_OFFLINE
                            self._events.put(presence_event(tenant_id, change))
                # Each expire moves its user's deadline past now, so a short
                # page means nothing is left.
                if len(due) < self._batch:
                    break
            span.set_attribute("confab.presence.swept_connections", removed_total)
            span.set_attribute("confab.presence.changed_users", changed)
            span.set_attribute("confab.presence.went_offline", went_offline)
            span.set_attribute("confab.presence.grace_ended", grace_ended)
            span.set_attribute("confab.presence.custom_status_expired", custom_expired)
        SWEPT_CONNECTIONS.inc(removed_total)
        if removed_total or changed:
            log.info(
                "swept presence deadlines",
                extra={
                    "connections": removed_total,
                    "changed": changed,
                    "went_offline": went_offline,
                    "grace_ended": grace_ended,
                    "custom_status_expired": custom_expired,
                },
            )
        connections, present = await self._db.stats()
        CONNECTIONS.set(connections)
        ONLINE_USERS.set(present)
        return changed

    async def run(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except (RedisError, OSError) as exc:
                log.warning("presence sweep failed, retrying next interval: %s", exc)
            await asyncio.sleep(self._interval)
