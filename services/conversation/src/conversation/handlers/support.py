"""The support desk's tickets: opening, the state machine's transitions,
claim and assignment, escalation, and the views.

Every change is one unit of work on the ticket's support conversation: the
ticket's compare-and-set write, a system message naming who did what, and the
events that describe them, in one transaction. The plan (how many events and
messages) is made from a read before the transaction; inside it the ticket is
read again, and a ticket that moved meanwhile makes the whole change start
over from a fresh read, so the second of two racing claims sees the first's
result (already_assigned) instead of overwriting it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import cast

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import events_pb2
from confab.conversation.v1 import support_pb2 as spb
from confab_core.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from confab_core.identity import (
    BOT_USER_ID,
    ROLE_AGENT,
    ROLE_SERVICE,
    ROLE_SUPER_ADMIN,
    ROLE_TENANT_ADMIN,
    SYSTEM_USER_ID,
    Caller,
    agent_user_id,
)
from confab_core.ids import new_id
from confab_core.limits import (
    MAX_CONTEXT_KIND_CHARS,
    MAX_ID_CHARS,
    MAX_PAGE,
    MAX_REASON_CHARS,
    MAX_TAG_CHARS,
    MAX_TAGS,
    MAX_TITLE_CHARS,
)
from conversation import convert
from conversation.handlers import access, attach, ticketflow, ticketpage
from conversation.handlers import text as textutil
from conversation.handlers.base import HandlerBase
from conversation.handlers.pii import queue_flagged
from conversation.handlers.policy import PolicyHandler
from conversation.handlers.sending import message_created, validate_text
from conversation.handlers.support_hooks import TicketChange, TicketMessage, TicketObserver
from conversation.handlers.unit import Change, Taken, UnitOfWork
from conversation.storage.agents import SUPPORT, Agent
from conversation.storage.audit import Fields, Target
from conversation.storage.conversations import Claim, Conversation
from conversation.storage.db import TenantStore
from conversation.storage.messages import Message, NewMessage
from conversation.storage.tickets import (
    ASSIGNED,
    BOT,
    CLOSED,
    NEW,
    OPEN_STATUSES,
    QUEUED,
    RESOLVED,
    WAITING_ON_USER,
    QueueCursor,
    QueueFilter,
    RecentCursor,
    Ticket,
    queue_key,
)

SYSTEM_NAME = "Confab"
# Whose first message in a ticket's conversation is its first response.
_STAFF_ROLES = frozenset({ROLE_AGENT, ROLE_TENANT_ADMIN, ROLE_SUPER_ADMIN})
# How often a change starts over when the ticket moved under it.
_ATTEMPTS = 4
# The handoff's summary, for the agent who takes the ticket.
MAX_HANDOFF_SUMMARY_CHARS = 2000
# What the requester reads when the bot hands their ticket to humans.
HANDOFF_TEXT = "Connecting you to a person…"
HANDOFF_REASONS: dict[int, str] = {
    spb.HANDOFF_REASON_USER_ASKED: "user_asked",
    spb.HANDOFF_REASON_FORBIDDEN_TOPIC: "forbidden_topic",
    spb.HANDOFF_REASON_OFF_TOPIC: "off_topic",
    spb.HANDOFF_REASON_BOT_CANNOT_HELP: "bot_cannot_help",
    spb.HANDOFF_REASON_TURN_LIMIT: "turn_limit",
    spb.HANDOFF_REASON_MODEL_UNAVAILABLE: "model_unavailable",
    spb.HANDOFF_REASON_QUOTA_EXCEEDED: "quota_exceeded",
}

_PRIORITIES = frozenset(
    {
        spb.TICKET_PRIORITY_LOW,
        spb.TICKET_PRIORITY_MEDIUM,
        spb.TICKET_PRIORITY_HIGH,
        spb.TICKET_PRIORITY_URGENT,
    }
)
_PRIORITY_NAMES: dict[int, str] = {
    spb.TICKET_PRIORITY_LOW: "low",
    spb.TICKET_PRIORITY_MEDIUM: "medium",
    spb.TICKET_PRIORITY_HIGH: "high",
    spb.TICKET_PRIORITY_URGENT: "urgent",
}

# ticket_updated's change names, by the action that made the change.
_CHANGE_NAMES = {
    ticketflow.CLAIM: "assigned",
    ticketflow.ASSIGN: "assigned",
    ticketflow.ASSIGN_TEAM: "assigned",
    ticketflow.AUTO_ASSIGN: "assigned",
    ticketflow.ESCALATE: "escalated",
    ticketflow.FIELDS: "fields",
    ticketflow.HANDOFF: "handoff",
}


def system_caller(tenant_id: str) -> Caller:
    """The actor of automatic changes (the SLA rules, the auto-assigner)."""
    return Caller(tenant_id, SYSTEM_USER_ID, frozenset({ROLE_SERVICE}), SYSTEM_NAME)


def support_agent(agents: Sequence[Agent]) -> Agent | None:
    """The tenant's first-line agent: new tickets start with it, in status bot."""
    return next((a for a in agents if a.role == SUPPORT and a.enabled), None)


def with_bot(ticket: Ticket, user_id: str) -> bool:
    """Whether ``user_id``, a bot user, may speak in the ticket's conversation:
    only its own agent, only while the ticket is in status bot."""
    own = agent_user_id(ticket.agent_id) if ticket.agent_id else BOT_USER_ID
    return ticket.status == BOT and user_id == own


def bot_silenced() -> FailedPrecondition:
    return FailedPrecondition("the ticket is not with the bot", "ticket_not_with_bot")


def ticket_not_found() -> NotFound:
    return NotFound("ticket not found", "ticket_not_found")


def _admin(caller: Caller) -> bool:
    return access.tenant_admin(caller) or caller.has_role(ROLE_SERVICE)


def _staff(caller: Caller) -> bool:
    return access.staff(caller) or caller.has_role(ROLE_SERVICE)


def _platform(caller: Caller, ticket: Ticket) -> bool:
    """Platform staff, re-scoped into the tenant by PlatformService: escalated
    tickets only (platformaccess.py)."""
    return caller.has_role(ROLE_SUPER_ADMIN) and ticket.escalated


def can_see(caller: Caller, ticket: Ticket) -> bool:
    return ticket.requester_id == caller.user_id or _staff(caller) or _platform(caller, ticket)


def _name(caller: Caller, ticket: Ticket | None = None) -> str:
    """Who did it, as system messages say. The requester is "The requester": their
    name then never lands in the conversation's history, where an erasure of
    their data would have to find it."""
    if ticket is not None and caller.user_id == ticket.requester_id:
        return "The requester"
    return caller.display_name or caller.user_id


class _Stale(Exception):
    """The ticket (or a membership the plan counted on) moved since the plan was made."""


@dataclass
class _Plan:
    """One change, made from a read before the transaction."""

    action: str
    after: Ticket
    # The system message's text.
    text: str
    # A user who becomes a member of the conversation (a new assignee).
    add_member: str = ""
    reason: str = ""
    previous_assignee: str = ""
    # An admin action's audit record: (action, before, after), in the same transaction.
    audit: tuple[str, Fields, Fields] | None = None
    # Writes of the same transaction beside the ticket's (the source message's link).
    extra: list[Callable[[Taken], Awaitable[None]]] = field(default_factory=list)


@dataclass(frozen=True)
class TicketPage:
    tickets: list[spb.Ticket]
    # Empty on the last page.
    next_page_token: str


@dataclass(frozen=True)
class Opened:
    ticket: spb.Ticket
    conversation: pb.Conversation


class SupportHandler:
    def __init__(
        self,
        unit: UnitOfWork,
        policies: PolicyHandler | None = None,
        observers: Sequence[TicketObserver] = (),
    ) -> None:
        # Composed, not inherited: ``view`` here is a ticket's, not a conversation's.
        base = HandlerBase(unit, policies)
        self.unit = unit
        self.clock = unit.clock
        self.pii = base.pii
        self.audit = base.audit
        self.store = base.store
        self.readable = base.readable
        self.remember_profile = base.remember_profile
        self.observers = list(observers)

    # ---- reads

    async def visible(self, caller: Caller, ticket_id: str) -> Ticket:
        """The ticket, or ticket_not_found when it is not there or not the caller's to see."""
        if not ticket_id or len(ticket_id) > MAX_ID_CHARS:
            raise ticket_not_found()
        found = await self.store(caller).tickets.get(ticket_id)
        if found is None or not can_see(caller, found):
            raise ticket_not_found()
        return found

    async def get(self, caller: Caller, ticket_id: str) -> spb.Ticket:
        return await self.view(caller, await self.visible(caller, ticket_id))

    async def of_conversation(self, caller: Caller, conversation_id: str) -> spb.Ticket:
        await self.readable(caller, conversation_id)
        found = await self.store(caller).tickets.by_conversation(conversation_id)
        if found is None or not can_see(caller, found):
            raise ticket_not_found()
        return await self.view(caller, found)

    async def view(self, caller: Caller, ticket: Ticket) -> spb.Ticket:
        return (await self.views(caller, [ticket]))[0]

    async def views(self, caller: Caller, tickets: list[Ticket]) -> list[spb.Ticket]:
        """The tickets with their people's names and the observers' fields (SLA)."""
        store = self.store(caller)
        return await _views(store, self.observers, tickets)

    async def queue(
        self,
        caller: Caller,
        *,
        team_id: str = "",
        category: str = "",
        priority: int = 0,
        statuses: Sequence[int] = (),
        assignee: str = "",
        page_token: str = "",
        limit: int = 0,
    ) -> TicketPage:
        """Agents and admins: the tenant's tickets in the queue's order."""
        if not access.staff(caller):
            raise PermissionDenied("agents and admins see the queue", "forbidden")
        limit = _limit(limit)
        if priority:
            priority = _priority(priority)
        if len(team_id) > MAX_ID_CHARS or len(category) > MAX_ID_CHARS:
            raise InvalidArgument("filter too long", "invalid_filter")
        if len(assignee) > MAX_ID_CHARS:
            raise InvalidArgument("assignee filter too long", "invalid_filter")
        wanted: list[str] = []
        for value in statuses:
            name = ticketflow.STATUS_FROM_PROTO.get(value)
            if name is None:
                raise InvalidArgument("unknown ticket status", "invalid_status")
            if name not in wanted:
                wanted.append(name)
        who: str | None
        if assignee in ("", "none"):
            who = ""
        elif assignee == "me":
            who = caller.user_id
        elif assignee == "any":
            who = None
        else:
            who = assignee
        if not wanted:
            wanted = list(ticketflow.QUEUE_STATUSES if who == "" else OPEN_STATUSES)
        flt = QueueFilter(tuple(wanted), team_id, category, priority, who)
        digest = json.dumps([sorted(flt.statuses), team_id, category, priority, who])
        after = ticketpage.decode_queue(caller, digest, page_token) if page_token else None
        found = await self.store(caller).tickets.queue(flt, limit + 1, after)
        page = found[:limit]
        views = await self.views(caller, page)
        if len(found) <= limit:
            return TicketPage(views, "")
        last = page[-1]
        cursor = QueueCursor(last.priority, queue_key(last), last.id)
        return TicketPage(views, ticketpage.encode_queue(caller, digest, cursor))

    async def mine(self, caller: Caller, *, page_token: str = "", limit: int = 0) -> TicketPage:
        """The caller's own tickets as requester, newest first."""
        limit = _limit(limit)
        after = ticketpage.decode_recent(caller, page_token) if page_token else None
        found = await self.store(caller).tickets.for_requester(caller.user_id, limit + 1, after)
        page = found[:limit]
        views = await self.views(caller, page)
        if len(found) <= limit:
            return TicketPage(views, "")
        last = page[-1]
        cursor = RecentCursor(last.created_at, last.id)
        return TicketPage(views, ticketpage.encode_recent(caller, cursor))

    # ---- opening

    async def open(
        self,
        caller: Caller,
        *,
        subject: str,
        category: str = "",
        priority: int = 0,
        tags: Sequence[str] = (),
        context: tuple[str, str] | None = None,
        text: str = "",
        client_msg_id: str = "",
        to_platform: bool = False,
        conversation_title: str | None = None,
    ) -> Opened:
        """A ticket in a new support conversation of the caller (its owner)."""
        subject = subject.strip()
        _check_subject(subject)
        priority = _priority(priority)
        clean_tags = _tags(tags)
        _check_context(context)
        if text:
            validate_text(text)
        if len(client_msg_id) > MAX_ID_CHARS:
            raise InvalidArgument("client_msg_id too long", "client_msg_id_too_long")
        if to_platform and not access.tenant_admin(caller):
            raise PermissionDenied("tenant admins open tickets to the platform", "forbidden")
        store = self.store(caller)
        settings = await store.support.settings()
        if category and category not in settings.categories:
            raise InvalidArgument("unknown category", "unknown_category")
        agent = support_agent(await store.agents.agents())
        await self.remember_profile(caller)
        if text:
            text = (await self.pii.screen(caller, text, None)).text
        now = self.clock.now()
        status = ticketflow.next_status(NEW, ticketflow.SUBMIT, to_bot=agent is not None)
        ticket = Ticket(
            id=new_id(),
            conversation_id=new_id(),
            subject=subject,
            category=category,
            priority=priority,
            tags=clean_tags,
            requester_id=caller.user_id,
            assignee_id="",
            team_id="",
            context=context,
            status=status,
            escalated=to_platform,
            escalated_at=now if to_platform else None,
            platform=to_platform,
            source=None,
            created_at=now,
            updated_at=now,
            queued_at=now,
            first_response_at=None,
            resolved_at=None,
            closed_at=None,
            version=1,
            agent_id=agent.id if agent else "",
        )
        opened = _opened_text(caller, ticket)
        return await self._open(
            caller,
            ticket,
            opened,
            first=text,
            client_msg_id=client_msg_id or new_id(),
            title=subject if conversation_title is None else conversation_title,
        )

    async def open_conversation(
        self, caller: Caller, *, title: str, context: tuple[str, str] | None
    ) -> pb.Conversation:
        """CreateConversation of kind support: a ticket whose subject is the title."""
        opened = await self.open(
            caller, subject=title or "Support request", context=context, conversation_title=title
        )
        return opened.conversation

    async def _open(
        self,
        caller: Caller,
        ticket: Ticket,
        opened: str,
        *,
        first: str = "",
        client_msg_id: str = "",
        title: str,
        source_change: Change | None = None,
        link_source: Callable[[Taken], Awaitable[None]] | None = None,
        requester: tuple[str, str] | None = None,
    ) -> Opened:
        """Writes a new conversation, its ticket and their first messages and
        events in one unit; ``source_change`` is a second change (the message a
        quick ticket is made from)."""
        now = ticket.created_at
        requester_id, requester_name = requester or (caller.user_id, caller.display_name)
        roles = {requester_id: pb.MEMBER_ROLE_OWNER}
        if caller.user_id != requester_id and not caller.has_role(ROLE_SERVICE):
            # The agent who made a quick ticket works in it too.
            roles[caller.user_id] = pb.MEMBER_ROLE_MEMBER
        if ticket.agent_id:
            # The first-line agent answers as its bot user, a member like any writer.
            roles[agent_user_id(ticket.agent_id)] = pb.MEMBER_ROLE_MEMBER
        messages = 2 if first else 1
        # created, the system message, [the first message], ticket_updated,
        # [queue_updated], [ticket_escalated]
        events = (
            1
            + messages
            + 1
            + (1 if ticketflow.in_queue(ticket.status, ticket.assignee_id) else 0)
            + (1 if ticket.escalated else 0)
        )
        conv = Conversation(
            id=ticket.conversation_id,
            kind=pb.CONVERSATION_KIND_SUPPORT,
            title=title,
            description="",
            topic="",
            created_by=requester_id,
            created_at=now,
            last_activity_at=now,
            last_seq=messages,
            last_event_seq=events,
            member_count=len(roles),
            context=ticket.context,
            archived=False,
            deleted=False,
            agent_id=ticket.agent_id,
        )
        system = _system_message(ticket.conversation_id, opened, now)
        requester_message = (
            NewMessage(
                id=new_id(),
                conversation_id=ticket.conversation_id,
                sender_id=requester_id,
                sender_name=requester_name,
                kind=pb.MESSAGE_KIND_TEXT,
                text=first,
                client_msg_id=client_msg_id,
                created_at=now,
                thread_root_id="",
                mentions=(),
                mentions_all=False,
                file=None,
                search_terms=textutil.terms(first),
                sender_role=access.sender_role(caller)
                if requester_id == caller.user_id
                else "member",
            )
            if first
            else None
        )
        changes_seen: list[TicketChange] = []

        async def body(taken: list[Taken]) -> Ticket:
            t = taken[0]
            await t.store.members.insert_members(conv.id, roles, now)
            await t.store.tickets.insert(ticket)
            await t.store.escalations.upsert(ticket, now)
            placed = [(system, 1)]
            if requester_message is not None:
                placed.append((requester_message, 2))
            stored = await t.store.messages.insert_many(placed)
            if requester_message is not None:
                await t.store.members.advance_read(conv.id, requester_id, 2)
            t.emit(
                events_pb2.ConversationEvent(
                    conversation_created=events_pb2.ConversationCreated(
                        conversation=convert.conversation(conv, None), member_ids=list(roles)
                    )
                )
            )
            for message in stored:
                t.emit(message_created(message, conv.kind), message_id=message.id)
            new = replace(ticket, status=NEW, queued_at=None)
            opened_change = TicketChange(None, new, "opened", caller, now)
            submitted = TicketChange(new, ticket, ticketflow.SUBMIT, caller, now)
            changes_seen[:] = [opened_change, submitted]
            await self._observe(t.store, changes_seen, stored, ticket)
            (view,) = await _views(t.store, self.observers, [ticket])
            t.emit(_updated(view, "opened", spb.TICKET_STATUS_UNSPECIFIED))
            if ticketflow.in_queue(ticket.status, ticket.assignee_id):
                t.emit(_queue(ticket, "added"))
            if ticket.escalated:
                t.emit(_escalated(view, "opened to platform staff"))
            if link_source is not None:
                await link_source(taken[1])
            return ticket

        change = Change(caller, conv.id, Claim(events=events, messages=messages), new=conv)
        done = await self.unit.run(
            [change] if source_change is None else [change, source_change], body
        )
        self._after_commit(caller.tenant_id, changes_seen)
        owner = await self.store(caller).members.get(conv.id, caller.user_id)
        return Opened(
            await self.view(caller, done.value),
            convert.conversation(done.conversations[0], owner),
        )

    async def from_message(
        self,
        caller: Caller,
        *,
        conversation_id: str,
        message_id: str,
        subject: str,
        category: str = "",
        priority: int = 0,
    ) -> Opened:
        """An agent's quick ticket: a new support conversation for the message's
        author, whose ticket names the message, and the message names the ticket."""
        if not access.staff(caller):
            raise PermissionDenied("agents and admins make tickets from messages", "forbidden")
        subject = subject.strip()
        _check_subject(subject)
        priority = _priority(priority)
        conv, _ = await self.readable(caller, conversation_id)
        if conv.kind == pb.CONVERSATION_KIND_SUPPORT:
            raise InvalidArgument(
                "a support conversation's message cannot become a ticket", "already_a_ticket"
            )
        store = self.store(caller)
        source = await store.messages.get(conversation_id, message_id) if message_id else None
        if source is None or source.deleted:
            raise NotFound("message not found", "message_not_found")
        if source.ticket_id:
            raise FailedPrecondition("a ticket was made from this message", "already_a_ticket")
        if source.kind == pb.MESSAGE_KIND_SYSTEM:
            raise InvalidArgument("system messages cannot become tickets", "invalid_source")
        settings = await store.support.settings()
        if category and category not in settings.categories:
            raise InvalidArgument("unknown category", "unknown_category")
        agent = support_agent(await store.agents.agents())
        await self.remember_profile(caller)
        now = self.clock.now()
        status = ticketflow.next_status(NEW, ticketflow.SUBMIT, to_bot=agent is not None)
        ticket = Ticket(
            id=new_id(),
            conversation_id=new_id(),
            subject=subject,
            category=category,
            priority=priority,
            tags=(),
            requester_id=source.sender_id,
            assignee_id="",
            team_id="",
            context=None,
            status=status,
            escalated=False,
            escalated_at=None,
            platform=False,
            source=(conversation_id, message_id),
            created_at=now,
            updated_at=now,
            queued_at=now,
            first_response_at=None,
            resolved_at=None,
            closed_at=None,
            version=1,
            agent_id=agent.id if agent else "",
        )

        async def link(t: Taken) -> None:
            linked = await t.store.messages.link_ticket(conversation_id, message_id, ticket.id)
            if linked is None or linked.ticket_id != ticket.id:
                raise NotFound("message not found", "message_not_found")
            t.emit(
                events_pb2.ConversationEvent(
                    message_updated=events_pb2.MessageUpdated(message=convert.message(linked))
                ),
                message_id=message_id,
            )

        text = f"{_name(caller)} made a ticket from a message: {subject}"
        return await self._open(
            caller,
            ticket,
            text,
            title=subject,
            source_change=Change(caller, conversation_id, Claim(events=1)),
            link_source=link,
            requester=(source.sender_id, source.sender_name),
        )

    # ---- changes

    async def transition(
        self,
        caller: Caller,
        ticket_id: str,
        action: str,
        note: str = "",
        *,
        handoff_reason: int = 0,
        handoff_summary: str = "",
    ) -> spb.Ticket:
        """A TransitionTicket action (submit .. reopen) by ``caller``."""
        if action not in ticketflow.BY_PROTO.values():
            raise InvalidArgument("unknown ticket action", "invalid_action")
        if len(note) > MAX_REASON_CHARS:
            raise InvalidArgument("note too long", "note_too_long")
        if action == ticketflow.HANDOFF:
            return await self._handoff(caller, ticket_id, handoff_reason, handoff_summary)
        if handoff_reason or handoff_summary:
            raise InvalidArgument(
                "handoff_reason and handoff_summary go with HANDOFF only", "handoff_only"
            )

        async def plan(before: Ticket) -> _Plan:
            _may_transition(caller, before, action)
            status = ticketflow.next_status(before.status, action)
            after = _moved(before, status, self.clock.now())
            if action in (ticketflow.RELEASE, ticketflow.REOPEN):
                after = replace(
                    after,
                    assignee_id="",
                    last_assignee_id=before.assignee_id or before.last_assignee_id,
                )
            text = _transition_text(_name(caller, before), action, note)
            return _Plan(action, after, text)

        return await self.view(caller, await self._change(caller, ticket_id, plan))

    async def _handoff(
        self, caller: Caller, ticket_id: str, reason: int, summary: str
    ) -> spb.Ticket:
        """The bot hands the ticket to humans: to the queue (the SLA clocks
        start), with its reason and summary, audited. A ticket handed off already
        is the answer as it is: the bot's events are redelivered, and a second
        handoff must not write a second "Connecting you…"."""
        if not reason:
            raise InvalidArgument("a handoff needs a reason", "handoff_reason_required")
        if reason not in HANDOFF_REASONS:
            raise InvalidArgument("unknown handoff reason", "invalid_handoff_reason")
        summary = summary.strip()
        if len(summary) > MAX_HANDOFF_SUMMARY_CHARS:
            raise InvalidArgument(
                f"handoff_summary exceeds {MAX_HANDOFF_SUMMARY_CHARS} characters",
                "handoff_summary_too_long",
            )

        async def plan(before: Ticket) -> _Plan:
            _may_hand_off(caller, before)
            if before.handed_off_at is not None:
                raise _Unchanged()
            now = self.clock.now()
            status = ticketflow.next_status(before.status, ticketflow.HANDOFF)
            after = replace(
                _moved(before, status, now),
                handoff_reason=reason,
                handoff_summary=summary,
                handed_off_at=now,
            )
            return _Plan(
                ticketflow.HANDOFF,
                after,
                HANDOFF_TEXT,
                audit=(
                    "ticket.handoff",
                    {"status": before.status, "agent_id": before.agent_id},
                    {"status": after.status, "reason": HANDOFF_REASONS[reason]},
                ),
            )

        try:
            changed = await self._change(caller, ticket_id, plan)
        except _Unchanged:
            changed = await self.visible(caller, ticket_id)
        return await self.view(caller, changed)

    async def claim(self, caller: Caller, ticket_id: str) -> spb.Ticket:
        if not access.staff(caller):
            raise PermissionDenied("agents and admins claim tickets", "forbidden")

        async def plan(before: Ticket) -> _Plan:
            if before.assignee_id:
                raise FailedPrecondition("the ticket is assigned already", "already_assigned")
            status = ticketflow.next_status(before.status, ticketflow.CLAIM)
            after = replace(_moved(before, status, self.clock.now()), assignee_id=caller.user_id)
            member = await self.store(caller).members.get(before.conversation_id, caller.user_id)
            return _Plan(
                ticketflow.CLAIM,
                after,
                f"{_name(caller)} claimed the ticket",
                add_member="" if member else caller.user_id,
            )

        return await self.view(caller, await self._change(caller, ticket_id, plan))

    async def assign(
        self,
        caller: Caller,
        ticket_id: str,
        assignee_id: str,
        team_id: str,
        *,
        auto: bool = False,
    ) -> spb.Ticket | None:
        """Admins (or the auto-assigner, ``auto``): to an agent and/or a team. An
        empty assignee with a team puts the ticket back in the queue for that
        team. ``auto`` assigns only a still unassigned, queued ticket, and is
        None when it lost that race."""
        if not _admin(caller):
            raise PermissionDenied("admins assign tickets; agents claim them", "forbidden")
        if len(assignee_id) > MAX_ID_CHARS:
            raise InvalidArgument("assignee id too long", "invalid_assignee")
        if not assignee_id and not team_id:
            raise InvalidArgument("an assignee or a team is required", "assignee_required")
        store = self.store(caller)
        if team_id:
            team = await store.support.team(team_id) if len(team_id) <= MAX_ID_CHARS else None
            if team is None:
                raise NotFound("team not found", "team_not_found")
            if assignee_id and assignee_id not in team.agent_ids:
                raise InvalidArgument("the assignee is not in the team", "assignee_not_in_team")
        names = await store.users.get_many([assignee_id]) if assignee_id else {}
        assignee_name = names[assignee_id].display_name if assignee_id in names else assignee_id

        async def plan(before: Ticket) -> _Plan:
            if auto and (before.assignee_id or before.status != QUEUED):
                raise _Lost()
            if assignee_id:
                action = ticketflow.AUTO_ASSIGN if auto else ticketflow.ASSIGN
            else:
                action = ticketflow.ASSIGN_TEAM
            status = ticketflow.next_status(before.status, action)
            after = _moved(before, status, self.clock.now())
            after = replace(
                after,
                assignee_id=assignee_id,
                team_id=team_id or before.team_id,
                last_assignee_id=before.assignee_id or before.last_assignee_id,
            )
            add = ""
            if assignee_id:
                member = await store.members.get(before.conversation_id, assignee_id)
                add = "" if member else assignee_id
            if assignee_id:
                text = f"{_name(caller)} assigned the ticket to {assignee_name}"
            else:
                text = f"{_name(caller)} moved the ticket to a team's queue"
            if auto:
                text = f"The ticket was assigned to {assignee_name}"
            audited = not auto and not caller.has_role(ROLE_SERVICE)
            return _Plan(
                action,
                after,
                text,
                add_member=add,
                previous_assignee=before.assignee_id,
                audit=(
                    "ticket.assign",
                    {"assignee_id": before.assignee_id, "team_id": before.team_id},
                    {"assignee_id": after.assignee_id, "team_id": after.team_id},
                )
                if audited
                else None,
            )

        try:
            changed = await self._change(caller, ticket_id, plan)
        except _Lost:
            return None
        return await self.view(caller, changed)

    async def escalate(self, caller: Caller, ticket_id: str, reason: str) -> spb.Ticket:
        """Tenant admins, or the SLA rules (a service caller): hands the ticket
        to platform staff."""
        if not _admin(caller):
            raise PermissionDenied("tenant admins escalate tickets", "forbidden")
        reason = reason.strip()
        if len(reason) > MAX_REASON_CHARS:
            raise InvalidArgument("reason too long", "reason_too_long")

        async def plan(before: Ticket) -> _Plan:
            if before.escalated:
                raise FailedPrecondition("the ticket is escalated already", "already_escalated")
            ticketflow.next_status(before.status, ticketflow.ESCALATE)
            now = self.clock.now()
            after = replace(before, escalated=True, escalated_at=now)
            text = f"{_name(caller)} escalated the ticket to platform staff"
            if reason:
                text += f": {reason}"
            audit: tuple[str, Fields, Fields] | None = None
            if not caller.has_role(ROLE_SERVICE):
                audit = (
                    "ticket.escalate",
                    {"escalated": False},
                    {"escalated": True, "reason": reason},
                )
            return _Plan(ticketflow.ESCALATE, after, text, reason=reason, audit=audit)

        return await self.view(caller, await self._change(caller, ticket_id, plan))

    async def raise_priority(self, caller: Caller, ticket_id: str) -> spb.Ticket:
        """One step up (an SLA breach action); an urgent ticket stays as it is."""
        if not _staff(caller):
            raise PermissionDenied("agents and admins change priorities", "forbidden")
        current = await self.visible(caller, ticket_id)
        if current.priority >= spb.TICKET_PRIORITY_URGENT:
            return await self.view(caller, current)

        async def plan(before: Ticket) -> _Plan:
            ticketflow.next_status(before.status, ticketflow.FIELDS)
            raised = min(before.priority + 1, spb.TICKET_PRIORITY_URGENT)
            after = replace(before, priority=raised)
            text = f"{_name(caller)} raised the priority to {_PRIORITY_NAMES[raised]}"
            return _Plan(ticketflow.FIELDS, after, text)

        return await self.view(caller, await self._change(caller, ticket_id, plan))

    async def update(
        self,
        caller: Caller,
        ticket_id: str,
        *,
        subject: str | None = None,
        category: str | None = None,
        priority: int = 0,
        tags: Sequence[str] | None = None,
        context: tuple[str, str] | None = None,
        expected_version: int = 0,
    ) -> spb.Ticket:
        """Fields left None (priority 0) keep their value. Requesters change the
        subject and the context; staff change everything."""
        if subject is not None:
            subject = subject.strip()
            _check_subject(subject)
        if priority:
            priority = _priority(priority)
        clean_tags = _tags(tags) if tags is not None else None
        _check_context(context)
        staff_fields = category is not None or priority or clean_tags is not None
        if staff_fields and not _staff(caller):
            raise PermissionDenied(
                "agents and admins change category, priority and tags", "forbidden"
            )
        if category:
            settings = await self.store(caller).support.settings()
            if category not in settings.categories:
                raise InvalidArgument("unknown category", "unknown_category")

        async def plan(before: Ticket) -> _Plan:
            if expected_version and before.version != expected_version:
                raise FailedPrecondition("the ticket changed meanwhile", "version_mismatch")
            ticketflow.next_status(before.status, ticketflow.FIELDS)
            after = replace(
                before,
                subject=before.subject if subject is None else subject,
                category=before.category if category is None else category,
                priority=priority or before.priority,
                tags=before.tags if clean_tags is None else clean_tags,
                context=context if context is not None else before.context,
            )
            if after == before:
                raise _Unchanged()
            return _Plan(
                ticketflow.FIELDS, after, _fields_text(_name(caller, before), before, after)
            )

        try:
            changed = await self._change(caller, ticket_id, plan)
        except _Unchanged:
            changed = await self.visible(caller, ticket_id)
        return await self.view(caller, changed)

    async def send(self, caller: Caller, new: NewMessage) -> Message | None:
        """A message sent to a ticket's conversation, with the ticket's share of
        the work in the same unit: a requester's answer resumes a ticket that
        waits on them, and the first staff answer sets the first response.
        None when the conversation carries no ticket (then it is a plain send)."""
        store = self.store(caller)
        for _ in range(_ATTEMPTS):
            ticket = await store.tickets.by_conversation(new.conversation_id)
            if ticket is None:
                return None
            try:
                return await self._send(caller, ticket, new)
            except _Stale:
                continue
        raise FailedPrecondition("the ticket kept changing; try again", "version_mismatch")

    async def bot_may_reply(self, caller: Caller, conversation_id: str) -> bool:
        """Whether a bot user may write in the conversation (a thread reply,
        which is no ticket work): while the ticket is with it."""
        ticket = await self.store(caller).tickets.by_conversation(conversation_id)
        return ticket is None or with_bot(ticket, caller.user_id)

    async def _send(self, caller: Caller, before: Ticket, new: NewMessage) -> Message:
        # Checked on the read the unit re-checks by version: a handoff that
        # commits first makes this send start over and be refused.
        if access.bot_user(caller.user_id) and not with_bot(before, caller.user_id):
            raise bot_silenced()
        resume = (
            before.status == WAITING_ON_USER
            and caller.user_id == before.requester_id
            and ticketflow.allowed(before.status, ticketflow.RESUME)
        )
        # An agent's own ticket is not answered by their own messages.
        first_response = (
            before.first_response_at is None
            and new.sender_role in _STAFF_ROLES
            and caller.user_id != before.requester_id
        )
        messages = 2 if resume else 1
        events = messages + (1 if resume else 0) + (1 if first_response else 0)
        changes_seen: list[TicketChange] = []

        async def body(t: Taken) -> Message:
            now = self.clock.now()
            current = await t.store.tickets.get(before.id)
            if current is None or current.version != before.version:
                raise _Stale()
            placed = [(new, t.first_seq)]
            if resume:
                text = "The requester replied; the ticket is active again"
                placed.append((_system_message(before.conversation_id, text, now), t.first_seq + 1))
            stored = await t.store.messages.insert_many(placed)
            await attach.attach_all(t, stored[:1], now)
            await queue_flagged(t.store, stored[0], now)
            await t.store.members.advance_read(new.conversation_id, caller.user_id, t.first_seq)
            after = before
            if resume:
                after = replace(
                    after, status=ticketflow.next_status(after.status, ticketflow.RESUME)
                )
            if first_response:
                after = replace(after, first_response_at=now)
            saved = before
            if after != before:
                written = await t.store.tickets.save(replace(after, updated_at=now), before.version)
                if written is None:
                    raise _Stale()
                saved = written
                await t.store.escalations.upsert(saved, now)
            if resume:
                changes_seen.append(TicketChange(before, saved, ticketflow.RESUME, caller, now))
            await self._observe(t.store, changes_seen, stored, saved)
            for message in stored:
                t.emit(
                    message_created(message, pb.CONVERSATION_KIND_SUPPORT), message_id=message.id
                )
            if after != before:
                (view,) = await _views(t.store, self.observers, [saved])
                if resume:
                    t.emit(_updated(view, "status", convert.ticket_status(before.status)))
                if first_response:
                    t.emit(_updated(view, "first_response", convert.ticket_status(before.status)))
            return stored[0]

        claim = Claim(events=events, messages=messages)
        stored, _ = await self.unit.one(Change(caller, new.conversation_id, claim), body)
        self._after_commit(caller.tenant_id, changes_seen)
        return stored

    # ---- the unit of a change

    async def _change(
        self, caller: Caller, ticket_id: str, plan: Callable[[Ticket], Awaitable[_Plan]]
    ) -> Ticket:
        for _ in range(_ATTEMPTS):
            before = await self.visible(caller, ticket_id)
            made = await plan(before)
            try:
                return await self._write(caller, before, made)
            except _Stale:
                continue
        raise FailedPrecondition("the ticket kept changing; try again", "version_mismatch")

    async def _write(self, caller: Caller, before: Ticket, p: _Plan) -> Ticket:
        after = p.after
        assigned = bool(after.assignee_id) and after.assignee_id != before.assignee_id
        queue_change = _queue_change(before, after)
        if p.action == ticketflow.HANDOFF:
            # A bot ticket was listed, but nobody had to take it: for agents it is new work.
            queue_change = "added"
        events = (
            2
            + (1 if p.add_member else 0)
            + (1 if assigned else 0)
            + (1 if queue_change else 0)
            + (1 if p.action == ticketflow.ESCALATE else 0)
        )
        claim = Claim(events=events, messages=1, member_delta=1 if p.add_member else 0)
        changes_seen: list[TicketChange] = []

        async def body(t: Taken) -> Ticket:
            now = self.clock.now()
            current = await t.store.tickets.get(before.id)
            if current is None:
                raise ticket_not_found()
            if current.version != before.version:
                raise _Stale()
            if p.add_member:
                if await t.store.members.get(before.conversation_id, p.add_member) is not None:
                    raise _Stale()
                added = await t.store.members.insert_members(
                    before.conversation_id, {p.add_member: pb.MEMBER_ROLE_MEMBER}, now
                )
            saved = await t.store.tickets.save(replace(after, updated_at=now), before.version)
            if saved is None:
                raise _Stale()
            await t.store.escalations.upsert(saved, now)
            if p.audit is not None:
                action, old, new = p.audit
                await self.audit.in_unit(t, action, Target("ticket", saved.id), old, new)
            (message,) = await t.store.messages.insert_many(
                [(_system_message(before.conversation_id, p.text, now), t.first_seq)]
            )
            for write in p.extra:
                await write(t)
            if p.add_member:
                t.emit(
                    events_pb2.ConversationEvent(
                        members_added=events_pb2.MembersAdded(
                            members=[convert.member(m, None) for m in added]
                        )
                    )
                )
            t.emit(message_created(message, pb.CONVERSATION_KIND_SUPPORT), message_id=message.id)
            change = TicketChange(before, saved, p.action, caller, now)
            changes_seen.append(change)
            await self._observe(t.store, [change], [message], saved)
            (view,) = await _views(t.store, self.observers, [saved])
            t.emit(
                _updated(
                    view,
                    _CHANGE_NAMES.get(p.action, "status"),
                    convert.ticket_status(before.status),
                )
            )
            if assigned:
                t.emit(
                    events_pb2.ConversationEvent(
                        ticket_assigned=events_pb2.TicketAssigned(
                            ticket=view, previous_assignee_id=p.previous_assignee
                        )
                    )
                )
            if queue_change:
                t.emit(_queue(saved, queue_change))
            if p.action == ticketflow.ESCALATE:
                t.emit(_escalated(view, p.reason))
            return saved

        change = Change(caller, before.conversation_id, claim, audited=p.audit is not None)
        saved, _ = await self.unit.one(change, body)
        self._after_commit(caller.tenant_id, changes_seen)
        return saved

    async def _observe(
        self,
        store: TenantStore,
        changes: list[TicketChange],
        messages: list[Message],
        ticket: Ticket,
    ) -> None:
        for observer in self.observers:
            for change in changes:
                await observer.on_change(store, change)
            for message in messages:
                await observer.on_message(
                    store,
                    TicketMessage(
                        ticket=ticket,
                        message_id=message.id,
                        sender_id=message.sender_id,
                        sender_role=message.sender_role,
                        at=message.created_at,
                    ),
                )

    def _after_commit(self, tenant_id: str, changes: list[TicketChange]) -> None:
        if not changes:
            return
        for observer in self.observers:
            observer.after_commit(tenant_id, changes)


class _Lost(Exception):
    """The auto-assigner's ticket was taken or left the queue meanwhile."""


class _Unchanged(Exception):
    """An update that changes nothing: no message, no event."""


async def _views(
    store: TenantStore, observers: Sequence[TicketObserver], tickets: list[Ticket]
) -> list[spb.Ticket]:
    ids = sorted({u for t in tickets for u in (t.requester_id, t.assignee_id) if u})
    names = await store.users.get_many(ids) if ids else {}
    out = []
    for t in tickets:
        view = convert.ticket(t)
        if t.requester_id in names:
            view.requester_name = names[t.requester_id].display_name
        if t.assignee_id in names:
            view.assignee_name = names[t.assignee_id].display_name
        out.append(view)
    for observer in observers:
        await observer.decorate(store, out)
    return out


def _may_transition(caller: Caller, ticket: Ticket, action: str) -> None:
    requester = ticket.requester_id == caller.user_id
    if action == ticketflow.SUBMIT:
        allowed = caller.has_role(ROLE_SERVICE)
    elif action == ticketflow.RELEASE:
        allowed = ticket.assignee_id == caller.user_id or _admin(caller)
    elif action in (ticketflow.RESOLVE, ticketflow.CLOSE, ticketflow.REOPEN):
        allowed = requester or _staff(caller) or _platform(caller, ticket)
    else:
        allowed = _staff(caller) or _platform(caller, ticket)
    if not allowed:
        raise PermissionDenied("not allowed on this ticket", "forbidden")


def _may_hand_off(caller: Caller, ticket: Ticket) -> None:
    """Agents and admins, or a service acting as the ticket's own bot agent (or
    as the system, for automatic handoffs)."""
    own_bot = bool(ticket.agent_id) and caller.user_id == agent_user_id(ticket.agent_id)
    service = caller.has_role(ROLE_SERVICE) and (own_bot or caller.user_id == SYSTEM_USER_ID)
    if not (access.staff(caller) or service):
        raise PermissionDenied("not allowed to hand this ticket off", "forbidden")


def _moved(before: Ticket, status: str, now: datetime) -> Ticket:
    """``before`` in ``status``, with the timestamps that status sets."""
    after = replace(before, status=status)
    if status == QUEUED and before.status != QUEUED:
        after = replace(after, queued_at=now)
    if status == RESOLVED:
        after = replace(after, resolved_at=now)
    if status == CLOSED:
        after = replace(after, closed_at=now)
    if status in (QUEUED, BOT, ASSIGNED) and before.status in (RESOLVED, CLOSED):
        after = replace(after, resolved_at=None, closed_at=None)
    return after


def _queue_change(before: Ticket, after: Ticket) -> str:
    was = ticketflow.in_queue(before.status, before.assignee_id)
    now = ticketflow.in_queue(after.status, after.assignee_id)
    if was and not now:
        return "removed"
    if now and not was:
        return "added"
    if now and (
        before.priority != after.priority
        or before.team_id != after.team_id
        or before.category != after.category
        or before.status != after.status
    ):
        return "changed"
    return ""


def _queue(ticket: Ticket, change: str) -> events_pb2.ConversationEvent:
    return events_pb2.ConversationEvent(
        queue_updated=events_pb2.QueueUpdated(
            ticket_id=ticket.id,
            change=change,
            priority=cast(spb.TicketPriority.ValueType, ticket.priority),
            team_id=ticket.team_id,
            category=ticket.category,
            status=convert.ticket_status(ticket.status),
        )
    )


def _updated(
    view: spb.Ticket, change: str, previous: spb.TicketStatus.ValueType
) -> events_pb2.ConversationEvent:
    return events_pb2.ConversationEvent(
        ticket_updated=events_pb2.TicketUpdated(
            ticket=view, change=change, previous_status=previous
        )
    )


def _escalated(view: spb.Ticket, reason: str) -> events_pb2.ConversationEvent:
    return events_pb2.ConversationEvent(
        ticket_escalated=events_pb2.TicketEscalated(ticket=view, reason=reason)
    )


def _system_message(conversation_id: str, text: str, now: datetime) -> NewMessage:
    return NewMessage(
        id=new_id(),
        conversation_id=conversation_id,
        sender_id=SYSTEM_USER_ID,
        sender_name=SYSTEM_NAME,
        kind=pb.MESSAGE_KIND_SYSTEM,
        text=text,
        client_msg_id=new_id(),
        created_at=now,
        thread_root_id="",
        mentions=(),
        mentions_all=False,
        file=None,
        search_terms=[],
        sender_role="system",
    )


def _opened_text(caller: Caller, ticket: Ticket) -> str:
    where = {
        QUEUED: "it is in the queue",
        BOT: "the support bot answers first",
    }.get(ticket.status, f"it is {ticket.status}")
    text = f"{_name(caller, ticket)} opened the ticket; {where}"
    if ticket.platform:
        text += ", and platform staff have it"
    return text


_VERBS = {
    ticketflow.SUBMIT: "submitted the ticket",
    ticketflow.RELEASE: "put the ticket back in the queue",
    ticketflow.WAIT_ON_USER: "is waiting on the requester",
    ticketflow.RESUME: "resumed the ticket",
    ticketflow.RESOLVE: "resolved the ticket",
    ticketflow.CLOSE: "closed the ticket",
    ticketflow.REOPEN: "reopened the ticket",
}


def _transition_text(who: str, action: str, note: str) -> str:
    text = f"{who} {_VERBS[action]}"
    return f"{text}: {note}" if note.strip() else text


def _fields_text(who: str, before: Ticket, after: Ticket) -> str:
    changed = [
        name
        for name, a, b in (
            ("subject", before.subject, after.subject),
            ("category", before.category, after.category),
            ("priority", before.priority, after.priority),
            ("tags", before.tags, after.tags),
            ("context", before.context, after.context),
        )
        if a != b
    ]
    if after.priority != before.priority and changed == ["priority"]:
        return f"{who} set the priority to {_PRIORITY_NAMES[after.priority]}"
    return f"{who} changed the ticket's {', '.join(changed)}"


def _limit(limit: int) -> int:
    if limit < 0:
        raise InvalidArgument("limit must not be negative", "invalid_limit")
    return MAX_PAGE if limit == 0 else min(limit, MAX_PAGE)


def _check_subject(subject: str) -> None:
    if not subject:
        raise InvalidArgument("a ticket needs a subject", "subject_required")
    if len(subject) > MAX_TITLE_CHARS:
        raise InvalidArgument(f"subject exceeds {MAX_TITLE_CHARS} characters", "subject_too_long")


def _priority(priority: int) -> int:
    if not priority:
        return spb.TICKET_PRIORITY_MEDIUM
    if priority not in _PRIORITIES:
        raise InvalidArgument("unknown priority", "invalid_priority")
    return priority


def _tags(tags: Sequence[str]) -> tuple[str, ...]:
    clean: list[str] = []
    for tag in tags:
        tag = tag.strip()
        if not tag or len(tag) > MAX_TAG_CHARS:
            raise InvalidArgument(f"tags are 1-{MAX_TAG_CHARS} characters", "invalid_tag")
        if tag not in clean:
            clean.append(tag)
    if len(clean) > MAX_TAGS:
        raise InvalidArgument(f"at most {MAX_TAGS} tags", "too_many_tags")
    return tuple(clean)


def _check_context(context: tuple[str, str] | None) -> None:
    if context is None:
        return
    kind, ident = context
    if not kind or not ident or len(kind) > MAX_CONTEXT_KIND_CHARS or len(ident) > MAX_ID_CHARS:
        raise InvalidArgument("a context link needs a kind and an id", "invalid_context")
