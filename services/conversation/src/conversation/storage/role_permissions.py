"""The role-permission part of a tenant's settings document (``tenant_settings``,
written by the settings handler): read alone, on every cache miss of the
permission checks."""

from __future__ import annotations

from collections.abc import Mapping

from confab_core.mongo import TenantCollection

TENANT_SETTINGS_COLLECTION = "tenant_settings"


class RolePermissionRepo:
    """One tenant's role overrides; empty while the tenant has set none."""

    def __init__(self, col: TenantCollection) -> None:
        self._col = col

    async def overrides(self) -> Mapping[str, tuple[str, ...]]:
        """Each role the tenant configured, with the permissions it holds."""
        doc = await self._col.find_one({}, projection={"role_permissions": 1})
        stored = {} if doc is None else doc.get("role_permissions") or {}
        return {str(role): tuple(str(p) for p in perms) for role, perms in stored.items()}
