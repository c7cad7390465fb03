"""Support and chat analytics: folding events into day aggregates, and the
tenant admins' reads of them.

Reads only ever touch aggregates: a range of day documents for the figures,
and the earlier days' backlog deltas for the backlog (one small projection).
Percentiles are exact (every sample of the range is read) and nearest-rank.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from prometheus_client import Counter, Histogram

from confab.conversation.v1 import events_pb2
from confab_core.errors import InvalidArgument, PermissionDenied
from confab_core.identity import ROLE_TENANT_ADMIN, Caller
from conversation.handlers.analytics_fold import (
    ASSIGNED,
    BACKLOG,
    FIRST_RESPONSE,
    MESSAGES,
    OPENED,
    RESOLUTION,
    RESOLVED,
    SLA_BREACHES,
    SLA_HIT,
    SLA_MISSED,
    Fold,
    fold,
    in_support,
    ticket_of,
    wanted,
)
from conversation.storage.analytics import (
    AGENT,
    ALL,
    CATEGORY,
    CHANNEL,
    CHAT,
    TEAM,
    DayAggregate,
)
from conversation.storage.db import Database, Transaction

MAX_RANGE_DAYS = 366
DEFAULT_BUSIEST = 10
MAX_BUSIEST = 100
BUCKETS = ("day", "week")
GROUPS = {"none": ALL, "agent": AGENT, "team": TEAM, "category": CATEGORY}

# No tenant label: one series per figure, whatever the number of tenants.
_DURATION_BUCKETS = (60, 300, 900, 1800, 3600, 4 * 3600, 8 * 3600, 86400, 3 * 86400, 7 * 86400)
TICKETS_OPENED = Counter("confab_support_tickets_opened_total", "Tickets opened")
TICKETS_RESOLVED = Counter("confab_support_tickets_resolved_total", "Ticket resolutions")
FIRST_RESPONSE_SECONDS = Histogram(
    "confab_support_first_response_seconds",
    "From a ticket's opening to its first staff answer",
    buckets=_DURATION_BUCKETS,
)
RESOLUTION_SECONDS = Histogram(
    "confab_support_resolution_seconds",
    "From a ticket's opening to its resolution",
    buckets=_DURATION_BUCKETS,
)
SLA_RESULTS = Counter(
    "confab_support_sla_total", "Resolutions of tickets with an SLA, by result", ["result"]
)
SLA_BREACHED = Counter("confab_support_sla_breaches_total", "SLA clocks that breached")
CHAT_MESSAGES = Counter("confab_chat_messages_total", "Messages sent (system messages not counted)")
EVENTS_APPLIED = Counter(
    "confab_analytics_events_total", "Events the analytics consumer looked at", ["outcome"]
)


def _require_admin(caller: Caller) -> None:
    if not caller.has_role(ROLE_TENANT_ADMIN):
        raise PermissionDenied("tenant admins only", "forbidden")


def parse_range(first: str, last: str) -> tuple[date, date]:
    """The inclusive day range, refused as ``invalid_range`` unless both are
    ISO dates, in order, at most MAX_RANGE_DAYS days."""
    try:
        start, end = date.fromisoformat(first), date.fromisoformat(last)
    except ValueError:
        raise InvalidArgument("from and to must be dates (YYYY-MM-DD)", "invalid_range") from None
    if end < start:
        raise InvalidArgument("to is before from", "invalid_range")
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise InvalidArgument(f"a range is at most {MAX_RANGE_DAYS} days", "invalid_range")
    return start, end


def percentile(ordered: Sequence[int], p: float) -> float:
    """Nearest-rank percentile of ascending samples (0 for none)."""
    if not ordered:
        return 0.0
    return float(ordered[max(0, math.ceil(p * len(ordered)) - 1)])


@dataclass(frozen=True, slots=True)
class Durations:
    count: int
    median: float
    p90: float

    @classmethod
    def of(cls, samples: Iterable[int]) -> Durations:
        ordered = sorted(samples)
        return cls(len(ordered), percentile(ordered, 0.5), percentile(ordered, 0.9))


@dataclass(frozen=True, slots=True)
class SupportRow:
    bucket_start: date
    group: str
    opened: int
    assigned: int
    resolved: int
    backlog: int
    first_response: Durations
    resolution: Durations
    sla_hit: int
    sla_missed: int
    sla_breaches: int

    @property
    def sla_hit_rate(self) -> float:
        judged = self.sla_hit + self.sla_missed
        return self.sla_hit / judged if judged else 0.0


@dataclass(frozen=True, slots=True)
class ChatDay:
    day: date
    messages: int
    active_users: int


@dataclass(frozen=True, slots=True)
class ChannelUsage:
    conversation_id: str
    kind: str
    messages: int


@dataclass(frozen=True, slots=True)
class ChannelDay:
    day: date
    conversation_id: str
    messages: int


@dataclass(frozen=True, slots=True)
class ChatUsage:
    days: list[ChatDay]
    active_users: int
    busiest: list[ChannelUsage]
    busiest_days: list[ChannelDay]


def bucket_start(day: date, bucket: str, first: date) -> date:
    if bucket == "week":
        return max(first, day - timedelta(days=day.weekday()))
    return day


def buckets(first: date, last: date, bucket: str) -> list[tuple[date, date]]:
    """(start, last day) of each bucket of the range, clipped to it."""
    out = []
    start = first
    while start <= last:
        end = start if bucket == "day" else start + timedelta(days=6 - start.weekday())
        out.append((start, min(end, last)))
        start = out[-1][1] + timedelta(days=1)
    return out


def support_rows(
    days: list[DayAggregate],
    backlog_before: dict[str, int],
    first: date,
    last: date,
    bucket: str,
) -> list[SupportRow]:
    """The rows of one dimension: per bucket, per key with any figure or backlog."""
    by_key_day: dict[str, dict[date, DayAggregate]] = {}
    for agg in days:
        by_key_day.setdefault(agg.key, {})[agg.day] = agg
    keys = sorted(set(by_key_day) | set(backlog_before))
    rows = []
    running = dict(backlog_before)
    for start, end in buckets(first, last, bucket):
        for key in keys:
            of_key = by_key_day.get(key, {})
            span = [of_key[d] for d in _days(start, end) if d in of_key]
            running[key] = running.get(key, 0) + sum(a.counts.get(BACKLOG, 0) for a in span)
            row = _row(start, key, span, running[key])
            if span or row.backlog:
                rows.append(row)
    return rows


def _days(start: date, end: date) -> Iterable[date]:
    return (start + timedelta(days=i) for i in range((end - start).days + 1))


def _row(start: date, key: str, span: list[DayAggregate], backlog: int) -> SupportRow:
    def total(name: str) -> int:
        return sum(a.counts.get(name, 0) for a in span)

    def samples(name: str) -> list[int]:
        return [s for a in span for s in a.samples.get(name, ())]

    return SupportRow(
        bucket_start=start,
        group=key,
        opened=total(OPENED),
        assigned=total(ASSIGNED),
        resolved=total(RESOLVED),
        # Never below zero: a ticket first seen closed by a late-started consumer
        # can only ever have been subtracted.
        backlog=max(0, backlog),
        first_response=Durations.of(samples(FIRST_RESPONSE)),
        resolution=Durations.of(samples(RESOLUTION)),
        sla_hit=total(SLA_HIT),
        sla_missed=total(SLA_MISSED),
        sla_breaches=total(SLA_BREACHES),
    )


def chat_usage(days: list[DayAggregate], first: date, last: date, limit: int) -> ChatUsage:
    tenant = {a.day: a for a in days if a.dim == CHAT}
    per_day = [
        ChatDay(
            d,
            tenant[d].counts.get(MESSAGES, 0) if d in tenant else 0,
            len(tenant[d].users) if d in tenant else 0,
        )
        for d in _days(first, last)
    ]
    senders = set().union(*(a.users for a in tenant.values())) if tenant else set()
    totals: dict[str, int] = {}
    kinds: dict[str, str] = {}
    for a in days:
        if a.dim == CHANNEL:
            totals[a.key] = totals.get(a.key, 0) + a.counts.get(MESSAGES, 0)
            kinds[a.key] = a.labels.get("kind", kinds.get(a.key, ""))
    top = sorted(totals, key=lambda k: (-totals[k], k))[:limit]
    chosen = set(top)
    return ChatUsage(
        days=per_day,
        active_users=len(senders),
        busiest=[ChannelUsage(k, kinds[k], totals[k]) for k in top],
        busiest_days=[
            ChannelDay(a.day, a.key, a.counts.get(MESSAGES, 0))
            for a in days
            if a.dim == CHANNEL and a.key in chosen and a.counts.get(MESSAGES, 0)
        ],
    )


class AnalyticsHandler:
    """Applies events (the consumer) and answers tenant admins' reads."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def apply(self, event: events_pb2.ConversationEvent) -> Fold | None:
        """Folds one event into its tenant's aggregates, at most once per
        (conversation, event_seq); None when there was nothing to do."""
        if not wanted(event) or not event.tenant_id or not event.conversation_id:
            EVENTS_APPLIED.labels("ignored").inc()
            return None

        async def body(t: Transaction) -> Fold | None:
            store = t.for_tenant(event.tenant_id).analytics
            if not await store.claim(event.conversation_id, event.event_seq):
                return None
            ticket_id = ticket_of(event)
            prior = None
            if ticket_id:
                prior = await store.ticket(ticket_id)
            elif in_support(event):
                prior = await store.ticket_in(event.conversation_id)
            folded = fold(event, prior)
            await store.bump(folded.bumps)
            if folded.ticket is not None:
                await store.save_ticket(folded.ticket)
            return folded

        folded = await self._db.transaction(body)
        if folded is None:
            EVENTS_APPLIED.labels("duplicate").inc()
            return None
        EVENTS_APPLIED.labels("applied").inc()
        _observe(folded)
        return folded

    async def support(
        self, caller: Caller, first_day: str, last_day: str, bucket: str, group_by: str
    ) -> list[SupportRow]:
        _require_admin(caller)
        first, last = parse_range(first_day, last_day)
        if bucket not in BUCKETS:
            raise InvalidArgument("bucket must be day or week", "invalid_bucket")
        dim = GROUPS.get(group_by)
        if dim is None:
            raise InvalidArgument(
                "group_by must be none, agent, team or category", "invalid_group_by"
            )
        store = self._db.for_tenant(caller.tenant_id).analytics
        days = await store.days((dim,), first, last)
        before = await store.backlog_before(dim, first, BACKLOG)
        return support_rows(days, before, first, last, bucket)

    async def chat(self, caller: Caller, first_day: str, last_day: str, limit: int) -> ChatUsage:
        _require_admin(caller)
        first, last = parse_range(first_day, last_day)
        limit = limit or DEFAULT_BUSIEST
        if not 1 <= limit <= MAX_BUSIEST:
            raise InvalidArgument(f"limit must be 1..{MAX_BUSIEST}", "invalid_limit")
        store = self._db.for_tenant(caller.tenant_id).analytics
        days = await store.days((CHAT, CHANNEL), first, last)
        return chat_usage(days, first, last, limit)


def _observe(folded: Fold) -> None:
    """Prometheus figures, once per applied event (after its commit)."""
    for b in folded.bumps:
        if b.dim == CHAT:
            CHAT_MESSAGES.inc(b.counts.get(MESSAGES, 0))
        if b.dim != ALL:
            continue
        TICKETS_OPENED.inc(b.counts.get(OPENED, 0))
        TICKETS_RESOLVED.inc(b.counts.get(RESOLVED, 0))
        SLA_RESULTS.labels("hit").inc(b.counts.get(SLA_HIT, 0))
        SLA_RESULTS.labels("missed").inc(b.counts.get(SLA_MISSED, 0))
        SLA_BREACHED.inc(b.counts.get(SLA_BREACHES, 0))
        for s in b.samples.get(FIRST_RESPONSE, ()):
            FIRST_RESPONSE_SECONDS.observe(s)
        for s in b.samples.get(RESOLUTION, ()):
            RESOLUTION_SECONDS.observe(s)
