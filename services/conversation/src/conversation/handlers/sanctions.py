"""What mutes and bans forbid, and the per-process view sends check them against."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from confab_core.clock import Clock
from confab_core.errors import PermissionDenied
from conversation.storage.db import TenantStore
from conversation.storage.moderation import BAN, MUTE, TENANT_WIDE, Sanction

__all__ = ["TENANT_WIDE", "SanctionCache", "banned", "refuse_banned", "refuse_sanctioned"]


def banned() -> PermissionDenied:
    return PermissionDenied("you are banned here", "banned")


def refuse_sanctioned(sanctions: Iterable[Sanction], now: datetime) -> None:
    """A ban before a mute: a banned user is told they are banned. Expired
    sanctions are read as absent, so an expiry needs nothing to run at its time."""
    active = {s.kind for s in sanctions if s.active(now)}
    if BAN in active:
        raise banned()
    if MUTE in active:
        raise PermissionDenied("you are muted here", "muted")


def refuse_banned(sanctions: Iterable[Sanction], now: datetime) -> None:
    """Joining or being added: only a ban stands in the way (a muted user may be
    added, and reads)."""
    if any(s.kind == BAN and s.active(now) for s in sanctions):
        raise banned()


@dataclass(frozen=True)
class _Tenant:
    until: float
    # Active sanctions by user; None when the tenant has too many to keep here.
    by_user: dict[str, list[Sanction]] | None


class SanctionCache:
    """Every send, edit and reaction asks whether its author is muted or banned.
    Most tenants have no sanction at all, and a query per send cost about as
    much CPU as the rest of the checks before it (measured: see
    docs/security.md#moderation), so each process keeps a tenant's active
    sanctions for ``ttl`` seconds: one read per tenant and period, not per send.

    A sanction imposed or lifted through this process drops its tenant's entry
    at once; another replica sees it within ``ttl``. Joins and adds do not use
    this view: they read bans from the database, so a ban is never late there.
    A tenant with more than ``max_per_tenant`` active sanctions is read per call.
    """

    def __init__(
        self,
        clock: Clock,
        ttl: float = 2.0,
        max_per_tenant: int = 1000,
        max_tenants: int = 10_000,
    ) -> None:
        self._clock = clock
        self._ttl = ttl
        self._max = max_per_tenant
        self._max_tenants = max_tenants
        self._tenants: OrderedDict[str, _Tenant] = OrderedDict()

    async def against(
        self, store: TenantStore, tenant_id: str, user_id: str, conversation_id: str
    ) -> list[Sanction]:
        """The sanctions on ``user_id`` that reach ``conversation_id``."""
        entry = self._tenants.get(tenant_id)
        if entry is None or entry.until <= self._clock.monotonic():
            entry = await self._load(store, tenant_id)
        if entry.by_user is None:
            return await store.sanctions.against(user_id, conversation_id)
        return [
            s
            for s in entry.by_user.get(user_id, ())
            if s.conversation_id in (conversation_id, TENANT_WIDE)
        ]

    def forget(self, tenant_id: str) -> None:
        self._tenants.pop(tenant_id, None)

    async def _load(self, store: TenantStore, tenant_id: str) -> _Tenant:
        until = self._clock.monotonic() + self._ttl
        found = await store.sanctions.active(self._clock.now(), self._max + 1)
        by_user: dict[str, list[Sanction]] | None = None
        if len(found) <= self._max:
            by_user = {}
            for s in found:
                by_user.setdefault(s.user_id, []).append(s)
        entry = _Tenant(until, by_user)
        self._tenants[tenant_id] = entry
        self._tenants.move_to_end(tenant_id)
        if len(self._tenants) > self._max_tenants:
            self._tenants.popitem(last=False)
        return entry
