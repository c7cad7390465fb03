"""What the jobs need from a tenant's compliance policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from conversation.handlers.policy import PolicyHandler

ERASE_DELETE = "delete"
ERASE_ANONYMISE = "anonymise"


@dataclass(frozen=True)
class Retention:
    """Days to keep messages; archived conversations inactive that long go whole,
    and so do conversations without any activity for ``inactive_days``; audit
    records are kept ``audit_days``. 0 everywhere: forever."""

    message_days: int = 0
    archived_days: int = 0
    inactive_days: int = 0
    audit_days: int = 0

    @property
    def empty(self) -> bool:
        return not (
            self.message_days or self.archived_days or self.inactive_days or self.audit_days
        )


class CompliancePolicies(Protocol):
    async def retention(self, tenant_id: str) -> Retention: ...

    async def erasure_mode(self, tenant_id: str) -> str: ...


class TenantPolicies:
    """The tenant policy store (``PolicyHandler``, cached reads) seen as the jobs need it."""

    def __init__(self, policies: PolicyHandler) -> None:
        self._policies = policies

    async def retention(self, tenant_id: str) -> Retention:
        p = await self._policies.current(tenant_id)
        return Retention(
            message_days=p.retention_message_days,
            archived_days=p.retention_archived_days,
            inactive_days=p.retention_inactive_days,
            audit_days=p.audit_retention_days,
        )

    async def erasure_mode(self, tenant_id: str) -> str:
        return (await self._policies.current(tenant_id)).erasure_mode
