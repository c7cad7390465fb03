"""Room names. Each carries the tenant, so no room spans two tenants."""


def conversation(tenant_id: str, conversation_id: str) -> str:
    return f"conv:{tenant_id}:{conversation_id}"


def user(tenant_id: str, user_id: str) -> str:
    return f"user:{tenant_id}:{user_id}"


def staff(tenant_id: str) -> str:
    """Agents and admins of a tenant: they see the whole roster's presence."""
    return f"staff:{tenant_id}"
