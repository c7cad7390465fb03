"""The escalation index, read across tenants by platform staff.

The tickets side (``EscalationRepo``) writes one document per escalated ticket
into ``ticket_escalations`` (``_id`` the ticket id; tenant, conversation, when,
whether it is still open, its priority), inside the ticket's own transaction.
Platform staff need escalated tickets of every tenant in one list, so this is a
service-wide reader like the relay's ``OutboxReader``: it hands out only where
each ticket is (tenant, ticket, conversation), and everything after that goes
through the ticket's tenant's ``TenantStore``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pymongo.asynchronous.collection import AsyncCollection

from confab_core.mongo import Doc


@dataclass(frozen=True, slots=True)
class Escalation:
    ticket_id: str
    tenant_id: str
    conversation_id: str
    escalated_at: datetime
    open: bool
    priority: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class EscalationCursor:
    """Where a page ended, in the list's own order: priority (urgent first),
    then the oldest escalation first, then the ticket id."""

    priority: int
    escalated_at: datetime
    ticket_id: str


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _record(d: Doc) -> Escalation:
    return Escalation(
        ticket_id=str(d["_id"]),
        tenant_id=str(d["tenant_id"]),
        conversation_id=str(d["conversation_id"]),
        escalated_at=_aware(d["escalated_at"]),
        open=bool(d.get("open", False)),
        priority=int(d.get("priority", 0)),
        updated_at=_aware(d.get("updated_at") or d["escalated_at"]),
    )


class EscalationReader:
    """Service-wide and read-only: platform staff's way to find escalated tickets."""

    def __init__(self, col: AsyncCollection[Doc]) -> None:
        self._col = col

    async def get(self, ticket_id: str) -> Escalation | None:
        doc = await self._col.find_one({"_id": ticket_id})
        return _record(doc) if doc is not None else None

    async def page(
        self, *, open_only: bool, after: EscalationCursor | None, limit: int
    ) -> list[Escalation]:
        query: Doc = {"open": True} if open_only else {}
        if after is not None:
            query = {
                **query,
                "$or": [
                    {"priority": {"$lt": after.priority}},
                    {"priority": after.priority, "escalated_at": {"$gt": after.escalated_at}},
                    {
                        "priority": after.priority,
                        "escalated_at": after.escalated_at,
                        "_id": {"$gt": after.ticket_id},
                    },
                ],
            }
        cursor = (
            self._col.find(query)
            .sort([("priority", -1), ("escalated_at", 1), ("_id", 1)])
            .limit(limit)
        )
        return [_record(d) async for d in cursor]
