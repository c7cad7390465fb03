"""Analytics aggregates: per-tenant per-day documents folded from events.

Three collections, all tenant-scoped:

- ``analytics_days``: one document per (day, dim, key): counters (``$inc``),
  duration samples in seconds (``$push``), the day's distinct senders
  (``$addToSet``, on the tenant's ``chat`` document only) and labels (a
  conversation's kind). No message content, no names: ids, counts and seconds.
- ``analytics_tickets``: what the fold last saw of each ticket (open, agent,
  team, category, first response and resolution times, breached).
- ``analytics_cursors``: per conversation, the highest ``event_seq`` applied.
  The consumer advances it in the same transaction as the increments, so a
  redelivered or replayed event is seen as applied and never counts twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

from pymongo.asynchronous.client_session import AsyncClientSession

from confab_core.mongo import Doc, TenantCollection

ANALYTICS_DAYS = "analytics_days"
ANALYTICS_TICKETS = "analytics_tickets"
ANALYTICS_CURSORS = "analytics_cursors"

# Dimensions of the support figures; "all" is the whole tenant (key "").
ALL = "all"
AGENT = "agent"
TEAM = "team"
CATEGORY = "category"
SUPPORT_DIMS = (ALL, AGENT, TEAM, CATEGORY)
# Chat usage: one aggregate per day for the tenant (messages, active users),
# and one per day and conversation.
CHAT = "chat"
CHANNEL = "channel"


@dataclass(frozen=True, slots=True)
class TicketSeen:
    """What the fold last saw of a ticket."""

    ticket_id: str
    conversation_id: str
    requester: str
    created_at: datetime | None
    open: bool
    agent: str
    team: str
    category: str
    first_response_at: datetime | None
    resolved_at: datetime | None
    breached: bool
    has_sla: bool

    def key(self, dim: str) -> str:
        return {ALL: "", AGENT: self.agent, TEAM: self.team, CATEGORY: self.category}[dim]


@dataclass(frozen=True, slots=True)
class DayBump:
    """What to add to one day aggregate."""

    day: date
    dim: str
    key: str
    counts: Mapping[str, int]
    samples: Mapping[str, tuple[int, ...]]
    users: frozenset[str]
    # Set, not added: a conversation's kind.
    labels: Mapping[str, str]

    def empty(self) -> bool:
        return not (self.counts or self.samples or self.users or self.labels)


@dataclass(frozen=True, slots=True)
class DayAggregate:
    day: date
    dim: str
    key: str
    counts: Mapping[str, int]
    samples: Mapping[str, tuple[int, ...]]
    users: frozenset[str]
    labels: Mapping[str, str]


_COUNTS = "c"
_SAMPLES = "s"
_LABELS = "l"
_USERS = "users"


def _day_key(day: date) -> str:
    # ISO dates sort as strings, so a range is one index range.
    return day.isoformat()


def _aggregate(doc: Doc) -> DayAggregate:
    return DayAggregate(
        day=date.fromisoformat(str(doc["day"])),
        dim=str(doc["dim"]),
        key=str(doc["key"]),
        counts={str(k): int(v) for k, v in (doc.get(_COUNTS) or {}).items()},
        samples={str(k): tuple(int(x) for x in v) for k, v in (doc.get(_SAMPLES) or {}).items()},
        users=frozenset(str(u) for u in doc.get(_USERS) or ()),
        labels={str(k): str(v) for k, v in (doc.get(_LABELS) or {}).items()},
    )


def _seen(doc: Doc) -> TicketSeen:
    return TicketSeen(
        ticket_id=str(doc["ticket_id"]),
        conversation_id=str(doc.get("conversation_id", "")),
        requester=str(doc.get("requester", "")),
        created_at=doc.get("created_at"),
        open=bool(doc["open"]),
        agent=str(doc.get("agent", "")),
        team=str(doc.get("team", "")),
        category=str(doc.get("category", "")),
        first_response_at=doc.get("first_response_at"),
        resolved_at=doc.get("resolved_at"),
        breached=bool(doc.get("breached", False)),
        has_sla=bool(doc.get("has_sla", False)),
    )


def _update(bump: DayBump) -> Doc:
    update: Doc = {}
    if bump.counts:
        update["$inc"] = {f"{_COUNTS}.{k}": v for k, v in bump.counts.items()}
    if bump.samples:
        update["$push"] = {f"{_SAMPLES}.{k}": {"$each": list(v)} for k, v in bump.samples.items()}
    if bump.users:
        update["$addToSet"] = {_USERS: {"$each": sorted(bump.users)}}
    if bump.labels:
        update["$set"] = {f"{_LABELS}.{k}": v for k, v in bump.labels.items()}
    return update


class AnalyticsRepo:
    def __init__(
        self,
        days: TenantCollection,
        tickets: TenantCollection,
        cursors: TenantCollection,
        session: AsyncClientSession | None = None,
    ) -> None:
        self._days = days
        self._tickets = tickets
        self._cursors = cursors
        self._session = session

    async def claim(self, conversation_id: str, event_seq: int) -> bool:
        """Advances the conversation's applied watermark to ``event_seq``; False
        when an event at or past it was applied already (a redelivery)."""
        doc = await self._cursors.find_one(
            {"conversation_id": conversation_id}, session=self._session
        )
        if doc is not None and int(doc["event_seq"]) >= event_seq:
            return False
        await self._cursors.update_one(
            {"conversation_id": conversation_id},
            {"$set": {"event_seq": event_seq}},
            upsert=True,
            session=self._session,
        )
        return True

    async def ticket(self, ticket_id: str) -> TicketSeen | None:
        doc = await self._tickets.find_one({"ticket_id": ticket_id}, session=self._session)
        return None if doc is None else _seen(doc)

    async def ticket_in(self, conversation_id: str) -> TicketSeen | None:
        """The ticket of a support conversation, as last seen."""
        doc = await self._tickets.find_one(
            {"conversation_id": conversation_id}, session=self._session
        )
        return None if doc is None else _seen(doc)

    async def save_ticket(self, seen: TicketSeen) -> None:
        await self._tickets.update_one(
            {"ticket_id": seen.ticket_id},
            {
                "$set": {
                    "conversation_id": seen.conversation_id,
                    "requester": seen.requester,
                    "created_at": seen.created_at,
                    "open": seen.open,
                    "agent": seen.agent,
                    "team": seen.team,
                    "category": seen.category,
                    "first_response_at": seen.first_response_at,
                    "resolved_at": seen.resolved_at,
                    "breached": seen.breached,
                    "has_sla": seen.has_sla,
                }
            },
            upsert=True,
            session=self._session,
        )

    async def bump(self, bumps: list[DayBump]) -> None:
        for b in bumps:
            if b.empty():
                continue
            await self._days.update_one(
                {"day": _day_key(b.day), "dim": b.dim, "key": b.key},
                _update(b),
                upsert=True,
                session=self._session,
            )

    async def days(self, dims: tuple[str, ...], first: date, last: date) -> list[DayAggregate]:
        """The aggregates of these dimensions from ``first`` to ``last`` (inclusive)."""
        cursor = self._days.find(
            {"dim": {"$in": list(dims)}, "day": {"$gte": _day_key(first), "$lte": _day_key(last)}},
            sort=[("day", 1), ("dim", 1), ("key", 1)],
            session=self._session,
        )
        return [_aggregate(d) async for d in cursor]

    async def backlog_before(self, dim: str, first: date, counter: str) -> dict[str, int]:
        """Per key, the sum of ``counter`` over every day before ``first``: the
        backlog deltas up to the range, read from aggregates only."""
        cursor = self._days.find(
            {"dim": dim, "day": {"$lt": _day_key(first)}, f"{_COUNTS}.{counter}": {"$ne": 0}},
            projection={"key": 1, f"{_COUNTS}.{counter}": 1},
            session=self._session,
        )
        out: dict[str, int] = {}
        async for d in cursor:
            key = str(d["key"])
            out[key] = out.get(key, 0) + int((d.get(_COUNTS) or {}).get(counter, 0))
        return out

    async def forget_user(self, user_id: str, pseudonym_id: str) -> int:
        """User erasure: the pseudonym replaces the user's id as a group key
        (their per-agent figures), in the days' active-user sets and as a
        ticket's last seen agent or requester. How many documents changed."""
        changed = 0
        renamed = await self._days.update_many(
            {"dim": AGENT, "key": user_id},
            {"$set": {"key": pseudonym_id}},
            session=self._session,
        )
        changed += renamed.modified_count
        senders = await self._days.update_many(
            {_USERS: user_id}, {"$set": {f"{_USERS}.$": pseudonym_id}}, session=self._session
        )
        changed += senders.modified_count
        for name in ("agent", "requester"):
            tickets = await self._tickets.update_many(
                {name: user_id}, {"$set": {name: pseudonym_id}}, session=self._session
            )
            changed += tickets.modified_count
        return changed
