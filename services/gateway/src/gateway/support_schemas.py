"""The support desk's JSON shapes (REST): tickets, the queue, categories, teams."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from confab_core import limits
from gateway.schemas import ContextLink, ConversationOut, Id, Strict, Text

TicketStatusName = Literal[
    "new", "bot", "queued", "assigned", "waiting_on_user", "resolved", "closed"
]
TicketPriorityName = Literal["low", "medium", "high", "urgent"]
TicketActionName = Literal[
    "submit", "handoff", "release", "wait_on_user", "resume", "resolve", "close", "reopen"
]
HandoffReasonName = Literal[
    "user_asked",
    "forbidden_topic",
    "off_topic",
    "bot_cannot_help",
    "turn_limit",
    "model_unavailable",
    "quota_exceeded",
]
SlaStatusName = Literal["active", "hit", "missed", "active_with_misses"]
SlaMetricName = Literal["first_response", "next_response", "resolution"]
Subject = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=limits.MAX_TITLE_CHARS)
]
Category = Annotated[str, StringConstraints(min_length=1, max_length=limits.MAX_CATEGORY_CHARS)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=limits.MAX_TAG_CHARS)]
Note = Annotated[str, StringConstraints(max_length=limits.MAX_REASON_CHARS)]
TeamName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=limits.MAX_TITLE_CHARS)
]


class MessageRefOut(BaseModel):
    conversation_id: str
    message_id: str


class SlaClockOut(BaseModel):
    metric: SlaMetricName
    due_at: datetime | None
    warn_at: datetime | None
    met_at: datetime | None
    breached: bool
    paused: bool
    remaining_seconds: int


class SlaOut(BaseModel):
    status: SlaStatusName
    clocks: list[SlaClockOut]


class TicketOut(BaseModel):
    id: str
    conversation_id: str
    subject: str
    category: str | None
    priority: TicketPriorityName
    tags: list[str]
    requester_id: str
    requester_name: str | None
    assignee_id: str | None
    assignee_name: str | None
    team_id: str | None
    context: ContextLink | None
    status: TicketStatusName
    escalated: bool
    escalated_at: datetime | None
    platform: bool
    source: MessageRefOut | None = Field(description="The message it was made from, if any")
    created_at: datetime
    updated_at: datetime
    queued_at: datetime | None
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    sla: SlaOut | None = Field(description="Null when no SLA policy applies")
    version: int
    # The bot's handoff to humans (null: never handed off).
    handoff_reason: HandoffReasonName | None = None
    handoff_summary: str | None = None
    handed_off_at: datetime | None = None
    # The first-line bot agent that held the ticket in status bot.
    agent_id: str | None = None


class TicketEnvelopeOut(BaseModel):
    ticket: TicketOut


class OpenedTicketOut(BaseModel):
    ticket: TicketOut
    conversation: ConversationOut


class TicketPageOut(BaseModel):
    tickets: list[TicketOut]
    # Pass as ?cursor= for the next page; null on the last page.
    next_cursor: str | None = None


class OpenTicketIn(Strict):
    subject: Subject
    category: Category | None = None
    priority: TicketPriorityName = "medium"
    tags: list[Tag] = Field(default_factory=list, max_length=limits.MAX_TAGS)
    context: ContextLink | None = None
    # The requester's first message, optional.
    text: Text | None = None
    client_msg_id: Id | None = None
    # Tenant admins: straight to platform staff.
    to_platform: bool = False


class UpdateTicketIn(Strict):
    """Fields left out keep their value."""

    subject: Subject | None = None
    category: Category | None = None
    priority: TicketPriorityName | None = None
    tags: list[Tag] | None = Field(default=None, max_length=limits.MAX_TAGS)
    context: ContextLink | None = None
    expected_version: int | None = Field(default=None, ge=1)


class TransitionIn(Strict):
    action: TicketActionName
    note: Note = ""
    # handoff only (required there): why, and a summary for the agent who takes it.
    handoff_reason: HandoffReasonName | None = None
    handoff_summary: Annotated[str, StringConstraints(max_length=2000)] = ""


class AssignIn(Strict):
    """An agent, a team, or both; a team alone puts the ticket back in the queue
    for that team."""

    assignee_id: Id | None = None
    team_id: Id | None = None


class EscalateIn(Strict):
    reason: Note = ""


class QuickTicketIn(Strict):
    subject: Subject
    category: Category | None = None
    priority: TicketPriorityName = "medium"


class CategoriesIn(Strict):
    categories: list[Category] = Field(max_length=limits.MAX_CATEGORIES)


class CategoriesOut(BaseModel):
    categories: list[str]


class TeamIn(Strict):
    name: TeamName
    agent_ids: list[Id] = Field(default_factory=list, max_length=limits.MAX_USER_IDS)


class TeamOut(BaseModel):
    id: str
    name: str
    agent_ids: list[str]
    created_at: datetime
    updated_at: datetime


class TeamListOut(BaseModel):
    teams: list[TeamOut]
