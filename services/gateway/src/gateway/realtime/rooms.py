"""Room names. Each carries the tenant, so no room spans two tenants."""

from confab_core.identity import PLATFORM_TENANT_ID


def conversation(tenant_id: str, conversation_id: str) -> str:
    return f"conv:{tenant_id}:{conversation_id}"


def user(tenant_id: str, user_id: str) -> str:
    return f"user:{tenant_id}:{user_id}"


def staff(tenant_id: str) -> str:
    """Agents and admins of a tenant: they see the whole roster's presence."""
    return f"staff:{tenant_id}"


def admins(tenant_id: str) -> str:
    """Tenant admins: they hear SLA warnings and breaches of every ticket."""
    return f"admins:{tenant_id}"


def platform() -> str:
    """Platform staff (of the platform tenant): they hear every tenant's escalations."""
    return f"platform:{PLATFORM_TENANT_ID}"
