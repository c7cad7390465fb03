"""The audit log's and moderation's JSON shapes (REST)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, StringConstraints

from confab_core import limits
from gateway.schemas import Id, Strict

SanctionKindName = Literal["mute", "ban"]
Reason = Annotated[str, StringConstraints(max_length=limits.MAX_REASON_CHARS)]
ReportReason = Annotated[str, StringConstraints(min_length=1, max_length=limits.MAX_REASON_CHARS)]
ResolutionName = Literal["dismiss", "delete_message", "mute_author", "ban_author"]


class AuditTarget(BaseModel):
    kind: str
    id: str


class AuditRecordOut(BaseModel):
    seq: int
    actor_id: str
    action: str
    target: AuditTarget
    conversation_id: str | None
    before: dict[str, Any]
    after: dict[str, Any]
    request_id: str | None
    client_ip: str | None
    at: datetime
    prev_hash: str
    hash: str


class AuditPageOut(BaseModel):
    records: list[AuditRecordOut]
    next_cursor: str | None


class BrokenLinkOut(BaseModel):
    seq: int
    reason: Literal["hash", "prev_hash", "missing", "malformed"] | str


class AuditVerifyOut(BaseModel):
    ok: bool
    checked: int
    first_seq: int
    last_seq: int
    broken: BrokenLinkOut | None


class SanctionIn(Strict):
    user_id: Id
    # Absent: until lifted.
    expires_at: datetime | None = None
    reason: Reason = ""


class SanctionOut(BaseModel):
    kind: SanctionKindName
    user_id: str
    # Absent: tenant-wide.
    conversation_id: str | None
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    reason: str


class SanctionListOut(BaseModel):
    sanctions: list[SanctionOut]


class ReportIn(Strict):
    reason: ReportReason


class QueueEntryOut(BaseModel):
    id: str
    kind: Literal["report", "pii"] | str
    conversation_id: str
    message_id: str
    author_id: str
    reporter_id: str | None
    reason: str
    pii_kinds: list[str]
    status: Literal["open", "resolved"] | str
    created_at: datetime
    resolution: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    # The message as it is now; absent once deleted.
    text: str | None
    message_deleted: bool


class QueuePageOut(BaseModel):
    entries: list[QueueEntryOut]
    next_cursor: str | None


class ResolveIn(Strict):
    action: ResolutionName
    # For mute_author and ban_author.
    expires_at: datetime | None = None
    tenant_wide: bool = False
