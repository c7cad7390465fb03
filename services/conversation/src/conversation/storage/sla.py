"""SLA storage: the tenant's policy (``sla_policies``, one document per tenant),
each ticket's clocks (``ticket_sla``, one document per ticket) and the durable
timers the scheduler fires (``sla_timers``). None of it is user content: ids,
priorities, instants and durations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from confab_core.mongo import Doc, TenantCollection

POLICY_COLLECTION = "sla_policies"
STATE_COLLECTION = "ticket_sla"
TIMER_COLLECTION = "sla_timers"

INDEXES: dict[str, list[IndexModel]] = {
    POLICY_COLLECTION: [IndexModel([("tenant_id", ASCENDING)], unique=True)],
    STATE_COLLECTION: [
        IndexModel([("tenant_id", ASCENDING), ("_id", ASCENDING)]),
        IndexModel([("tenant_id", ASCENDING), ("conversation_id", ASCENDING)]),
    ],
    TIMER_COLLECTION: [
        # The scheduler's scan, across tenants.
        IndexModel([("fired", ASCENDING), ("due_at", ASCENDING)]),
        IndexModel([("actions_pending", ASCENDING), ("fired_at", ASCENDING)]),
        IndexModel([("tenant_id", ASCENDING), ("ticket_id", ASCENDING)]),
        IndexModel([("tenant_id", ASCENDING), ("conversation_id", ASCENDING)]),
    ],
}


@dataclass(frozen=True, slots=True)
class SlaTargetsRecord:
    priority: str
    first_response: int
    next_response: int
    resolution: int


@dataclass(frozen=True, slots=True)
class SlaPolicyRecord:
    targets: tuple[SlaTargetsRecord, ...]
    business_hours_only: bool
    timezone: str
    # (weekday 0 Monday .. 6, start minute, end minute), wall clock.
    intervals: tuple[tuple[int, int, int], ...]
    # ISO dates in the timezone.
    holidays: tuple[str, ...]
    warning_seconds: int
    breach_actions: tuple[str, ...]
    updated_at: datetime | None
    version: int


@dataclass(frozen=True, slots=True)
class Clock:
    """One SLA clock of a ticket (see handlers/sla_clocks.py for the rules)."""

    metric: str
    target: int
    started_at: datetime
    # Business time used before ``running_since`` (or up to the pause).
    used: timedelta
    # None while paused or finished.
    running_since: datetime | None
    due_at: datetime | None
    warn_at: datetime | None
    met_at: datetime | None = None
    stopped: bool = False
    breached: bool = False
    warned: bool = False

    @property
    def open(self) -> bool:
        return self.met_at is None and not self.stopped

    def missed(self, now: datetime) -> bool:
        return self.breached or (self.open and self.due_at is not None and now > self.due_at)


@dataclass(frozen=True, slots=True)
class SlaState:
    priority: str
    ticket_status: str
    # Every clock the ticket ever had, in start order (an index names one).
    clocks: tuple[Clock, ...] = ()


@dataclass(frozen=True, slots=True)
class TicketSlaRecord:
    ticket_id: str
    conversation_id: str
    state: SlaState
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class TimerRecord:
    id: str
    tenant_id: str
    ticket_id: str
    conversation_id: str
    index: int
    metric: str
    kind: str
    due_at: datetime
    # Breach actions still to apply after the timer fired.
    actions_pending: tuple[str, ...] = ()


def _policy_doc(p: SlaPolicyRecord) -> Doc:
    return {
        "targets": [
            {
                "priority": t.priority,
                "first_response": t.first_response,
                "next_response": t.next_response,
                "resolution": t.resolution,
            }
            for t in p.targets
        ],
        "business_hours_only": p.business_hours_only,
        "timezone": p.timezone,
        "intervals": [list(i) for i in p.intervals],
        "holidays": list(p.holidays),
        "warning_seconds": p.warning_seconds,
        "breach_actions": list(p.breach_actions),
        "updated_at": p.updated_at,
        "version": p.version,
    }


def _policy(doc: Doc) -> SlaPolicyRecord:
    return SlaPolicyRecord(
        targets=tuple(
            SlaTargetsRecord(
                str(t["priority"]),
                int(t["first_response"]),
                int(t["next_response"]),
                int(t["resolution"]),
            )
            for t in doc.get("targets", [])
        ),
        business_hours_only=bool(doc.get("business_hours_only", False)),
        timezone=str(doc.get("timezone", "UTC")),
        intervals=tuple((int(a), int(b), int(c)) for a, b, c in doc.get("intervals", [])),
        holidays=tuple(str(h) for h in doc.get("holidays", [])),
        warning_seconds=int(doc.get("warning_seconds", 0)),
        breach_actions=tuple(str(a) for a in doc.get("breach_actions", [])),
        updated_at=doc.get("updated_at"),
        version=int(doc["version"]),
    )


def _clock_doc(c: Clock) -> Doc:
    return {
        "metric": c.metric,
        "target": c.target,
        "started_at": c.started_at,
        "used": c.used.total_seconds(),
        "running_since": c.running_since,
        "due_at": c.due_at,
        "warn_at": c.warn_at,
        "met_at": c.met_at,
        "stopped": c.stopped,
        "breached": c.breached,
        "warned": c.warned,
    }


def _utc(value: Any) -> Any:
    # BSON dates come back naive (UTC); the model compares aware instants.
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _clock(doc: Doc) -> Clock:
    return Clock(
        metric=str(doc["metric"]),
        target=int(doc["target"]),
        started_at=_utc(doc["started_at"]),
        used=timedelta(seconds=float(doc["used"])),
        running_since=_utc(doc.get("running_since")),
        due_at=_utc(doc.get("due_at")),
        warn_at=_utc(doc.get("warn_at")),
        met_at=_utc(doc.get("met_at")),
        stopped=bool(doc.get("stopped", False)),
        breached=bool(doc.get("breached", False)),
        warned=bool(doc.get("warned", False)),
    )


def _state(doc: Doc) -> TicketSlaRecord:
    return TicketSlaRecord(
        ticket_id=str(doc["_id"]),
        conversation_id=str(doc["conversation_id"]),
        state=SlaState(
            priority=str(doc["priority"]),
            ticket_status=str(doc["ticket_status"]),
            clocks=tuple(_clock(c) for c in doc.get("clocks", [])),
        ),
        updated_at=_utc(doc["updated_at"]),
    )


def _timer(doc: Doc) -> TimerRecord:
    return TimerRecord(
        id=str(doc["_id"]),
        tenant_id=str(doc["tenant_id"]),
        ticket_id=str(doc["ticket_id"]),
        conversation_id=str(doc["conversation_id"]),
        index=int(doc["index"]),
        metric=str(doc["metric"]),
        kind=str(doc["kind"]),
        due_at=_utc(doc["due_at"]),
        actions_pending=tuple(str(a) for a in doc.get("actions_pending", [])),
    )


class SlaPolicyRepo:
    def __init__(self, col: TenantCollection, session: AsyncClientSession | None = None) -> None:
        self._col = col
        self._session = session

    async def get(self) -> SlaPolicyRecord | None:
        doc = await self._col.find_one({"_id": self._col.tenant_id}, session=self._session)
        return None if doc is None else _policy(doc)

    async def replace_if_version(self, policy: SlaPolicyRecord, expected_version: int) -> bool:
        """Stores ``policy`` if the stored version is still ``expected_version``
        (0: none stored yet); False when another replacement came first."""
        try:
            result = await self._col.update_one(
                {"_id": self._col.tenant_id, "version": expected_version},
                {"$set": _policy_doc(policy)},
                upsert=expected_version == 0,
                session=self._session,
            )
        except DuplicateKeyError:
            return False
        return result.matched_count == 1 or result.upserted_id is not None


class TicketSlaRepo:
    """The clocks of a tenant's tickets and their armed timers."""

    def __init__(
        self,
        states: TenantCollection,
        timers: TenantCollection,
        session: AsyncClientSession | None = None,
    ) -> None:
        self._states = states
        self._timers = timers
        self._session = session

    @property
    def tenant_id(self) -> str:
        return self._states.tenant_id

    async def get(self, ticket_id: str) -> TicketSlaRecord | None:
        doc = await self._states.find_one({"_id": ticket_id}, session=self._session)
        return None if doc is None else _state(doc)

    async def many(self, ticket_ids: list[str]) -> dict[str, TicketSlaRecord]:
        cursor = self._states.find({"_id": {"$in": ticket_ids}}, session=self._session)
        return {str(doc["_id"]): _state(doc) async for doc in cursor}

    async def put(self, record: TicketSlaRecord) -> None:
        s = record.state
        await self._states.update_one(
            {"_id": record.ticket_id},
            {
                "$set": {
                    "conversation_id": record.conversation_id,
                    "priority": s.priority,
                    "ticket_status": s.ticket_status,
                    "clocks": [_clock_doc(c) for c in s.clocks],
                    "updated_at": record.updated_at,
                }
            },
            upsert=True,
            session=self._session,
        )

    async def arm(self, record: TicketSlaRecord, timers: list[TimerRecord]) -> None:
        """Replaces the ticket's unfired timers with ``timers``."""
        await self._timers.delete_many(
            {"ticket_id": record.ticket_id, "fired": False}, session=self._session
        )
        await self._timers.insert_many(
            [
                {
                    "_id": t.id,
                    "ticket_id": t.ticket_id,
                    "conversation_id": t.conversation_id,
                    "index": t.index,
                    "metric": t.metric,
                    "kind": t.kind,
                    "due_at": t.due_at,
                    "fired": False,
                    "actions_pending": [],
                }
                for t in timers
            ],
            session=self._session,
        )

    async def fire(self, timer: TimerRecord, at: datetime, actions: tuple[str, ...]) -> bool:
        """Marks the timer fired, once: False when it already fired or was
        re-armed (another due time) since it was read."""
        doc = await self._timers.find_one_and_update(
            {"_id": timer.id, "fired": False, "due_at": timer.due_at},
            {"$set": {"fired": True, "fired_at": at, "actions_pending": list(actions)}},
            session=self._session,
        )
        return doc is not None

    async def discard(self, timer: TimerRecord) -> None:
        """Drops a timer that no longer stands (its clock was met or re-armed)."""
        await self._timers.delete_many(
            {"_id": timer.id, "fired": False, "due_at": timer.due_at}, session=self._session
        )

    async def actions_done(self, timer_id: str) -> None:
        await self._timers.update_one(
            {"_id": timer_id}, {"$set": {"actions_pending": []}}, session=self._session
        )

    async def purge_conversation(self, conversation_id: str) -> None:
        """Retention: a ticket's clocks and timers go with its conversation."""
        flt = {"conversation_id": conversation_id}
        await self._timers.delete_many(flt, session=self._session)
        await self._states.delete_many(flt, session=self._session)


class SlaTimerQueue:
    """Service-wide: timers of every tenant that are due (the scheduler's scan)."""

    def __init__(self, col: AsyncCollection[Doc]) -> None:
        self._col = col

    async def due(self, now: datetime, limit: int) -> list[TimerRecord]:
        cursor = self._col.find({"fired": False, "due_at": {"$lte": now}}).sort("due_at", 1)
        return [_timer(doc) async for doc in cursor.limit(limit)]

    async def with_pending_actions(self, limit: int) -> list[TimerRecord]:
        cursor = self._col.find({"actions_pending.0": {"$exists": True}}).sort("fired_at", 1)
        return [_timer(doc) async for doc in cursor.limit(limit)]
