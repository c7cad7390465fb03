"""Folding conversation events into per-day analytics aggregates: pure logic.

A ticket event carries the whole ticket after the change. The fold keeps, per
ticket, what it last saw (``TicketSeen``: open or not, agent, team, category,
first response and resolution times, whether an SLA clock breached), compares
the new snapshot with it, and says which day aggregates to bump. So it never
needs to know which action happened, and an event the fold sees for the first
time (a consumer started after the ticket opened) still counts the opening.

Each figure is counted on the day it happened (UTC), for the agent, team and
category the ticket had at that moment. Backlog is kept as per-day deltas
(+1 when a ticket becomes open for a group, -1 when it stops being open or
moves to another group); the backlog at the end of a day is the sum of every
delta up to it.

Idempotence is not this module's job: the caller applies an event at most once
per conversation ``event_seq`` (storage keeps the watermark).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from confab.conversation.v1 import conversation_pb2 as cpb
from confab.conversation.v1 import events_pb2
from confab.conversation.v1 import support_pb2 as spb
from conversation.storage.analytics import (
    CHANNEL,
    CHAT,
    SUPPORT_DIMS,
    DayBump,
    TicketSeen,
)

# Counter and sample names, as stored.
OPENED = "opened"
ASSIGNED = "assigned"
RESOLVED = "resolved"
BACKLOG = "backlog_delta"
SLA_HIT = "sla_hit"
SLA_MISSED = "sla_missed"
SLA_BREACHES = "sla_breaches"
MESSAGES = "messages"
FIRST_RESPONSE = "first_response"
RESOLUTION = "resolution"

OPEN_STATUSES = frozenset(
    {
        spb.TICKET_STATUS_NEW,
        spb.TICKET_STATUS_BOT,
        spb.TICKET_STATUS_QUEUED,
        spb.TICKET_STATUS_ASSIGNED,
        spb.TICKET_STATUS_WAITING_ON_USER,
    }
)
# Messages people write: the active users. Bots answer and system messages
# record transitions; neither is somebody using the chat.
HUMAN_KINDS = frozenset({cpb.MESSAGE_KIND_TEXT, cpb.MESSAGE_KIND_FILE})
STAFF_ROLES = frozenset({"agent", "tenant_admin", "super_admin"})
# Every event kind whose payload carries the ticket after the change.
TICKET_PAYLOADS = frozenset(
    {"ticket_updated", "ticket_assigned", "ticket_escalated", "sla_warning", "sla_breached"}
)


@dataclass(slots=True)
class _Bump:
    day: date
    dim: str
    key: str
    counts: dict[str, int] = field(default_factory=dict)
    samples: dict[str, list[int]] = field(default_factory=dict)
    users: set[str] = field(default_factory=set)
    labels: dict[str, str] = field(default_factory=dict)

    def frozen(self) -> DayBump:
        return DayBump(
            day=self.day,
            dim=self.dim,
            key=self.key,
            counts={k: v for k, v in self.counts.items() if v},
            samples={k: tuple(v) for k, v in self.samples.items() if v},
            users=frozenset(self.users),
            labels=dict(self.labels),
        )


@dataclass(frozen=True, slots=True)
class Fold:
    """One event's effect: the aggregates to bump and the ticket's new state."""

    bumps: list[DayBump]
    ticket: TicketSeen | None = None


class _Bumps:
    """Bumps merged by (day, dim, key), so one event writes each aggregate once."""

    def __init__(self) -> None:
        self._by: dict[tuple[date, str, str], _Bump] = {}

    def at(self, day: date, dim: str, key: str) -> _Bump:
        k = (day, dim, key)
        bump = self._by.get(k)
        if bump is None:
            bump = self._by[k] = _Bump(day, dim, key)
        return bump

    def count(self, day: date, seen: TicketSeen, name: str, n: int = 1) -> None:
        for dim in SUPPORT_DIMS:
            counts = self.at(day, dim, seen.key(dim)).counts
            counts[name] = counts.get(name, 0) + n

    def sample(self, day: date, seen: TicketSeen, name: str, seconds: int) -> None:
        for dim in SUPPORT_DIMS:
            self.at(day, dim, seen.key(dim)).samples.setdefault(name, []).append(seconds)

    def backlog(self, day: date, dim: str, key: str, n: int) -> None:
        counts = self.at(day, dim, key).counts
        counts[BACKLOG] = counts.get(BACKLOG, 0) + n

    def done(self) -> list[DayBump]:
        return [f for b in self._by.values() if not (f := b.frozen()).empty()]


def _time(ts: Timestamp, present: bool) -> datetime | None:
    return ts.ToDatetime(UTC) if present else None


def day_of(at: datetime) -> date:
    return at.astimezone(UTC).date()


def _seconds(start: datetime, end: datetime) -> int:
    return max(0, round((end - start).total_seconds()))


def seen_from(ticket: spb.Ticket, prior: TicketSeen | None, breached: bool) -> TicketSeen:
    clocks_breached = any(c.breached for c in ticket.sla.clocks)
    created = _time(ticket.created_at, ticket.HasField("created_at"))
    first_response = _time(ticket.first_response_at, ticket.HasField("first_response_at"))
    if first_response is None and prior is not None:
        # Seen first from a staff message (below): kept until the ticket says.
        first_response = prior.first_response_at
    return TicketSeen(
        ticket_id=ticket.id,
        conversation_id=ticket.conversation_id,
        requester=ticket.requester_id,
        created_at=created or (prior.created_at if prior else None),
        open=ticket.status in OPEN_STATUSES,
        agent=ticket.assignee_id,
        team=ticket.team_id,
        category=ticket.category,
        first_response_at=first_response,
        resolved_at=_time(ticket.resolved_at, ticket.HasField("resolved_at")),
        breached=breached or clocks_breached or (prior is not None and prior.breached),
        has_sla=ticket.sla.status != spb.SLA_STATUS_UNSPECIFIED
        or bool(ticket.sla.clocks)
        or (prior is not None and prior.has_sla),
    )


def fold_ticket(
    prior: TicketSeen | None, ticket: spb.Ticket, kind: str, at: datetime
) -> tuple[TicketSeen, list[DayBump]]:
    """The ticket's new state and the bumps of one ticket event at ``at``."""
    breach_event = kind == "sla_breached"
    new = seen_from(ticket, prior, breach_event)
    created = _time(ticket.created_at, ticket.HasField("created_at")) or at
    out = _Bumps()
    today = day_of(at)
    if prior is None:
        out.count(day_of(created), new, OPENED)
    if new.agent and new.agent != (prior.agent if prior else ""):
        out.count(today, new, ASSIGNED)
    _backlog(out, today, prior, new)
    if new.first_response_at is not None and (prior is None or prior.first_response_at is None):
        out.sample(
            day_of(new.first_response_at),
            new,
            FIRST_RESPONSE,
            _seconds(created, new.first_response_at),
        )
    if new.resolved_at is not None and (prior is None or prior.resolved_at != new.resolved_at):
        resolved_day = day_of(new.resolved_at)
        out.count(resolved_day, new, RESOLVED)
        out.sample(resolved_day, new, RESOLUTION, _seconds(created, new.resolved_at))
        if new.breached:
            out.count(resolved_day, new, SLA_MISSED)
        elif new.has_sla:
            out.count(resolved_day, new, SLA_HIT)
    if breach_event:
        out.count(today, new, SLA_BREACHES)
    return new, out.done()


def _backlog(out: _Bumps, day: date, prior: TicketSeen | None, new: TicketSeen) -> None:
    was_open = prior is not None and prior.open
    for dim in SUPPORT_DIMS:
        before = prior.key(dim) if was_open and prior is not None else None
        after = new.key(dim) if new.open else None
        if before == after:
            continue
        if before is not None:
            out.backlog(day, dim, before, -1)
        if after is not None:
            out.backlog(day, dim, after, +1)


def fold_message(
    event: events_pb2.ConversationEvent, ticket: TicketSeen | None = None
) -> tuple[TicketSeen | None, list[DayBump]]:
    """The bumps of a message_created event: the day's messages, the
    conversation's, and the sender among the day's active users. ``ticket``:
    the ticket of the (support) conversation, whose first response this is
    when a staff member writes before the ticket recorded one."""
    created = event.message_created
    message = created.message
    if message.kind == cpb.MESSAGE_KIND_SYSTEM:
        return None, []
    at = _time(message.created_at, message.HasField("created_at")) or event.occurred_at.ToDatetime(
        UTC
    )
    day = day_of(at)
    out = _Bumps()
    tenant = out.at(day, CHAT, "")
    tenant.counts[MESSAGES] = 1
    if message.kind in HUMAN_KINDS and message.sender_id:
        tenant.users.add(message.sender_id)
    channel = out.at(day, CHANNEL, event.conversation_id)
    channel.counts[MESSAGES] = 1
    channel.labels["kind"] = kind_name(created.conversation_kind)
    answered = None
    if ticket is not None and ticket.first_response_at is None and _answers(event, ticket):
        answered = replace(ticket, first_response_at=at)
        out.sample(day, answered, FIRST_RESPONSE, _seconds(ticket.created_at or at, at))
    return answered, out.done()


def in_support(event: events_pb2.ConversationEvent) -> bool:
    """A person's message in a support conversation: maybe a ticket's first response."""
    created = event.message_created
    return (
        event.WhichOneof("payload") == "message_created"
        and created.conversation_kind == cpb.CONVERSATION_KIND_SUPPORT
        and created.message.kind in HUMAN_KINDS
    )


def _answers(event: events_pb2.ConversationEvent, ticket: TicketSeen) -> bool:
    """Someone of the desk answering: not the requester, and, when the message
    records its sender's role, a staff role."""
    message = event.message_created.message
    if not in_support(event) or message.sender_id == ticket.requester:
        return False
    return not message.sender_role or message.sender_role in STAFF_ROLES


def kind_name(kind: int) -> str:
    """A conversation kind's name as the API spells it ("" for unknown)."""
    for name, value in cpb.ConversationKind.items():
        if value == kind and kind:
            return name.removeprefix("CONVERSATION_KIND_").lower()
    return ""


def fold(event: events_pb2.ConversationEvent, prior: TicketSeen | None) -> Fold:
    """What ``event`` changes; ``prior``: what was seen of its ticket (ticket events)."""
    kind = event.WhichOneof("payload")
    if kind == "message_created":
        answered, bumps = fold_message(event, prior)
        return Fold(bumps, answered)
    if kind in TICKET_PAYLOADS:
        ticket: spb.Ticket = getattr(event, kind).ticket
        if not ticket.id:
            return Fold([])
        seen, bumps = fold_ticket(prior, ticket, kind, event.occurred_at.ToDatetime(UTC))
        return Fold(bumps, seen)
    return Fold([])


def ticket_of(event: events_pb2.ConversationEvent) -> str:
    """The id of the ticket a ticket event carries ("" for other events)."""
    kind = event.WhichOneof("payload")
    if kind in TICKET_PAYLOADS:
        return str(getattr(event, kind).ticket.id)
    return ""


def wanted(event: events_pb2.ConversationEvent) -> bool:
    """Whether the fold does anything with this kind of event."""
    kind = event.WhichOneof("payload")
    return kind == "message_created" or kind in TICKET_PAYLOADS
