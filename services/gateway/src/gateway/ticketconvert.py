"""Ticket protos (support.proto) to the JSON shapes of platform_schemas."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message as PbMessage

from confab.conversation.v1 import support_pb2 as spb
from gateway import schemas
from gateway.platform_schemas import MessageRefOut, SlaClockOut, TicketOut, TicketSlaOut

# Not gateway.convert's helpers: convert imports this module for ticket events.


def enum_name(enum_type: Any, value: int, prefix: str) -> Any:
    return str(enum_type.Name(value)).removeprefix(prefix).lower()


def _enum(enum_type: Any, value: int, prefix: str) -> Any:
    return enum_name(enum_type, value, prefix) if value else None


def _dt_or_none(msg: PbMessage, field: str) -> datetime | None:
    return getattr(msg, field).ToDatetime(tzinfo=UTC) if msg.HasField(field) else None


def sla(s: spb.TicketSla) -> TicketSlaOut | None:
    if not s.status:
        return None
    return TicketSlaOut(
        status=enum_name(spb.SlaStatus, s.status, "SLA_STATUS_"),
        clocks=[
            SlaClockOut(
                metric=enum_name(spb.SlaMetric, c.metric, "SLA_METRIC_"),
                due_at=_dt_or_none(c, "due_at"),
                warn_at=_dt_or_none(c, "warn_at"),
                met_at=_dt_or_none(c, "met_at"),
                breached=c.breached,
                paused=c.paused,
                remaining_seconds=c.remaining_seconds,
            )
            for c in s.clocks
            if c.metric
        ],
    )


def ticket(t: spb.Ticket) -> TicketOut:
    return TicketOut(
        id=t.id,
        conversation_id=t.conversation_id,
        subject=t.subject,
        category=t.category,
        priority=_enum(spb.TicketPriority, t.priority, "TICKET_PRIORITY_"),
        tags=list(t.tags),
        requester_id=t.requester_id,
        assignee_id=t.assignee_id,
        team_id=t.team_id,
        context=schemas.ContextLink(kind=t.context.kind, id=t.context.id)
        if t.HasField("context") and t.context.kind and t.context.id
        else None,
        status=_enum(spb.TicketStatus, t.status, "TICKET_STATUS_"),
        escalated=t.escalated,
        escalated_at=_dt_or_none(t, "escalated_at"),
        platform=t.platform,
        source=MessageRefOut(
            conversation_id=t.source.conversation_id, message_id=t.source.message_id
        )
        if t.HasField("source")
        else None,
        created_at=_dt_or_none(t, "created_at"),
        updated_at=_dt_or_none(t, "updated_at"),
        queued_at=_dt_or_none(t, "queued_at"),
        first_response_at=_dt_or_none(t, "first_response_at"),
        resolved_at=_dt_or_none(t, "resolved_at"),
        closed_at=_dt_or_none(t, "closed_at"),
        sla=sla(t.sla) if t.HasField("sla") else None,
        version=t.version,
        tenant_id=t.tenant_id,
        requester_name=t.requester_name,
        assignee_name=t.assignee_name,
    )


def ticket_json(t: spb.Ticket) -> dict[str, Any]:
    return ticket(t).model_dump(mode="json")


def status_name(value: int) -> str | None:
    return _enum(spb.TicketStatus, value, "TICKET_STATUS_")  # type: ignore[no-any-return]


def priority_name(value: int) -> str | None:
    return _enum(spb.TicketPriority, value, "TICKET_PRIORITY_")  # type: ignore[no-any-return]


def metric_name(value: int) -> str | None:
    return _enum(spb.SlaMetric, value, "SLA_METRIC_")  # type: ignore[no-any-return]
