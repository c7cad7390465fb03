"""REST calls of the audit log and moderation: rate limits, then translation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, cast

from google.protobuf.timestamp_pb2 import Timestamp

from confab.conversation.v1 import governance_pb2 as gpb
from confab_core.identity import Caller
from gateway import governance_schemas as gs
from gateway.clients.governance import AuditClient, ModerationClient
from gateway.ratelimit import Action, RateLimiter

_KIND = {"mute": gpb.SANCTION_KIND_MUTE, "ban": gpb.SANCTION_KIND_BAN}
_KIND_NAME: dict[int, gs.SanctionKindName] = {
    gpb.SANCTION_KIND_MUTE: "mute",
    gpb.SANCTION_KIND_BAN: "ban",
}


def _ts(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    out = Timestamp()
    # A time without a zone is read as UTC.
    out.FromDatetime(value if value.tzinfo else value.replace(tzinfo=UTC))
    return out


def _dt(ts: Timestamp, present: bool) -> datetime | None:
    return ts.ToDatetime(UTC) if present else None


def _fields(raw: str) -> dict[str, Any]:
    value = json.loads(raw) if raw else {}
    return cast(dict[str, Any], value) if isinstance(value, dict) else {}


def record(r: gpb.AuditRecord) -> gs.AuditRecordOut:
    return gs.AuditRecordOut(
        seq=r.seq,
        actor_id=r.actor_id,
        action=r.action,
        target=gs.AuditTarget(kind=r.target_kind, id=r.target_id),
        conversation_id=r.conversation_id or None,
        before=_fields(r.before_json),
        after=_fields(r.after_json),
        request_id=r.request_id or None,
        client_ip=r.client_ip or None,
        at=r.at.ToDatetime(UTC),
        prev_hash=r.prev_hash,
        hash=r.hash,
    )


def sanction(s: gpb.Sanction) -> gs.SanctionOut:
    return gs.SanctionOut(
        kind=_KIND_NAME[s.kind],
        user_id=s.user_id,
        conversation_id=s.conversation_id or None,
        created_by=s.created_by,
        created_at=s.created_at.ToDatetime(UTC),
        expires_at=_dt(s.expires_at, s.HasField("expires_at")),
        reason=s.reason,
    )


def entry(e: gpb.QueueEntry) -> gs.QueueEntryOut:
    return gs.QueueEntryOut(
        id=e.id,
        kind=e.kind,
        conversation_id=e.conversation_id,
        message_id=e.message_id,
        author_id=e.author_id,
        reporter_id=e.reporter_id or None,
        reason=e.reason,
        pii_kinds=list(e.pii_kinds),
        status=e.status,
        created_at=e.created_at.ToDatetime(UTC),
        resolution=e.resolution or None,
        resolved_by=e.resolved_by or None,
        resolved_at=_dt(e.resolved_at, e.HasField("resolved_at")),
        text=None if e.message_deleted else e.text,
        message_deleted=e.message_deleted,
    )


class GovernanceOps:
    def __init__(
        self, audit: AuditClient, moderation: ModerationClient, limiter: RateLimiter
    ) -> None:
        self._audit = audit
        self._moderation = moderation
        self._limiter = limiter

    async def audit_records(
        self,
        caller: Caller,
        *,
        actor: str,
        action: str,
        target_kind: str,
        target_id: str,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        cursor: str,
    ) -> gs.AuditPageOut:
        await self._limiter.check(caller, Action.AUDIT_READ)
        resp = await self._audit.list_records(
            caller,
            gpb.ListAuditRecordsRequest(
                actor_id=actor,
                action=action,
                target_kind=target_kind,
                target_id=target_id,
                since=_ts(since),
                until=_ts(until),
                limit=limit,
                page_token=cursor,
            ),
        )
        return gs.AuditPageOut(
            records=[record(r) for r in resp.records], next_cursor=resp.next_page_token or None
        )

    async def verify_audit(self, caller: Caller) -> gs.AuditVerifyOut:
        await self._limiter.check(caller, Action.AUDIT_VERIFY)
        resp = await self._audit.verify(caller)
        return gs.AuditVerifyOut(
            ok=resp.ok,
            checked=resp.checked,
            first_seq=resp.first_seq,
            last_seq=resp.last_seq,
            broken=None
            if resp.ok
            else gs.BrokenLinkOut(seq=resp.broken_seq, reason=resp.broken_reason),
        )

    async def sanction(
        self, caller: Caller, kind: str, conversation_id: str, body: gs.SanctionIn
    ) -> gs.SanctionOut:
        await self._limiter.check(caller, Action.MODERATE)
        resp = await self._moderation.sanction(
            caller,
            gpb.SanctionRequest(
                kind=_KIND[kind],
                user_id=body.user_id,
                conversation_id=conversation_id,
                expires_at=_ts(body.expires_at),
                reason=body.reason,
            ),
        )
        return sanction(resp.sanction)

    async def lift(self, caller: Caller, kind: str, conversation_id: str, user_id: str) -> None:
        await self._limiter.check(caller, Action.MODERATE)
        await self._moderation.lift(
            caller,
            gpb.LiftSanctionRequest(
                kind=_KIND[kind], user_id=user_id, conversation_id=conversation_id
            ),
        )

    async def sanctions(
        self, caller: Caller, conversation_id: str, user_id: str, limit: int
    ) -> gs.SanctionListOut:
        await self._limiter.check(caller, Action.AUDIT_READ)
        resp = await self._moderation.list_sanctions(
            caller,
            gpb.ListSanctionsRequest(conversation_id=conversation_id, user_id=user_id, limit=limit),
        )
        return gs.SanctionListOut(sanctions=[sanction(s) for s in resp.sanctions])

    async def report(
        self, caller: Caller, conversation_id: str, message_id: str, reason: str
    ) -> gs.QueueEntryOut:
        await self._limiter.check(caller, Action.REPORT)
        resp = await self._moderation.report(
            caller,
            gpb.ReportMessageRequest(
                conversation_id=conversation_id, message_id=message_id, reason=reason
            ),
        )
        return entry(resp.entry)

    async def queue(
        self, caller: Caller, status: str, kind: str, limit: int, cursor: str
    ) -> gs.QueuePageOut:
        await self._limiter.check(caller, Action.AUDIT_READ)
        resp = await self._moderation.queue(
            caller, gpb.ListQueueRequest(status=status, kind=kind, limit=limit, page_token=cursor)
        )
        return gs.QueuePageOut(
            entries=[entry(e) for e in resp.entries], next_cursor=resp.next_page_token or None
        )

    async def resolve(self, caller: Caller, entry_id: str, body: gs.ResolveIn) -> gs.QueueEntryOut:
        await self._limiter.check(caller, Action.MODERATE)
        resp = await self._moderation.resolve(
            caller,
            gpb.ResolveQueueEntryRequest(
                entry_id=entry_id,
                action=body.action,
                expires_at=_ts(body.expires_at),
                tenant_wide=body.tenant_wide,
            ),
        )
        return entry(resp.entry)
