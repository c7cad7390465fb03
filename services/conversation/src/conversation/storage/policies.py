"""The tenant compliance policy: one document per tenant in ``tenant_policies``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pymongo.errors import DuplicateKeyError

from confab_core.mongo import Doc, TenantCollection

POLICY_COLLECTION = "tenant_policies"


@dataclass(frozen=True, slots=True)
class PolicyRecord:
    """A tenant's policy as stored; modes are the lower-case names the API uses."""

    pii_mode: str
    pii_kinds: tuple[str, ...]
    mask_bot_prompts: bool
    retention_message_days: int
    retention_archived_days: int
    retention_inactive_days: int
    audit_retention_days: int
    erasure_mode: str
    # None and 0 while the tenant has never changed its policy.
    updated_at: datetime | None
    version: int


def _document(p: PolicyRecord) -> Doc:
    return {
        "pii_mode": p.pii_mode,
        "pii_kinds": list(p.pii_kinds),
        "mask_bot_prompts": p.mask_bot_prompts,
        "retention_message_days": p.retention_message_days,
        "retention_archived_days": p.retention_archived_days,
        "retention_inactive_days": p.retention_inactive_days,
        "audit_retention_days": p.audit_retention_days,
        "erasure_mode": p.erasure_mode,
        "updated_at": p.updated_at,
        "version": p.version,
    }


def _record(doc: Doc) -> PolicyRecord:
    return PolicyRecord(
        pii_mode=str(doc["pii_mode"]),
        pii_kinds=tuple(str(k) for k in doc.get("pii_kinds", [])),
        mask_bot_prompts=bool(doc.get("mask_bot_prompts", False)),
        retention_message_days=int(doc.get("retention_message_days", 0)),
        retention_archived_days=int(doc.get("retention_archived_days", 0)),
        retention_inactive_days=int(doc.get("retention_inactive_days", 0)),
        audit_retention_days=int(doc.get("audit_retention_days", 0)),
        erasure_mode=str(doc["erasure_mode"]),
        updated_at=doc.get("updated_at"),
        version=int(doc["version"]),
    )


class PolicyRepo:
    """One tenant's policy document; absent until the tenant first changes it."""

    def __init__(self, col: TenantCollection) -> None:
        self._col = col

    async def get(self) -> PolicyRecord | None:
        doc = await self._col.find_one({"_id": self._col.tenant_id})
        return None if doc is None else _record(doc)

    async def replace_if_version(self, policy: PolicyRecord, expected_version: int) -> bool:
        """Stores ``policy`` if the stored version is still ``expected_version``
        (0: none stored yet); False when another update came first."""
        try:
            result = await self._col.update_one(
                {"_id": self._col.tenant_id, "version": expected_version},
                {"$set": _document(policy)},
                upsert=expected_version == 0,
            )
        except DuplicateKeyError:
            # The upsert of a first version raced another first version.
            return False
        return result.matched_count == 1 or result.upserted_id is not None
