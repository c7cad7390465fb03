"""What the jobs need from a tenant's compliance policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

ERASE_DELETE = "delete"
ERASE_ANONYMISE = "anonymise"


@dataclass(frozen=True)
class Retention:
    """Days to keep messages (0: forever), and archived conversations inactive
    for that many days go whole (0: no rule of their own)."""

    message_days: int = 0
    archived_days: int = 0


class CompliancePolicies(Protocol):
    async def retention(self, tenant_id: str) -> Retention: ...

    async def erasure_mode(self, tenant_id: str) -> str: ...
