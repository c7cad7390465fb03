"""Connect, disconnect, heartbeat and read presence."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from confab_core.clock import Clock
from confab_core.errors import InvalidArgument, Unavailable
from confab_core.identity import Caller
from confab_core.telemetry import tracer
from presence.events import EventQueue, presence_event
from presence.handlers.validate import require_id
from presence.limits import MAX_HEARTBEAT_CONNECTIONS, MAX_PRESENCE_IDS
from presence.storage.presence import Change, PresenceDb, PresenceState
from presence.timing import epoch_ms


@dataclass(frozen=True)
class HeartbeatEntry:
    tenant_id: str
    user_id: str
    connection_id: str


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    # UNAVAILABLE lets the gateway's channel retry: every call here is idempotent.
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise Unavailable("presence store unavailable", "presence_store_unavailable") from exc


class PresenceHandler:
    def __init__(
        self, db: PresenceDb, events: EventQueue, clock: Clock, *, ttl_seconds: float
    ) -> None:
        self._db = db
        self._events = events
        self._clock = clock
        self._ttl_ms = int(ttl_seconds * 1000)

    def _publish(self, tenant_id: str, change: Change) -> None:
        if change.changed:
            self._events.put(presence_event(tenant_id, change))

    async def connect(self, caller: Caller, connection_id: str, gateway_id: str) -> PresenceState:
        with (
            tracer().start_as_current_span(
                "confab.presence.connect",
                attributes={
                    "confab.tenant_id": caller.tenant_id,
                    "confab.user_id": caller.user_id,
                    "confab.gateway_id": gateway_id,
                },
            ) as span,
            _store_errors(),
        ):
            _check_caller(caller)
            require_id("connection_id", connection_id)
            require_id("gateway_id", gateway_id)
            now = epoch_ms(self._clock)
            change = await self._db.for_tenant(caller.tenant_id).connect(
                caller.user_id, connection_id, now_ms=now, expires_ms=now + self._ttl_ms
            )
            span.set_attribute("confab.presence.changed", change.changed)
            self._publish(caller.tenant_id, change)
            return change.state

    async def disconnect(self, caller: Caller, connection_id: str) -> PresenceState:
        with (
            tracer().start_as_current_span(
                "confab.presence.disconnect",
                attributes={"confab.tenant_id": caller.tenant_id, "confab.user_id": caller.user_id},
            ) as span,
            _store_errors(),
        ):
            _check_caller(caller)
            require_id("connection_id", connection_id)
            change = await self._db.for_tenant(caller.tenant_id).disconnect(
                caller.user_id, connection_id, now_ms=epoch_ms(self._clock)
            )
            span.set_attribute("confab.presence.changed", change.changed)
            self._publish(caller.tenant_id, change)
            return change.state

    async def heartbeat(self, gateway_id: str, entries: Sequence[HeartbeatEntry]) -> int:
        """Extends the listed connections; the tenant comes from each entry because
        one gateway holds sockets of many tenants."""
        with (
            tracer().start_as_current_span(
                "confab.presence.heartbeat",
                attributes={
                    "confab.gateway_id": gateway_id,
                    "confab.presence.listed": len(entries),
                },
            ) as span,
            _store_errors(),
        ):
            require_id("gateway_id", gateway_id)
            if len(entries) > MAX_HEARTBEAT_CONNECTIONS:
                raise InvalidArgument(
                    f"at most {MAX_HEARTBEAT_CONNECTIONS} connections per heartbeat",
                    "too_many_connections",
                )
            # Dicts as ordered sets: a connection listed twice is refreshed once.
            by_tenant: defaultdict[str, defaultdict[str, dict[str, None]]] = defaultdict(
                lambda: defaultdict(dict)
            )
            for entry in entries:
                require_id("tenant_id", entry.tenant_id)
                require_id("user_id", entry.user_id)
                require_id("connection_id", entry.connection_id)
                by_tenant[entry.tenant_id][entry.user_id][entry.connection_id] = None
            expires = epoch_ms(self._clock) + self._ttl_ms
            refreshed = 0
            for tenant_id, users in by_tenant.items():
                refreshed += await self._db.for_tenant(tenant_id).heartbeat(
                    {user_id: list(conns) for user_id, conns in users.items()},
                    expires_ms=expires,
                )
            span.set_attribute("confab.presence.refreshed", refreshed)
            return refreshed

    async def get(self, caller: Caller, user_ids: Sequence[str]) -> list[PresenceState]:
        with (
            tracer().start_as_current_span(
                "confab.presence.get",
                attributes={
                    "confab.tenant_id": caller.tenant_id,
                    "confab.user_id": caller.user_id,
                    "confab.presence.requested": len(user_ids),
                },
            ),
            _store_errors(),
        ):
            _check_caller(caller)
            if len(user_ids) > MAX_PRESENCE_IDS:
                raise InvalidArgument(
                    f"at most {MAX_PRESENCE_IDS} user ids per call", "too_many_user_ids"
                )
            unique = list(dict.fromkeys(require_id("user_id", u) for u in user_ids))
            return await self._db.for_tenant(caller.tenant_id).get_many(
                unique, now_ms=epoch_ms(self._clock)
            )


def _check_caller(caller: Caller) -> None:
    require_id("tenant_id", caller.tenant_id)
    require_id("user_id", caller.user_id)
