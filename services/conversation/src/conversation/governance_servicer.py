"""gRPC servicers for the audit log and moderation: translation only."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from confab.conversation.v1 import governance_pb2 as gpb
from confab.conversation.v1 import governance_pb2_grpc as gpb_grpc
from confab_core.errors import InvalidArgument
from confab_core.grpcx import Ctx
from confab_core.identity import current_caller
from conversation.convert import ts
from conversation.handlers.audit import AuditTrail
from conversation.handlers.moderation import ModerationHandler, ReviewItem
from conversation.storage.audit import AuditRecord
from conversation.storage.moderation import BAN, MUTE, Sanction

_KINDS: dict[int, str] = {gpb.SANCTION_KIND_MUTE: MUTE, gpb.SANCTION_KIND_BAN: BAN}
_KIND_VALUES: dict[str, gpb.SanctionKind.ValueType] = {
    MUTE: gpb.SANCTION_KIND_MUTE,
    BAN: gpb.SANCTION_KIND_BAN,
}


def _time(present: bool, value: Timestamp) -> datetime | None:
    """Timestamps are optional: unset means none (no expiry, no bound)."""
    return value.ToDatetime(tzinfo=UTC) if present else None


def _kind(value: int) -> str:
    kind = _KINDS.get(value)
    if kind is None:
        raise InvalidArgument("a sanction is mute or ban", "invalid_sanction_kind")
    return kind


def record(r: AuditRecord) -> gpb.AuditRecord:
    e = r.entry
    return gpb.AuditRecord(
        seq=r.seq,
        actor_id=e.actor_id,
        action=e.action,
        target_kind=e.target.kind,
        target_id=e.target.id,
        conversation_id=e.conversation_id,
        before_json=json.dumps(e.before, sort_keys=True),
        after_json=json.dumps(e.after, sort_keys=True),
        request_id=e.request_id,
        client_ip=e.client_ip,
        at=ts(r.at),
        prev_hash=r.prev_hash,
        hash=r.hash,
    )


def sanction(s: Sanction) -> gpb.Sanction:
    return gpb.Sanction(
        kind=_KIND_VALUES[s.kind],
        user_id=s.user_id,
        conversation_id=s.conversation_id,
        created_by=s.created_by,
        created_at=ts(s.created_at),
        expires_at=ts(s.expires_at),
        reason=s.reason,
    )


def queue_entry(item: ReviewItem) -> gpb.QueueEntry:
    e, m = item.entry, item.message
    deleted = m is None or m.deleted
    return gpb.QueueEntry(
        id=e.id,
        kind=e.kind,
        conversation_id=e.conversation_id,
        message_id=e.message_id,
        author_id=e.author_id,
        reporter_id=e.reporter_id,
        reason=e.reason,
        pii_kinds=list(e.pii_kinds),
        status=e.status,
        created_at=ts(e.created_at),
        resolution=e.resolution,
        resolved_by=e.resolved_by,
        resolved_at=ts(e.resolved_at),
        text="" if deleted or m is None else m.text,
        message_deleted=deleted,
    )


class AuditServicer(gpb_grpc.AuditServiceServicer):
    def __init__(self, trail: AuditTrail) -> None:
        self._trail = trail

    async def ListAuditRecords(
        self, request: gpb.ListAuditRecordsRequest, context: Ctx
    ) -> gpb.ListAuditRecordsResponse:
        before_seq = 0
        if request.page_token:
            if not request.page_token.isdigit() or len(request.page_token) > 18:
                raise InvalidArgument("page token is not valid for this list", "invalid_cursor")
            before_seq = int(request.page_token)
        limit = request.limit
        records = await self._trail.query(
            current_caller(),
            actor_id=request.actor_id,
            action=request.action,
            target_kind=request.target_kind,
            target_id=request.target_id,
            since=_time(request.HasField("since"), request.since),
            until=_time(request.HasField("until"), request.until),
            before_seq=before_seq,
            limit=limit,
        )
        full = limit > 0 and len(records) == limit
        return gpb.ListAuditRecordsResponse(
            records=[record(r) for r in records],
            next_page_token=str(records[-1].seq) if full and records[-1].seq > 1 else "",
        )

    async def VerifyAudit(
        self, request: gpb.VerifyAuditRequest, context: Ctx
    ) -> gpb.VerifyAuditResponse:
        v = await self._trail.verify(current_caller())
        return gpb.VerifyAuditResponse(
            ok=v.broken is None,
            checked=v.checked,
            first_seq=v.first_seq,
            last_seq=v.last_seq,
            broken_seq=v.broken.seq if v.broken else 0,
            broken_reason=v.broken.reason if v.broken else "",
        )


class ModerationServicer(gpb_grpc.ModerationServiceServicer):
    def __init__(self, handler: ModerationHandler) -> None:
        self._h = handler

    async def Sanction(self, request: gpb.SanctionRequest, context: Ctx) -> gpb.SanctionResponse:
        done = await self._h.sanction(
            current_caller(),
            kind=_kind(request.kind),
            user_id=request.user_id,
            conversation_id=request.conversation_id,
            expires_at=_time(request.HasField("expires_at"), request.expires_at),
            reason=request.reason,
        )
        return gpb.SanctionResponse(sanction=sanction(done))

    async def LiftSanction(
        self, request: gpb.LiftSanctionRequest, context: Ctx
    ) -> gpb.LiftSanctionResponse:
        await self._h.lift(
            current_caller(),
            kind=_kind(request.kind),
            user_id=request.user_id,
            conversation_id=request.conversation_id,
        )
        return gpb.LiftSanctionResponse()

    async def ListSanctions(
        self, request: gpb.ListSanctionsRequest, context: Ctx
    ) -> gpb.ListSanctionsResponse:
        found = await self._h.sanctions(
            current_caller(),
            conversation_id=request.conversation_id,
            user_id=request.user_id,
            limit=request.limit,
        )
        return gpb.ListSanctionsResponse(sanctions=[sanction(s) for s in found])

    async def ReportMessage(
        self, request: gpb.ReportMessageRequest, context: Ctx
    ) -> gpb.ReportMessageResponse:
        item = await self._h.report(
            current_caller(),
            conversation_id=request.conversation_id,
            message_id=request.message_id,
            reason=request.reason,
        )
        return gpb.ReportMessageResponse(entry=queue_entry(item))

    async def ListQueue(self, request: gpb.ListQueueRequest, context: Ctx) -> gpb.ListQueueResponse:
        items, token = await self._h.queue(
            current_caller(),
            status=request.status,
            kind=request.kind,
            limit=request.limit,
            page_token=request.page_token,
        )
        return gpb.ListQueueResponse(entries=[queue_entry(i) for i in items], next_page_token=token)

    async def ResolveQueueEntry(
        self, request: gpb.ResolveQueueEntryRequest, context: Ctx
    ) -> gpb.ResolveQueueEntryResponse:
        item = await self._h.resolve(
            current_caller(),
            entry_id=request.entry_id,
            action=request.action,
            expires_at=_time(request.HasField("expires_at"), request.expires_at),
            tenant_wide=request.tenant_wide,
        )
        return gpb.ResolveQueueEntryResponse(entry=queue_entry(item))
