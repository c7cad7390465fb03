"""Tenants' data keys: handing them to the services that open sealed events,
rotation and its progress, and crypto-shredding (called by tenant erasure)."""

from __future__ import annotations

from confab_core.crypto import TenantKeys
from confab_core.errors import InvalidArgument, PermissionDenied
from confab_core.identity import ROLE_SERVICE, Caller
from conversation.storage.db import Database
from conversation.storage.keys import KeyInfo, KeyStatus

MAX_TENANT_ID = 128


def _tenant(tenant_id: str) -> str:
    if not tenant_id or len(tenant_id) > MAX_TENANT_ID:
        raise InvalidArgument("a tenant id is required", "invalid_tenant_id")
    return tenant_id


class KeyHandler:
    def __init__(self, db: Database) -> None:
        self._vault = db.keys

    async def tenant_keys(self, caller: Caller) -> TenantKeys:
        """The caller's own tenant's keys; services only (gateway, bot, notification
        with the service role: the token verifier refuses that role to any other)."""
        if ROLE_SERVICE not in caller.roles:
            raise PermissionDenied("only services may read data keys", "service_only")
        return await self._vault.keys(caller.tenant_id)

    async def rotate(self, tenant_id: str) -> KeyInfo:
        return await self._vault.rotate(_tenant(tenant_id))

    async def status(self, tenant_id: str) -> KeyStatus:
        return await self._vault.status(_tenant(tenant_id))

    async def shred(self, tenant_id: str) -> None:
        """Crypto-shreds the tenant: its keys are destroyed, so every sealed field,
        search token and backup of its data becomes unreadable. Irreversible."""
        await self._vault.shred(_tenant(tenant_id))
