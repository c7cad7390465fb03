"""JSON shapes of tickets as sockets and platform staff see them.

Field names are the Ticket proto's (support.proto), in snake_case; enums are
their value names in lower case without the prefix (``queued``, ``urgent``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, StringConstraints

from confab_core import limits
from gateway.schemas import ContextLink, Id, MessageOut, Strict, Text

TicketStatusName = Literal[
    "new", "bot", "queued", "assigned", "waiting_on_user", "resolved", "closed"
]
TicketPriorityName = Literal["low", "medium", "high", "urgent"]
TicketActionName = Literal[
    "submit", "handoff", "release", "wait_on_user", "resume", "resolve", "close", "reopen"
]
SlaStatusName = Literal["active", "hit", "missed", "active_with_misses"]
SlaMetricName = Literal["first_response", "next_response", "resolution"]


class SlaClockOut(BaseModel):
    metric: SlaMetricName
    due_at: datetime | None
    warn_at: datetime | None
    met_at: datetime | None
    breached: bool
    paused: bool
    remaining_seconds: int


class TicketSlaOut(BaseModel):
    status: SlaStatusName
    clocks: list[SlaClockOut]


class MessageRefOut(BaseModel):
    conversation_id: str
    message_id: str


class TicketOut(BaseModel):
    id: str
    conversation_id: str
    subject: str
    category: str
    priority: TicketPriorityName | None
    tags: list[str]
    requester_id: str
    assignee_id: str
    team_id: str
    context: ContextLink | None
    status: TicketStatusName | None
    escalated: bool
    escalated_at: datetime | None
    platform: bool
    source: MessageRefOut | None
    created_at: datetime | None
    updated_at: datetime | None
    queued_at: datetime | None
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    # Null when no SLA policy applies.
    sla: TicketSlaOut | None
    version: int
    # Set in platform staff's views, where tickets of many tenants meet.
    tenant_id: str
    requester_name: str
    assignee_name: str


class EscalatedTicketPageOut(BaseModel):
    tickets: list[TicketOut]
    # Pass as ?cursor= for the next page; null on the last page.
    next_cursor: str | None = None


class EscalatedTicketOut(BaseModel):
    ticket: TicketOut


class EscalatedMessagesOut(BaseModel):
    tenant_id: str
    conversation_id: str
    messages: list[MessageOut]
    has_more: bool


class PlatformReplyIn(Strict):
    text: Text
    client_msg_id: Id


class PlatformTransitionIn(Strict):
    action: TicketActionName
    note: Annotated[str, StringConstraints(max_length=limits.MAX_TEXT_CHARS)] = ""
