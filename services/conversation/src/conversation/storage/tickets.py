"""Tickets of the support desk, the escalation index, and the desk's settings
(categories, teams).

A ticket lives in exactly one support conversation (unique per tenant). Its
subject is the requester's words, and its handoff summary retells them: both
sealed, like a conversation's title. Every
change is a compare-and-set on ``version``, so two writers that read the same
ticket cannot both win.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from confab_core.mongo import Doc, TenantCollection
from conversation.storage.keys import TenantCipher, TenantCrypto

TICKETS_COLLECTION = "tickets"
ESCALATIONS_COLLECTION = "ticket_escalations"
TEAMS_COLLECTION = "support_teams"
SETTINGS_COLLECTION = "support_settings"

# Statuses, as stored (handlers/ticketflow.py is their state machine).
NEW = "new"
BOT = "bot"
QUEUED = "queued"
ASSIGNED = "assigned"
WAITING_ON_USER = "waiting_on_user"
RESOLVED = "resolved"
CLOSED = "closed"
STATUSES = (NEW, BOT, QUEUED, ASSIGNED, WAITING_ON_USER, RESOLVED, CLOSED)
OPEN_STATUSES = (NEW, BOT, QUEUED, ASSIGNED, WAITING_ON_USER)


@dataclass(frozen=True, slots=True)
class Ticket:
    id: str
    conversation_id: str
    subject: str
    category: str
    # TicketPriority's values: 1 low .. 4 urgent (the queue sorts on it).
    priority: int
    tags: tuple[str, ...]
    requester_id: str
    assignee_id: str
    team_id: str
    context: tuple[str, str] | None
    status: str
    escalated: bool
    escalated_at: datetime | None
    platform: bool
    # (conversation id, message id) of the message it was made from.
    source: tuple[str, str] | None
    created_at: datetime
    updated_at: datetime
    # When it last entered the queue: the queue's waiting-time order.
    queued_at: datetime | None
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    version: int
    # Who had it last before it went back to the queue (a reopen, a release).
    last_assignee_id: str = ""
    # The first-line bot agent that held it in status bot ("" none).
    agent_id: str = ""
    # The bot's handoff to humans: HandoffReason's value, the summary for the
    # agent who takes it, and when (None: never handed off).
    handoff_reason: int = 0
    handoff_summary: str = ""
    handed_off_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass(frozen=True, slots=True)
class QueueCursor:
    """A position in the queue's order: the last ticket seen."""

    priority: int
    queued_at: datetime
    ticket_id: str


@dataclass(frozen=True, slots=True)
class RecentCursor:
    """A position in a requester's tickets, newest first."""

    created_at: datetime
    ticket_id: str


@dataclass(frozen=True, slots=True)
class QueueFilter:
    statuses: tuple[str, ...]
    team_id: str = ""
    category: str = ""
    priority: int = 0
    # None: any assignee; "": unassigned only; else that user.
    assignee_id: str | None = ""


def _document(t: Ticket, c: TenantCipher) -> Doc:
    return {
        "_id": t.id,
        "conversation_id": t.conversation_id,
        "subject": c.seal(TICKETS_COLLECTION, t.id, "subject", t.subject),
        "category": t.category,
        "priority": t.priority,
        "tags": list(t.tags),
        "requester_id": t.requester_id,
        "assignee_id": t.assignee_id,
        "last_assignee_id": t.last_assignee_id,
        "team_id": t.team_id,
        "context": {"kind": t.context[0], "id": t.context[1]} if t.context else None,
        "status": t.status,
        "escalated": t.escalated,
        "escalated_at": t.escalated_at,
        "platform": t.platform,
        "source": {"conversation_id": t.source[0], "message_id": t.source[1]} if t.source else None,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
        "queued_at": t.queued_at,
        "first_response_at": t.first_response_at,
        "resolved_at": t.resolved_at,
        "closed_at": t.closed_at,
        "version": t.version,
        "agent_id": t.agent_id,
        "handoff_reason": t.handoff_reason,
        "handoff_summary": c.seal(TICKETS_COLLECTION, t.id, "handoff_summary", t.handoff_summary),
        "handed_off_at": t.handed_off_at,
    }


def _record(doc: Doc, c: TenantCipher) -> Ticket:
    ctx = doc.get("context")
    src = doc.get("source")
    doc_id = str(doc["_id"])
    return Ticket(
        id=doc_id,
        conversation_id=str(doc["conversation_id"]),
        subject=c.open(TICKETS_COLLECTION, doc_id, "subject", doc.get("subject")),
        category=str(doc.get("category", "")),
        priority=int(doc["priority"]),
        tags=tuple(str(t) for t in doc.get("tags", ())),
        requester_id=str(doc["requester_id"]),
        assignee_id=str(doc.get("assignee_id", "")),
        last_assignee_id=str(doc.get("last_assignee_id", "")),
        team_id=str(doc.get("team_id", "")),
        context=(str(ctx["kind"]), str(ctx["id"])) if ctx else None,
        status=str(doc["status"]),
        escalated=bool(doc.get("escalated", False)),
        escalated_at=doc.get("escalated_at"),
        platform=bool(doc.get("platform", False)),
        source=(str(src["conversation_id"]), str(src["message_id"])) if src else None,
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        queued_at=doc.get("queued_at"),
        first_response_at=doc.get("first_response_at"),
        resolved_at=doc.get("resolved_at"),
        closed_at=doc.get("closed_at"),
        version=int(doc["version"]),
        agent_id=str(doc.get("agent_id", "")),
        handoff_reason=int(doc.get("handoff_reason", 0)),
        handoff_summary=c.open(
            TICKETS_COLLECTION, doc_id, "handoff_summary", doc.get("handoff_summary")
        ),
        handed_off_at=doc.get("handed_off_at"),
    )


def queue_key(t: Ticket) -> datetime:
    """The queue's waiting-time order: since it last entered the queue."""
    return t.queued_at or t.created_at


class TicketRepo:
    def __init__(
        self,
        col: TenantCollection,
        crypto: TenantCrypto,
        session: AsyncClientSession | None = None,
    ) -> None:
        self._col = col
        self._crypto = crypto
        self._session = session

    async def insert(self, ticket: Ticket) -> None:
        """DuplicateKeyError when the conversation already carries a ticket."""
        c = await self._crypto.cipher()
        doc = _document(ticket, c)
        doc["queue_key"] = queue_key(ticket)
        await self._col.insert_one(doc, session=self._session)

    async def get(self, ticket_id: str) -> Ticket | None:
        c = await self._crypto.cipher()
        doc = await self._col.find_one({"_id": ticket_id}, session=self._session)
        return None if doc is None else _record(doc, c)

    async def by_conversation(self, conversation_id: str) -> Ticket | None:
        c = await self._crypto.cipher()
        doc = await self._col.find_one({"conversation_id": conversation_id}, session=self._session)
        return None if doc is None else _record(doc, c)

    async def save(self, after: Ticket, expected_version: int) -> Ticket | None:
        """Writes ``after`` (with the next version) if the stored ticket is still at
        ``expected_version``: the ticket as written, or None when another change
        won."""
        c = await self._crypto.cipher()
        written = replace(after, version=expected_version + 1)
        doc = _document(written, c)
        del doc["_id"]
        doc["queue_key"] = queue_key(written)
        result = await self._col.update_one(
            {"_id": after.id, "version": expected_version}, {"$set": doc}, session=self._session
        )
        return written if result.matched_count == 1 else None

    async def queue(
        self, flt: QueueFilter, limit: int, after: QueueCursor | None = None
    ) -> list[Ticket]:
        """Priority (urgent first), then longest waiting, then id."""
        c = await self._crypto.cipher()
        query: dict[str, Any] = {"status": {"$in": list(flt.statuses)}}
        if flt.team_id:
            query["team_id"] = flt.team_id
        if flt.category:
            query["category"] = flt.category
        if flt.priority:
            query["priority"] = flt.priority
        if flt.assignee_id is not None:
            query["assignee_id"] = flt.assignee_id
        if after is not None:
            key = after.queued_at
            query["$or"] = [
                {"priority": {"$lt": after.priority}},
                {"priority": after.priority, "queue_key": {"$gt": key}},
                {"priority": after.priority, "queue_key": key, "_id": {"$gt": after.ticket_id}},
            ]
        cursor = self._col.find(
            query,
            sort=[("priority", -1), ("queue_key", 1), ("_id", 1)],
            limit=limit,
            session=self._session,
        )
        return [_record(doc, c) async for doc in cursor]

    async def for_requester(
        self, requester_id: str, limit: int, after: RecentCursor | None = None
    ) -> list[Ticket]:
        """Newest first, then by id."""
        c = await self._crypto.cipher()
        query: dict[str, Any] = {"requester_id": requester_id}
        if after is not None:
            query["$or"] = [
                {"created_at": {"$lt": after.created_at}},
                {"created_at": after.created_at, "_id": {"$gt": after.ticket_id}},
            ]
        cursor = self._col.find(
            query, sort=[("created_at", -1), ("_id", 1)], limit=limit, session=self._session
        )
        return [_record(doc, c) async for doc in cursor]

    async def for_assignee(self, assignee_id: str, statuses: tuple[str, ...]) -> list[Ticket]:
        c = await self._crypto.cipher()
        cursor = self._col.find(
            {"assignee_id": assignee_id, "status": {"$in": list(statuses)}},
            sort=[("_id", 1)],
            session=self._session,
        )
        return [_record(doc, c) async for doc in cursor]

    async def page_for_requester(
        self, requester_id: str, after_id: str, limit: int
    ) -> list[Ticket]:
        """A requester's tickets by id, past ``after_id`` (their export)."""
        c = await self._crypto.cipher()
        cursor = self._col.find(
            {"requester_id": requester_id, "_id": {"$gt": after_id}},
            sort=[("_id", 1)],
            limit=limit,
            session=self._session,
        )
        return [_record(doc, c) async for doc in cursor]

    async def count_for_requester(self, requester_id: str) -> int:
        return await self._col.count({"requester_id": requester_id}, session=self._session)

    async def purge_conversation(self, conversation_id: str) -> int:
        """Retention and erasure: the ticket goes with its conversation."""
        result = await self._col.delete_many(
            {"conversation_id": conversation_id}, session=self._session
        )
        return result.deleted_count

    async def conversations_of_requester(self, user_id: str) -> list[str]:
        cursor = self._col.find(
            {"requester_id": user_id}, projection={"conversation_id": 1}, session=self._session
        )
        return [str(doc["conversation_id"]) async for doc in cursor]

    async def forget_requester(self, user_id: str, pseudonym_id: str) -> int:
        """User erasure: the requester's tickets lose their subject and handoff
        summary (the requester's words) and name the pseudonym instead of the user."""
        result = await self._col.update_many(
            {"requester_id": user_id},
            {"$set": {"subject": "", "handoff_summary": "", "requester_id": pseudonym_id}},
            session=self._session,
        )
        await self._col.update_many(
            {"assignee_id": user_id}, {"$set": {"assignee_id": pseudonym_id}}, session=self._session
        )
        return result.modified_count


@dataclass(frozen=True, slots=True)
class Escalation:
    ticket_id: str
    conversation_id: str
    escalated_at: datetime
    open: bool
    priority: int
    updated_at: datetime


class EscalationRepo:
    """The tenant's side of the escalation index: one document per escalated
    ticket, written in the transaction that changes the ticket. Platform staff
    read it across tenants (their own reader, not here)."""

    def __init__(self, col: TenantCollection, session: AsyncClientSession | None = None) -> None:
        self._col = col
        self._session = session

    async def upsert(self, ticket: Ticket, now: datetime) -> None:
        if not ticket.escalated or ticket.escalated_at is None:
            return
        await self._col.update_one(
            {"_id": ticket.id},
            {
                "$set": {
                    "ticket_id": ticket.id,
                    "conversation_id": ticket.conversation_id,
                    "escalated_at": ticket.escalated_at,
                    "open": ticket.open,
                    "priority": ticket.priority,
                    "updated_at": now,
                }
            },
            upsert=True,
            session=self._session,
        )

    async def get(self, ticket_id: str) -> Escalation | None:
        doc = await self._col.find_one({"_id": ticket_id}, session=self._session)
        if doc is None:
            return None
        return Escalation(
            ticket_id=str(doc["ticket_id"]),
            conversation_id=str(doc["conversation_id"]),
            escalated_at=doc["escalated_at"],
            open=bool(doc["open"]),
            priority=int(doc["priority"]),
            updated_at=doc["updated_at"],
        )

    async def purge_conversation(self, conversation_id: str) -> int:
        result = await self._col.delete_many(
            {"conversation_id": conversation_id}, session=self._session
        )
        return result.deleted_count


@dataclass(frozen=True, slots=True)
class Team:
    id: str
    name: str
    agent_ids: tuple[str, ...]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SupportSettings:
    # The tenant's categories, in the admin's order.
    categories: tuple[str, ...] = ()


class SupportConfigRepo:
    """The desk's per-tenant settings (categories) and its teams.

    Category names are the tenant's vocabulary, used as filters: kept plain.
    Team names are sealed like conversation titles.
    """

    def __init__(
        self,
        settings: TenantCollection,
        teams: TenantCollection,
        crypto: TenantCrypto,
        session: AsyncClientSession | None = None,
        chat_settings: TenantCollection | None = None,
    ) -> None:
        """``chat_settings``: the tenant's chat settings (storage/settings.py), whose
        ``ticket_categories`` section is the one source of the categories."""
        self._settings = settings
        self._teams = teams
        self._crypto = crypto
        self._session = session
        self._chat_settings = chat_settings

    async def settings(self) -> SupportSettings:
        doc = await self._settings.find_one(
            {"_id": self._settings.tenant_id}, session=self._session
        )
        legacy = () if doc is None else tuple(str(c) for c in doc.get("categories", ()))
        return SupportSettings(categories=await self._categories(legacy))

    async def _categories(self, legacy: tuple[str, ...]) -> tuple[str, ...]:
        if self._chat_settings is None:
            return legacy
        doc = await self._chat_settings.find_one(
            {"_id": self._chat_settings.tenant_id},
            projection={"ticket_categories": 1},
            session=self._session,
        )
        # Categories set before the chat settings existed stay until the first save.
        if doc is None:
            return legacy
        return tuple(str(c) for c in doc.get("ticket_categories", ()))

    def _team(self, doc: Doc, c: TenantCipher) -> Team:
        team_id = str(doc["_id"])
        return Team(
            id=team_id,
            name=c.open(TEAMS_COLLECTION, team_id, "name", doc.get("name")),
            agent_ids=tuple(str(a) for a in doc.get("agent_ids", ())),
            created_at=doc["created_at"],
            updated_at=doc["updated_at"],
        )

    async def teams(self) -> list[Team]:
        c = await self._crypto.cipher()
        cursor = self._teams.find({}, sort=[("_id", 1)], session=self._session)
        return [self._team(doc, c) async for doc in cursor]

    async def team(self, team_id: str) -> Team | None:
        c = await self._crypto.cipher()
        doc = await self._teams.find_one({"_id": team_id}, session=self._session)
        return None if doc is None else self._team(doc, c)

    async def insert_team(self, team: Team) -> None:
        c = await self._crypto.cipher()
        await self._teams.insert_one(
            {
                "_id": team.id,
                "name": c.seal(TEAMS_COLLECTION, team.id, "name", team.name),
                "agent_ids": list(team.agent_ids),
                "created_at": team.created_at,
                "updated_at": team.updated_at,
            },
            session=self._session,
        )

    async def update_team(self, team: Team) -> bool:
        c = await self._crypto.cipher()
        result = await self._teams.update_one(
            {"_id": team.id},
            {
                "$set": {
                    "name": c.seal(TEAMS_COLLECTION, team.id, "name", team.name),
                    "agent_ids": list(team.agent_ids),
                    "updated_at": team.updated_at,
                }
            },
            session=self._session,
        )
        return result.matched_count == 1

    async def delete_team(self, team_id: str) -> bool:
        result = await self._teams.delete_many({"_id": team_id}, session=self._session)
        return result.deleted_count == 1
