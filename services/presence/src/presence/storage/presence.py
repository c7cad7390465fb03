"""Presence state in Redis.

Handlers never build a key: they get a ``TenantPresence`` bound to one tenant,
whose every method derives its keys from that tenant. Only the sweeper's
``PresenceDb.due`` reads across tenants, and it hands back (tenant, user) pairs
for the caller to scope again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis

from confab.presence.v1 import presence_pb2 as pb
from presence.storage import keys
from presence.storage.scripts import Scripts

log = logging.getLogger(__name__)

# Users per pipeline round trip in bulk operations.
_CHUNK = 500


@dataclass(frozen=True)
class PresenceState:
    user_id: str
    status: pb.PresenceStatus.ValueType
    device_count: int
    # Epoch milliseconds; None for a user never seen.
    last_active_ms: int | None


@dataclass(frozen=True)
class Change:
    state: PresenceState
    # True when the status moved between offline and present: publish it.
    changed: bool
    # Per-user counter of status changes, so consumers can drop a stale event
    # that overtook a newer one on its way through another pod's queue.
    seq: int


def _status(raw: Any) -> pb.PresenceStatus.ValueType:
    try:
        value = pb.PresenceStatus.ValueType(int(raw))
    except (TypeError, ValueError):
        return pb.PRESENCE_STATUS_OFFLINE
    if value in pb.PresenceStatus.values() and value != pb.PRESENCE_STATUS_UNSPECIFIED:
        return value
    return pb.PRESENCE_STATUS_OFFLINE


def _ms(raw: Any) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def _change(user_id: str, reply: Sequence[Any]) -> Change:
    status, count, last_active, changed, seq = reply[:5]
    return Change(
        state=PresenceState(
            user_id=user_id,
            status=_status(status),
            device_count=int(count),
            last_active_ms=_ms(last_active),
        ),
        changed=bool(int(changed)),
        seq=int(seq),
    )


class TenantPresence:
    def __init__(self, redis: Redis, scripts: Scripts, tenant_id: str) -> None:
        if not tenant_id:
            raise ValueError("a tenant scope is required")
        self._redis = redis
        self._scripts = scripts
        self.tenant_id = tenant_id

    def _keys(self, user_id: str) -> list[str]:
        return [
            keys.conns_key(self.tenant_id, user_id),
            keys.state_key(self.tenant_id, user_id),
            keys.INDEX_KEY,
            keys.STATS_KEY,
        ]

    async def connect(
        self, user_id: str, connection_id: str, *, now_ms: int, expires_ms: int
    ) -> Change:
        reply = await self._scripts.connect(
            keys=self._keys(user_id),
            args=[keys.index_member(self.tenant_id, user_id), connection_id, now_ms, expires_ms],
        )
        return _change(user_id, reply)

    async def disconnect(self, user_id: str, connection_id: str, *, now_ms: int) -> Change:
        reply = await self._scripts.disconnect(
            keys=self._keys(user_id),
            args=[keys.index_member(self.tenant_id, user_id), connection_id, now_ms],
        )
        return _change(user_id, reply)

    async def expire(self, user_id: str, *, now_ms: int, ttl_ms: int) -> tuple[Change, int]:
        """Removes the user's expired connections; returns the change and how many."""
        reply = await self._scripts.expire(
            keys=self._keys(user_id),
            args=[keys.index_member(self.tenant_id, user_id), now_ms, ttl_ms],
        )
        return _change(user_id, reply), int(reply[5])

    async def heartbeat(self, connections: Mapping[str, Sequence[str]], *, expires_ms: int) -> int:
        """Extends registered connections (user id -> connection ids); returns how many."""
        users = list(connections.items())
        refreshed = 0
        for start in range(0, len(users), _CHUNK):
            async with self._redis.pipeline(transaction=False) as pipe:
                for user_id, connection_ids in users[start : start + _CHUNK]:
                    await self._scripts.heartbeat(
                        keys=[keys.conns_key(self.tenant_id, user_id), keys.INDEX_KEY],
                        args=[
                            keys.index_member(self.tenant_id, user_id),
                            expires_ms,
                            *connection_ids,
                        ],
                        client=pipe,
                    )
                replies = await pipe.execute()
            refreshed += sum(int(r) for r in replies)
        return refreshed

    async def get_many(self, user_ids: Sequence[str], *, now_ms: int) -> list[PresenceState]:
        """Current presence; a user whose connections all expired reads as offline
        even before the sweeper has caught up with them."""
        out: list[PresenceState] = []
        for start in range(0, len(user_ids), _CHUNK):
            chunk = user_ids[start : start + _CHUNK]
            async with self._redis.pipeline(transaction=False) as pipe:
                for user_id in chunk:
                    pipe.hmget(
                        keys.state_key(self.tenant_id, user_id), ["status", "last_active_at"]
                    )
                    pipe.zcount(keys.conns_key(self.tenant_id, user_id), f"({now_ms}", "+inf")
                replies = await pipe.execute()
            for i, user_id in enumerate(chunk):
                (status, last_active), live = replies[2 * i], int(replies[2 * i + 1])
                out.append(
                    PresenceState(
                        user_id=user_id,
                        status=_status(status) if live else pb.PRESENCE_STATUS_OFFLINE,
                        device_count=live,
                        last_active_ms=_ms(last_active),
                    )
                )
        return out


class PresenceDb:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._scripts = Scripts(redis)

    def for_tenant(self, tenant_id: str) -> TenantPresence:
        return TenantPresence(self.redis, self._scripts, tenant_id)

    async def due(self, now_ms: int, limit: int) -> list[tuple[str, str]]:
        """(tenant, user) pairs with a connection expired at ``now_ms``, oldest first."""
        members = cast(
            list[str],
            await self.redis.zrangebyscore(keys.INDEX_KEY, "-inf", now_ms, start=0, num=limit),
        )
        out: list[tuple[str, str]] = []
        for member in members:
            parsed = keys.parse_index_member(member)
            if parsed is None:
                # Would be returned on every sweep forever.
                log.error("dropping malformed presence index member", extra={"member": member})
                await self.redis.zrem(keys.INDEX_KEY, member)
                continue
            out.append(parsed)
        return out

    async def stats(self) -> tuple[int, int]:
        """Fleet-wide (live connections, present users), as the scripts counted them."""
        connections, users = await self.redis.hmget(
            keys.STATS_KEY, ["connections", "present_users"]
        )
        return _ms(connections) or 0, _ms(users) or 0
