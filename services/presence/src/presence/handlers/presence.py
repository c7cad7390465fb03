"""Connect, disconnect, heartbeat, read presence, set a status, announce typing."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from confab.presence.v1 import presence_pb2 as pb
from confab_core.clock import Clock
from confab_core.errors import InvalidArgument, PermissionDenied, Unauthenticated, Unavailable
from confab_core.identity import (
    ROLE_AGENT,
    ROLE_SERVICE,
    ROLE_TENANT_ADMIN,
    Caller,
    current_service,
)
from confab_core.limits import MAX_HEARTBEAT_CONNECTIONS, MAX_PRESENCE_IDS
from confab_core.servicetoken import CONVERSATION, GATEWAY
from confab_core.telemetry import tracer
from presence.events import EventQueue, presence_event, typing_event
from presence.handlers.validate import custom_status_text, require_id
from presence.limits import (
    LAST_ACTIVE_HEARTBEAT_SECONDS,
    TYPING_REPEAT_SECONDS,
    TYPING_THROTTLE_ENTRIES,
)
from presence.membership import Memberships
from presence.metrics import (
    STATUS_SETS,
    TYPING_PUBLISHED,
    TYPING_THROTTLED,
    count_change,
    status_label,
)
from presence.storage.presence import (
    CHOOSABLE,
    Change,
    CustomStatus,
    PresenceDb,
    PresenceState,
    never_seen,
)
from presence.timing import epoch_ms
from presence.typing import TypingThrottle

# Who reads the presence of the whole tenant roster (docs/presence.md).
_SEE_TENANT = (ROLE_AGENT, ROLE_TENANT_ADMIN, ROLE_SERVICE)
# The latest instant a protobuf Timestamp can hold (9999-12-31T23:59:59.999Z).
_MAX_TIMESTAMP_MS = 253_402_300_799_999


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
        self,
        db: PresenceDb,
        events: EventQueue,
        clock: Clock,
        memberships: Memberships,
        *,
        ttl_seconds: float,
        offline_grace_seconds: float,
        typing_ttl_seconds: float,
        typing_repeat_seconds: float = TYPING_REPEAT_SECONDS,
        typing_throttle_entries: int = TYPING_THROTTLE_ENTRIES,
    ) -> None:
        self._db = db
        self._events = events
        self._memberships = memberships
        self._clock = clock
        self._ttl_ms = int(ttl_seconds * 1000)
        self._grace_ms = int(offline_grace_seconds * 1000)
        self._typing_ttl_ms = int(typing_ttl_seconds * 1000)
        self._typing = TypingThrottle(typing_repeat_seconds, typing_throttle_entries)

    def _publish(self, tenant_id: str, change: Change) -> None:
        count_change(change)
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
                caller.user_id,
                connection_id,
                now_ms=now,
                expires_ms=now + self._ttl_ms,
                ttl_ms=self._ttl_ms,
            )
            span.set_attribute("confab.presence.changed", change.changed)
            span.set_attribute("confab.presence.grace", change.grace)
            self._publish(caller.tenant_id, change)
            return change.state

    async def disconnect(self, caller: Caller, connection_id: str) -> PresenceState:
        """Removes one connection. The last one does not take the user offline
        at once: they stay present for the offline grace, and the sweeper turns
        them offline when it ends unless a connect came first."""
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
                caller.user_id,
                connection_id,
                now_ms=epoch_ms(self._clock),
                ttl_ms=self._ttl_ms,
                grace_ms=self._grace_ms,
            )
            span.set_attribute("confab.presence.changed", change.changed)
            span.set_attribute("confab.presence.grace", change.grace)
            self._publish(caller.tenant_id, change)
            return change.state

    async def heartbeat(
        self, service: str | None, gateway_id: str, entries: Sequence[HeartbeatEntry]
    ) -> int:
        """Extends the listed connections; the tenant comes from each entry because
        one gateway holds sockets of many tenants. Only a gateway, proven by its
        signed service token, may do that: the entries name any tenant."""
        if service is None:
            raise Unauthenticated("heartbeats come from gateways only", "service_only")
        if service != GATEWAY:
            raise PermissionDenied(f"{service} may not heartbeat", "service_not_allowed")
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
            now = epoch_ms(self._clock)
            refreshed = 0
            for tenant_id, users in by_tenant.items():
                refreshed += await self._db.for_tenant(tenant_id).heartbeat(
                    {user_id: list(conns) for user_id, conns in users.items()},
                    now_ms=now,
                    expires_ms=now + self._ttl_ms,
                    last_active_every_ms=int(LAST_ACTIVE_HEARTBEAT_SECONDS * 1000),
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
            ) as span,
            _store_errors(),
        ):
            _check_caller(caller)
            if len(user_ids) > MAX_PRESENCE_IDS:
                raise InvalidArgument(
                    f"at most {MAX_PRESENCE_IDS} user ids per call", "too_many_user_ids"
                )
            unique = list(dict.fromkeys(require_id("user_id", u) for u in user_ids))
            now = epoch_ms(self._clock)
            # The conversation service asks for its agent roster (auto-assignment).
            if caller.has_role(*_SEE_TENANT) or current_service() == CONVERSATION:
                return await self._db.for_tenant(caller.tenant_id).get_many(unique, now_ms=now)
            # docs/presence.md: members see the people they share a conversation
            # with. Anyone else reads exactly as a user never seen, so the
            # answer tells nothing about who exists or is online.
            visible = await self._memberships.visible(caller, unique)
            span.set_attribute("confab.presence.hidden", len(unique) - len(visible))
            found = {
                s.user_id: s
                for s in await self._db.for_tenant(caller.tenant_id).get_many(
                    [u for u in unique if u in visible], now_ms=now
                )
            }
            return [found.get(u) or never_seen(u, now_ms=now) for u in unique]

    async def set_status(
        self,
        caller: Caller,
        status: pb.PresenceStatus.ValueType,
        custom_status: str | None = None,
        custom_status_expires_ms: int | None = None,
    ) -> PresenceState:
        """Sets the caller's chosen status: ONLINE is automatic (clears a chosen
        away or busy); AWAY and BUSY show while the user is present, and are kept
        while offline for the next connect. ``custom_status`` None keeps the
        custom status, empty clears it; its expiry needs a text and the future."""
        with (
            tracer().start_as_current_span(
                "confab.presence.set_status",
                attributes={
                    "confab.tenant_id": caller.tenant_id,
                    "confab.user_id": caller.user_id,
                    "confab.presence.chosen_status": status_label(status),
                },
            ) as span,
            _store_errors(),
        ):
            _check_caller(caller)
            if status not in CHOOSABLE:
                raise InvalidArgument(
                    "status must be ONLINE (automatic), AWAY or BUSY", "invalid_status"
                )
            now = epoch_ms(self._clock)
            custom: CustomStatus | None = None
            if custom_status is not None:
                custom = CustomStatus(custom_status_text(custom_status))
            if custom_status_expires_ms is not None:
                if custom is None or not custom.text:
                    raise InvalidArgument(
                        "custom_status_expires_at needs a custom_status", "invalid_expiry"
                    )
                if not now < custom_status_expires_ms <= _MAX_TIMESTAMP_MS:
                    raise InvalidArgument(
                        "custom_status_expires_at must be in the future", "invalid_expiry"
                    )
                custom = CustomStatus(custom.text, custom_status_expires_ms)
            span.set_attribute(
                "confab.presence.custom_status",
                "keep" if custom is None else ("set" if custom.text else "clear"),
            )
            change = await self._db.for_tenant(caller.tenant_id).set_status(
                caller.user_id, status, custom, now_ms=now, ttl_ms=self._ttl_ms
            )
            STATUS_SETS.labels(status_label(status)).inc()
            span.set_attribute("confab.presence.changed", change.changed)
            span.set_attribute("confab.presence.status", status_label(change.state.status))
            self._publish(caller.tenant_id, change)
            return change.state

    async def set_typing(self, caller: Caller, conversation_id: str, typing: bool) -> int:
        """Publishes that the caller started or stopped typing; returns when it
        lapses (epoch ms). Never stored. The same state repeated within the
        throttle window returns the expiry already published, publishing nothing.
        Only members of the conversation may type in it (asked of the
        conversation service): NotFound or PermissionDenied otherwise."""
        with tracer().start_as_current_span(
            "confab.presence.set_typing",
            attributes={
                "confab.tenant_id": caller.tenant_id,
                "confab.user_id": caller.user_id,
                "confab.presence.typing": typing,
            },
        ) as span:
            _check_caller(caller)
            require_id("conversation_id", conversation_id)
            span.set_attribute("confab.conversation_id", conversation_id)
            key = (caller.tenant_id, caller.user_id, conversation_id)
            mono = self._clock.monotonic()
            repeated = self._typing.repeat_of(key, typing, mono)
            span.set_attribute("confab.presence.throttled", repeated is not None)
            if repeated is not None:
                # Published before, so membership was checked within the window.
                TYPING_THROTTLED.inc()
                return repeated
            await self._memberships.require_member(caller, conversation_id)
            expires = epoch_ms(self._clock) + self._typing_ttl_ms
            self._events.put(
                typing_event(caller.tenant_id, caller.user_id, conversation_id, typing, expires)
            )
            self._typing.published(key, typing, mono, expires)
            TYPING_PUBLISHED.labels("start" if typing else "stop").inc()
            return expires


def _check_caller(caller: Caller) -> None:
    require_id("tenant_id", caller.tenant_id)
    require_id("user_id", caller.user_id)
