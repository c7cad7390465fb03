"""Ticket protos (support.proto) to the support desk's JSON shapes (support_schemas),
for REST answers and socket events alike. Apart from gateway.convert, which
imports it for ticket events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message as PbMessage
from google.protobuf.timestamp_pb2 import Timestamp

from confab.conversation.v1 import support_pb2 as spb
from gateway import support_schemas as ss


def enum_name(enum_type: Any, value: int, prefix: str) -> str:
    return str(enum_type.Name(value)).removeprefix(prefix).lower()


def dt(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def when(msg: PbMessage, field: str) -> datetime | None:
    return dt(getattr(msg, field)) if msg.HasField(field) else None


def _name(enum_type: object, value: int, prefix: str) -> str:
    return enum_name(enum_type, value, prefix)


def sla(s: spb.TicketSla) -> ss.SlaOut:
    return ss.SlaOut.model_validate(
        {
            "status": _name(spb.SlaStatus, s.status, "SLA_STATUS_"),
            "clocks": [
                {
                    "metric": _name(spb.SlaMetric, c.metric, "SLA_METRIC_"),
                    "due_at": when(c, "due_at"),
                    "warn_at": when(c, "warn_at"),
                    "met_at": when(c, "met_at"),
                    "breached": c.breached,
                    "paused": c.paused,
                    "remaining_seconds": c.remaining_seconds,
                }
                for c in s.clocks
            ],
        }
    )


def ticket(t: spb.Ticket) -> ss.TicketOut:
    return ss.TicketOut.model_validate(
        {
            "id": t.id,
            "conversation_id": t.conversation_id,
            "subject": t.subject,
            "category": t.category or None,
            "priority": _name(spb.TicketPriority, t.priority, "TICKET_PRIORITY_"),
            "tags": list(t.tags),
            "requester_id": t.requester_id,
            "requester_name": t.requester_name or None,
            "assignee_id": t.assignee_id or None,
            "assignee_name": t.assignee_name or None,
            "team_id": t.team_id or None,
            "context": {"kind": t.context.kind, "id": t.context.id}
            if t.HasField("context")
            else None,
            "status": _name(spb.TicketStatus, t.status, "TICKET_STATUS_"),
            "escalated": t.escalated,
            "escalated_at": when(t, "escalated_at"),
            "platform": t.platform,
            "source": {
                "conversation_id": t.source.conversation_id,
                "message_id": t.source.message_id,
            }
            if t.HasField("source")
            else None,
            "created_at": dt(t.created_at),
            "updated_at": dt(t.updated_at),
            "queued_at": when(t, "queued_at"),
            "first_response_at": when(t, "first_response_at"),
            "resolved_at": when(t, "resolved_at"),
            "closed_at": when(t, "closed_at"),
            "sla": sla(t.sla) if t.HasField("sla") and t.sla.status else None,
            "version": t.version,
            "handoff_reason": _name(spb.HandoffReason, t.handoff_reason, "HANDOFF_REASON_")
            if t.handoff_reason
            else None,
            "handoff_summary": t.handoff_summary or None,
            "handed_off_at": when(t, "handed_off_at"),
            "agent_id": t.agent_id or None,
        }
    )


def ticket_json(t: spb.Ticket) -> dict[str, Any]:
    return ticket(t).model_dump(mode="json")


def status_name(value: int) -> str | None:
    return enum_name(spb.TicketStatus, value, "TICKET_STATUS_") if value else None


def priority_name(value: int) -> str | None:
    return enum_name(spb.TicketPriority, value, "TICKET_PRIORITY_") if value else None


def metric_name(value: int) -> str | None:
    return enum_name(spb.SlaMetric, value, "SLA_METRIC_") if value else None
