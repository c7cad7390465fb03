"""Where a service gets a tenant's keys from, and the in-memory cache in front of it."""

from __future__ import annotations

import asyncio
from typing import Protocol

from cachetools import TTLCache

from confab_core.clock import Clock, SystemClock
from confab_core.crypto.envelope import TenantKeys

DEFAULT_TTL_SECONDS = 300.0
DEFAULT_MAX_TENANTS = 10_000


class KeySource(Protocol):
    async def keys(self, tenant_id: str) -> TenantKeys:
        """The tenant's keys; raises ``KeysShreddedError`` once they were destroyed."""
        ...


class CachingKeySource:
    """Keeps unwrapped keys in memory for ``ttl_seconds``, so a hot path pays a dict lookup.

    Concurrent misses for one tenant share a single fetch (a cold pod taking
    traffic would otherwise unwrap the same key once per request). The TTL bounds
    how long a pod keeps using keys after a rotation elsewhere (it can still read
    everything: old keys stay in ``by_id`` until re-encryption ends) or after a
    shred elsewhere (``invalidate`` makes it immediate in the pod that shredded).
    """

    def __init__(
        self,
        inner: KeySource,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        max_tenants: int = DEFAULT_MAX_TENANTS,
        clock: Clock | None = None,
    ) -> None:
        self._inner = inner
        timer = (clock or SystemClock()).monotonic
        self._cache: TTLCache[str, TenantKeys] = TTLCache(
            maxsize=max_tenants, ttl=ttl_seconds, timer=timer
        )
        self._pending: dict[str, asyncio.Future[TenantKeys]] = {}

    async def keys(self, tenant_id: str) -> TenantKeys:
        hit = self._cache.get(tenant_id)
        if hit is not None:
            return hit
        pending = self._pending.get(tenant_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[TenantKeys] = asyncio.get_running_loop().create_future()
        self._pending[tenant_id] = future
        try:
            found = await self._inner.keys(tenant_id)
        except BaseException as exc:
            future.set_exception(exc)
            # Nobody else may be waiting: retrieve it so asyncio does not log it as lost.
            future.exception()
            raise
        else:
            self._cache[tenant_id] = found
            future.set_result(found)
            return found
        finally:
            del self._pending[tenant_id]

    def invalidate(self, tenant_id: str) -> None:
        self._cache.pop(tenant_id, None)
