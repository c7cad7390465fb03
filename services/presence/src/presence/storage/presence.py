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
# State hash fields a read needs.
_STATE_FIELDS = ["status", "last_active_at", "chosen", "custom", "custom_exp", "grace_until"]


@dataclass(frozen=True)
class CustomStatus:
    # Empty clears the custom status.
    text: str
    # Epoch milliseconds; None keeps it until changed.
    expires_ms: int | None = None


@dataclass(frozen=True)
class PresenceState:
    user_id: str
    status: pb.PresenceStatus.ValueType
    device_count: int
    # Epoch milliseconds; None for a user never seen.
    last_active_ms: int | None
    # ONLINE means automatic: the status follows the connections.
    chosen_status: pb.PresenceStatus.ValueType = pb.PRESENCE_STATUS_ONLINE
    # Empty when none, or when the one set has expired.
    custom_status: str = ""
    custom_status_expires_ms: int | None = None


@dataclass(frozen=True)
class Change:
    state: PresenceState
    # True when what an event shows (status, chosen status, custom status)
    # changed: publish it.
    changed: bool
    # Per-user counter of published changes, so consumers can drop a stale event
    # that overtook a newer one on its way through another pod's queue.
    seq: int
    # "started", "resumed", "ended" or "" (see scripts.py), for metrics and spans.
    grace: str = ""
    # Connections removed because they had expired.
    removed: int = 0
    # The custom status was cleared because its expiry passed.
    custom_expired: bool = False


PRESENT = frozenset({pb.PRESENCE_STATUS_ONLINE, pb.PRESENCE_STATUS_AWAY, pb.PRESENCE_STATUS_BUSY})
# What SetStatus accepts as a chosen status.
CHOOSABLE = PRESENT


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


def _text(raw: Any) -> str:
    # The client decodes responses; a missing field is None.
    return "" if raw is None else str(raw)


def _chosen(raw: Any) -> pb.PresenceStatus.ValueType:
    if not raw:
        return pb.PRESENCE_STATUS_ONLINE
    status = _status(raw)
    return status if status in CHOOSABLE else pb.PRESENCE_STATUS_ONLINE


def _change(user_id: str, reply: Sequence[Any]) -> Change:
    (
        status,
        count,
        last_active,
        changed,
        seq,
        chosen,
        custom,
        custom_exp,
        grace,
        removed,
        custom_expired,
    ) = reply[:11]
    custom_text = _text(custom)
    return Change(
        state=PresenceState(
            user_id=user_id,
            status=_status(status),
            device_count=int(count),
            last_active_ms=_ms(last_active),
            chosen_status=_chosen(chosen),
            custom_status=custom_text,
            custom_status_expires_ms=_ms(custom_exp) if custom_text else None,
        ),
        changed=bool(int(changed)),
        seq=int(seq),
        grace=_text(grace),
        removed=int(removed),
        custom_expired=bool(int(custom_expired)),
    )


def never_seen(user_id: str, *, now_ms: int) -> PresenceState:
    """What a user with no stored state reads as."""
    return effective(
        user_id,
        now_ms=now_ms,
        live=0,
        status=None,
        last_active=None,
        chosen=None,
        custom=None,
        custom_exp=None,
        grace_until=None,
    )


def effective(
    user_id: str,
    *,
    now_ms: int,
    live: int,
    status: Any,
    last_active: Any,
    chosen: Any,
    custom: Any,
    custom_exp: Any,
    grace_until: Any,
) -> PresenceState:
    """What stored state means at ``now_ms``, before any sweep caught up: a user
    with no live connection is offline unless within the offline grace, and an
    expired custom status is gone. The scripts' ``settle`` decides the same."""
    stored = _status(status)
    grace = _ms(grace_until)
    held = live > 0 or (grace is not None and grace > now_ms)
    text = _text(custom)
    expires = _ms(custom_exp)
    if text and expires is not None and expires <= now_ms:
        text, expires = "", None
    return PresenceState(
        user_id=user_id,
        status=stored if stored in PRESENT and held else pb.PRESENCE_STATUS_OFFLINE,
        device_count=live,
        last_active_ms=_ms(last_active),
        chosen_status=_chosen(chosen),
        custom_status=text,
        custom_status_expires_ms=expires if text else None,
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
        self, user_id: str, connection_id: str, *, now_ms: int, expires_ms: int, ttl_ms: int
    ) -> Change:
        reply = await self._scripts.connect(
            keys=self._keys(user_id),
            args=[
                keys.index_member(self.tenant_id, user_id),
                connection_id,
                now_ms,
                expires_ms,
                ttl_ms,
            ],
        )
        return _change(user_id, reply)

    async def disconnect(
        self, user_id: str, connection_id: str, *, now_ms: int, ttl_ms: int, grace_ms: int
    ) -> Change:
        """Removes one connection; the last one starts the offline grace
        (``grace_ms`` > 0) or goes offline at once."""
        reply = await self._scripts.disconnect(
            keys=self._keys(user_id),
            args=[
                keys.index_member(self.tenant_id, user_id),
                connection_id,
                now_ms,
                ttl_ms,
                grace_ms,
            ],
        )
        return _change(user_id, reply)

    async def expire(self, user_id: str, *, now_ms: int, ttl_ms: int) -> Change:
        """Applies every deadline of the user that passed by ``now_ms``: expired
        connections, the end of the offline grace, an expired custom status."""
        reply = await self._scripts.expire(
            keys=self._keys(user_id),
            args=[keys.index_member(self.tenant_id, user_id), now_ms, ttl_ms],
        )
        return _change(user_id, reply)

    async def set_status(
        self,
        user_id: str,
        chosen: pb.PresenceStatus.ValueType,
        custom: CustomStatus | None,
        *,
        now_ms: int,
        ttl_ms: int,
    ) -> Change:
        """Stores the chosen status and, unless ``custom`` is None, the custom
        status (an empty text clears it)."""
        if custom is None:
            action, text, expires = "keep", "", ""
        elif not custom.text:
            action, text, expires = "clear", "", ""
        else:
            action, text = "set", custom.text
            expires = "" if custom.expires_ms is None else str(custom.expires_ms)
        reply = await self._scripts.set_status(
            keys=self._keys(user_id),
            args=[
                keys.index_member(self.tenant_id, user_id),
                now_ms,
                ttl_ms,
                int(chosen),
                action,
                text,
                expires,
            ],
        )
        return _change(user_id, reply)

    async def heartbeat(
        self,
        connections: Mapping[str, Sequence[str]],
        *,
        now_ms: int,
        expires_ms: int,
        last_active_every_ms: int,
    ) -> int:
        """Extends registered connections (user id -> connection ids); returns how
        many. A user's last_active_at moves at most once per ``last_active_every_ms``."""
        users = list(connections.items())
        refreshed = 0
        for start in range(0, len(users), _CHUNK):
            async with self._redis.pipeline(transaction=False) as pipe:
                for user_id, connection_ids in users[start : start + _CHUNK]:
                    await self._scripts.heartbeat(
                        keys=[
                            keys.conns_key(self.tenant_id, user_id),
                            keys.state_key(self.tenant_id, user_id),
                            keys.INDEX_KEY,
                        ],
                        args=[
                            keys.index_member(self.tenant_id, user_id),
                            expires_ms,
                            now_ms,
                            last_active_every_ms,
                            *connection_ids,
                        ],
                        client=pipe,
                    )
                replies = await pipe.execute()
            refreshed += sum(int(r) for r in replies)
        return refreshed

    async def erase(self, user_id: str) -> int:
        """Erasure: the user's connections, status and last-seen time; keys deleted."""
        return await _forget(
            self._redis,
            [keys.conns_key(self.tenant_id, user_id)],
            [keys.state_key(self.tenant_id, user_id)],
            [keys.index_member(self.tenant_id, user_id)],
        )

    async def erase_all(self) -> int:
        """Tenant erasure: every user's keys of this tenant, a SCAN page at a time."""
        deleted = 0
        batch: list[str] = []
        async for key in self._redis.scan_iter(
            match=keys.tenant_pattern(self.tenant_id), count=500
        ):
            batch.append(key if isinstance(key, str) else key.decode())
            if len(batch) >= 500:
                deleted += await self._forget_keys(batch)
                batch = []
        deleted += await self._forget_keys(batch)
        members = [
            m if isinstance(m, str) else m.decode()
            async for m, _ in self._redis.zscan_iter(
                keys.INDEX_KEY, match=keys.tenant_index_pattern(self.tenant_id)
            )
        ]
        await _forget(self._redis, [], [], members)
        return deleted

    async def _forget_keys(self, batch: list[str]) -> int:
        conns = [k for k in batch if k.endswith(":conns")]
        states = [k for k in batch if not k.endswith(":conns")]
        return await _forget(self._redis, conns, states, [])

    async def get_many(self, user_ids: Sequence[str], *, now_ms: int) -> list[PresenceState]:
        """Current presence; a user whose connections all expired reads as offline,
        and an expired custom status reads as none, even before the sweeper has
        caught up with them."""
        out: list[PresenceState] = []
        for start in range(0, len(user_ids), _CHUNK):
            chunk = user_ids[start : start + _CHUNK]
            async with self._redis.pipeline(transaction=False) as pipe:
                for user_id in chunk:
                    pipe.hmget(keys.state_key(self.tenant_id, user_id), _STATE_FIELDS)
                    pipe.zcount(keys.conns_key(self.tenant_id, user_id), f"({now_ms}", "+inf")
                replies = await pipe.execute()
            for i, user_id in enumerate(chunk):
                status, last_active, chosen, custom, custom_exp, grace_until = replies[2 * i]
                out.append(
                    effective(
                        user_id,
                        now_ms=now_ms,
                        live=int(replies[2 * i + 1]),
                        status=status,
                        last_active=last_active,
                        chosen=chosen,
                        custom=custom,
                        custom_exp=custom_exp,
                        grace_until=grace_until,
                    )
                )
        return out


async def _forget(redis: Redis, conns: list[str], states: list[str], members: list[str]) -> int:
    """Deletes users' keys and index entries, and takes their live connections
    and presence out of the fleet-wide counts."""
    if not conns and not states and not members:
        return 0
    live = [int(await redis.zcard(c)) for c in conns]
    async with redis.pipeline(transaction=True) as pipe:
        if conns or states:
            pipe.delete(*conns, *states)
        if members:
            pipe.zrem(keys.INDEX_KEY, *members)
        if sum(live):
            pipe.hincrby(keys.STATS_KEY, "connections", -sum(live))
            pipe.hincrby(keys.STATS_KEY, "present_users", -sum(1 for n in live if n))
        replies = await pipe.execute()
    return int(replies[0]) if conns or states else 0


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
