"""Platform staff: who they are, and the caller they act as inside one tenant.

Platform staff (role super_admin of the platform tenant, see confab_core.identity)
hold no rights in any tenant. The few platform operations (escalated tickets,
tenant erasure) find their tenant first and then act through that tenant's
stores as a caller re-scoped to it: role super_admin only, never tenant_admin, so
every tenant rule (access.py) treats it as a stranger unless an operation grants it
something on purpose.
"""

from __future__ import annotations

from confab_core.errors import InvalidArgument, PermissionDenied
from confab_core.identity import (
    PLATFORM_TENANT_ID,
    PLATFORM_USER_PREFIX,
    ROLE_SUPER_ADMIN,
    Caller,
)
from confab_core.limits import MAX_ID_CHARS


def require_platform_staff(caller: Caller) -> Caller:
    if not caller.platform_staff:
        raise PermissionDenied("platform staff only", "forbidden")
    return caller


def valid_tenant_id(tenant_id: str) -> str:
    if not tenant_id or len(tenant_id) > MAX_ID_CHARS or tenant_id == PLATFORM_TENANT_ID:
        raise InvalidArgument(
            f"tenant_id is required (at most {MAX_ID_CHARS} characters, not the platform)",
            "invalid_tenant_id",
        )
    return tenant_id


def in_tenant(staff: Caller, tenant_id: str) -> Caller:
    """The staff member acting inside ``tenant_id``: super_admin only, under a user
    id no tenant token can name (auth refuses the prefix), so a tenant user with
    the same id neither owns the staff member's messages nor is mistaken for them."""
    require_platform_staff(staff)
    return Caller(
        tenant_id=valid_tenant_id(tenant_id),
        user_id=PLATFORM_USER_PREFIX + staff.user_id,
        roles=frozenset({ROLE_SUPER_ADMIN}),
        display_name=staff.display_name,
        email=staff.email,
    )
