"""The per-process view of each tenant's role matrix that every access check
reads."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from cachetools import TTLCache

from confab_core.clock import Clock
from confab_core.identity import Caller
from conversation.handlers import rolematrix
from conversation.storage.db import Database

Matrix = Mapping[str, frozenset[str]]

# A settings change reaches every replica within this many seconds (plus one
# read) even when
# the TenantSettingsChanged event is late or lost; the event drops the entry at
# once (``invalidate``).
MATRIX_CACHE_SECONDS = 0.5
_MAX_TENANTS = 10_000


class RoleMatrixCache:
    """Almost every call checks a permission: each tenant's matrix is read at
    most once per ``ttl`` per process, and concurrent misses share one read."""

    def __init__(self, db: Database, clock: Clock, ttl: float = MATRIX_CACHE_SECONDS) -> None:
        self._db = db
        self._cache: TTLCache[str, Matrix] = TTLCache(_MAX_TENANTS, ttl, timer=clock.monotonic)
        self._reading: dict[str, asyncio.Future[Matrix]] = {}

    async def matrix(self, tenant_id: str) -> Matrix:
        hit = self._cache.get(tenant_id)
        if hit is not None:
            return hit
        pending = self._reading.get(tenant_id)
        if pending is None:
            pending = asyncio.ensure_future(self._read(tenant_id))
            self._reading[tenant_id] = pending
            pending.add_done_callback(lambda done: self._forget(tenant_id, done))
        return await asyncio.shield(pending)

    async def granted(self, caller: Caller) -> frozenset[str]:
        """The permissions the caller holds in its tenant now."""
        return rolematrix.granted(await self.matrix(caller.tenant_id), caller)

    def invalidate(self, tenant_id: str) -> None:
        """The tenant's settings changed: the next check reads them again. A read
        already under way is not cached, since it may predate the change."""
        self._cache.pop(tenant_id, None)
        self._reading.pop(tenant_id, None)

    async def _read(self, tenant_id: str) -> Matrix:
        overrides = await self._db.role_permissions(tenant_id).overrides()
        return rolematrix.effective(overrides)

    def _forget(self, tenant_id: str, done: asyncio.Future[Matrix]) -> None:
        if self._reading.get(tenant_id) is not done:
            return
        del self._reading[tenant_id]
        if not done.cancelled() and done.exception() is None:
            self._cache[tenant_id] = done.result()
