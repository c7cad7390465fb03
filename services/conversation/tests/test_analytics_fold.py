"""Folding events into day aggregates, and reading rows from them: pure logic."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from confab.conversation.v1 import conversation_pb2 as cpb
from confab.conversation.v1 import events_pb2 as ev
from confab.conversation.v1 import support_pb2 as spb
from confab_core.errors import InvalidArgument
from conversation.handlers.analytics import (
    Durations,
    buckets,
    chat_usage,
    parse_range,
    percentile,
    support_rows,
)
from conversation.handlers.analytics_fold import fold
from conversation.storage.analytics import DayAggregate, DayBump, TicketSeen

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday


def ticket(
    status: int = spb.TICKET_STATUS_QUEUED,
    assignee: str = "",
    team: str = "",
    category: str = "billing",
    first_response: datetime | None = None,
    resolved: datetime | None = None,
    sla: int = spb.SLA_STATUS_UNSPECIFIED,
) -> spb.Ticket:
    t = spb.Ticket(
        id="tk1",
        conversation_id="c1",
        status=status,  # type: ignore[arg-type]
        assignee_id=assignee,
        team_id=team,
        category=category,
    )
    t.created_at.FromDatetime(T0)
    if first_response is not None:
        t.first_response_at.FromDatetime(first_response)
    if resolved is not None:
        t.resolved_at.FromDatetime(resolved)
    t.sla.status = sla  # type: ignore[assignment]
    return t


def event(
    seq: int, at: datetime, kind: str, t: spb.Ticket, **extra: object
) -> ev.ConversationEvent:
    e = ev.ConversationEvent(tenant_id="t", conversation_id="c1", event_seq=seq, event_id=f"e{seq}")
    e.occurred_at.FromDatetime(at)
    if kind == "ticket_updated":
        e.ticket_updated.CopyFrom(ev.TicketUpdated(ticket=t, change=str(extra.get("change", ""))))
    elif kind == "ticket_assigned":
        e.ticket_assigned.CopyFrom(ev.TicketAssigned(ticket=t))
    elif kind == "sla_breached":
        e.sla_breached.CopyFrom(ev.SlaAlert(ticket=t, metric=spb.SLA_METRIC_RESOLUTION))
    return e


def by(bumps: list[DayBump]) -> dict[tuple[str, str, str], DayBump]:
    return {(b.day.isoformat(), b.dim, b.key): b for b in bumps}


def run(events: list[ev.ConversationEvent]) -> tuple[TicketSeen | None, list[DayBump]]:
    seen: TicketSeen | None = None
    out: list[DayBump] = []
    for e in events:
        f = fold(e, seen)
        seen = f.ticket or seen
        out.extend(f.bumps)
    return seen, out


def test_opening_counts_volume_and_backlog_for_every_dimension() -> None:
    seen, bumps = run([event(1, T0, "ticket_updated", ticket(), change="opened")])
    got = by(bumps)
    day = "2026-11-02"
    for dim, key in (("all", ""), ("agent", ""), ("team", ""), ("category", "billing")):
        assert got[(day, dim, key)].counts == {"opened": 1, "backlog_delta": 1}
    assert seen is not None and seen.open and seen.category == "billing"


def test_a_whole_life_gives_durations_on_the_days_they_happened() -> None:
    answered = T0 + timedelta(minutes=30)
    resolved = T0 + timedelta(days=1, hours=2)
    life = [
        event(1, T0, "ticket_updated", ticket()),
        event(
            2,
            T0 + timedelta(minutes=5),
            "ticket_assigned",
            ticket(status=spb.TICKET_STATUS_ASSIGNED, assignee="ann", team="t1"),
        ),
        event(
            3,
            answered,
            "ticket_updated",
            ticket(
                status=spb.TICKET_STATUS_ASSIGNED,
                assignee="ann",
                team="t1",
                first_response=answered,
            ),
        ),
        event(
            4,
            resolved,
            "ticket_updated",
            ticket(
                status=spb.TICKET_STATUS_RESOLVED,
                assignee="ann",
                team="t1",
                first_response=answered,
                resolved=resolved,
                sla=spb.SLA_STATUS_HIT,
            ),
        ),
    ]
    seen, bumps = run(life)
    assert seen is not None and not seen.open
    rows = support_rows(
        aggregate(bumps, "agent"), {}, T0.date(), T0.date() + timedelta(days=2), "day"
    )
    ann = [r for r in rows if r.group == "ann"]
    assert [(r.bucket_start.day, r.assigned, r.resolved, r.backlog) for r in ann] == [
        (2, 1, 0, 1),
        (3, 0, 1, 0),
    ]
    assert ann[0].first_response == Durations(1, 1800.0, 1800.0)
    assert ann[1].resolution == Durations(1, 93600.0, 93600.0)
    assert (ann[1].sla_hit, ann[1].sla_missed, ann[1].sla_hit_rate) == (1, 0, 1.0)
    # The unassigned group held it until the assignment, the same day.
    none = [r for r in rows if r.group == ""]
    assert [(r.opened, r.backlog) for r in none] == [(1, 0)]


def test_a_breach_makes_the_resolution_a_miss_and_counts_once() -> None:
    base = dict(status=spb.TICKET_STATUS_ASSIGNED, assignee="ann")
    done = T0 + timedelta(hours=9)
    _, bumps = run(
        [
            event(1, T0, "ticket_updated", ticket(**base)),  # type: ignore[arg-type]
            event(2, T0 + timedelta(hours=8), "sla_breached", ticket(**base)),  # type: ignore[arg-type]
            event(
                3,
                done,
                "ticket_updated",
                ticket(status=spb.TICKET_STATUS_RESOLVED, assignee="ann", resolved=done),
            ),
        ]
    )
    [row] = support_rows(aggregate(bumps, "all"), {}, T0.date(), T0.date(), "day")
    assert (row.sla_breaches, row.sla_hit, row.sla_missed, row.sla_hit_rate) == (1, 0, 1, 0.0)


def test_reopen_and_resolve_again_counts_two_resolutions_and_backlog_follows() -> None:
    r1, r2 = T0 + timedelta(hours=1), T0 + timedelta(hours=3)
    _, bumps = run(
        [
            event(1, T0, "ticket_updated", ticket()),
            event(2, r1, "ticket_updated", ticket(status=spb.TICKET_STATUS_RESOLVED, resolved=r1)),
            event(
                3,
                r1 + timedelta(hours=1),
                "ticket_updated",
                ticket(status=spb.TICKET_STATUS_QUEUED, resolved=r1),
            ),
            event(4, r2, "ticket_updated", ticket(status=spb.TICKET_STATUS_RESOLVED, resolved=r2)),
        ]
    )
    [row] = support_rows(aggregate(bumps, "all"), {}, T0.date(), T0.date(), "day")
    assert (row.opened, row.resolved, row.backlog) == (1, 2, 0)
    assert row.resolution == Durations(2, 3600.0, 10800.0)


def test_moving_category_moves_the_backlog() -> None:
    _, bumps = run(
        [
            event(1, T0, "ticket_updated", ticket(category="billing")),
            event(2, T0 + timedelta(days=1), "ticket_updated", ticket(category="tech")),
        ]
    )
    rows = support_rows(
        aggregate(bumps, "category"), {}, T0.date(), T0.date() + timedelta(days=1), "day"
    )
    assert [(r.bucket_start.day, r.group, r.backlog) for r in rows] == [
        (2, "billing", 1),
        (3, "billing", 0),
        (3, "tech", 1),
    ]


def test_weeks_start_on_monday_and_are_clipped_to_the_range() -> None:
    first, last = date(2026, 11, 4), date(2026, 11, 17)  # Wednesday .. Tuesday
    assert [(s.isoformat(), e.isoformat()) for s, e in buckets(first, last, "week")] == [
        ("2026-11-04", "2026-11-08"),
        ("2026-11-09", "2026-11-15"),
        ("2026-11-16", "2026-11-17"),
    ]


def test_backlog_carries_from_before_the_range() -> None:
    rows = support_rows([], {"": 3}, date(2026, 11, 2), date(2026, 11, 3), "day")
    assert [(r.bucket_start.day, r.backlog, r.opened) for r in rows] == [(2, 3, 0), (3, 3, 0)]


def test_messages_count_per_day_and_channel_and_senders_are_distinct() -> None:
    bumps: list[DayBump] = []
    for i, (sender, kind, conv) in enumerate(
        [
            ("ann", cpb.MESSAGE_KIND_TEXT, "c1"),
            ("ann", cpb.MESSAGE_KIND_TEXT, "c1"),
            ("bob", cpb.MESSAGE_KIND_FILE, "c2"),
            ("confab-bot", cpb.MESSAGE_KIND_BOT, "c2"),
            ("confab-system", cpb.MESSAGE_KIND_SYSTEM, "c2"),
        ]
    ):
        e = ev.ConversationEvent(tenant_id="t", conversation_id=conv, event_seq=i + 1)
        e.message_created.conversation_kind = cpb.CONVERSATION_KIND_PUBLIC_CHANNEL
        m = e.message_created.message
        m.sender_id, m.kind, m.text = sender, kind, "words never stored"  # type: ignore[assignment]
        m.created_at.FromDatetime(T0)
        bumps.extend(fold(e, None).bumps)
    assert "words" not in repr(bumps)
    usage = chat_usage(aggregate(bumps, "chat", "channel"), T0.date(), T0.date(), 1)
    assert [(d.messages, d.active_users) for d in usage.days] == [(4, 2)]
    assert usage.active_users == 2
    assert [(c.conversation_id, c.kind, c.messages) for c in usage.busiest] == [
        ("c1", "public_channel", 2)
    ]


def test_other_events_fold_nothing() -> None:
    e = ev.ConversationEvent(tenant_id="t", conversation_id="c1", event_seq=1)
    e.read_marker_changed.user_id = "ann"
    assert fold(e, None).bumps == [] and fold(e, None).ticket is None


def test_percentiles_are_nearest_rank() -> None:
    samples = list(range(1, 11))
    assert (percentile(samples, 0.5), percentile(samples, 0.9)) == (5.0, 9.0)
    assert percentile([], 0.9) == 0.0 and percentile([7], 0.5) == 7.0


@pytest.mark.parametrize(
    ("first", "last"),
    [
        ("2026-11-02", "2026-11-01"),
        ("2026-13-01", "2026-12-01"),
        ("", ""),
        ("2025-01-01", "2026-01-02"),
    ],
)
def test_bad_ranges_are_refused(first: str, last: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_range(first, last)
    assert err.value.code == "invalid_range"


def test_a_year_is_a_valid_range() -> None:
    assert parse_range("2024-01-01", "2024-12-31") == (date(2024, 1, 1), date(2024, 12, 31))


def aggregate(bumps: list[DayBump], *dims: str) -> list[DayAggregate]:
    """What storage would hold after applying ``bumps`` (merged per document)."""
    docs: dict[tuple[date, str, str], DayAggregate] = {}
    for b in bumps:
        if b.dim not in dims:
            continue
        old = docs.get((b.day, b.dim, b.key))
        counts = dict(old.counts) if old else {}
        for k, v in b.counts.items():
            counts[k] = counts.get(k, 0) + v
        samples = dict(old.samples) if old else {}
        for k, s in b.samples.items():
            samples[k] = samples.get(k, ()) + s
        docs[(b.day, b.dim, b.key)] = DayAggregate(
            b.day,
            b.dim,
            b.key,
            counts,
            samples,
            (old.users if old else frozenset()) | b.users,
            {**(old.labels if old else {}), **b.labels},
        )
    return sorted(docs.values(), key=lambda a: (a.day, a.dim, a.key))


def support_message(seq: int, at: datetime, sender: str, role: str) -> ev.ConversationEvent:
    e = ev.ConversationEvent(tenant_id="t", conversation_id="c1", event_seq=seq)
    e.message_created.conversation_kind = cpb.CONVERSATION_KIND_SUPPORT
    m = e.message_created.message
    m.sender_id, m.sender_role, m.kind = sender, role, cpb.MESSAGE_KIND_TEXT
    m.created_at.FromDatetime(at)
    return e


def test_the_first_staff_message_is_the_first_response_once() -> None:
    opened = ticket()
    opened.requester_id = "mia"
    seen, _ = run([event(1, T0, "ticket_updated", opened)])
    bumps: list[DayBump] = []
    for seq, (minutes, sender, role) in enumerate(
        [(5, "mia", "member"), (10, "bob", "member"), (15, "ann", "agent"), (20, "ann", "agent")],
        start=2,
    ):
        f = fold(support_message(seq, T0 + timedelta(minutes=minutes), sender, role), seen)
        seen = f.ticket or seen
        bumps.extend(f.bumps)
    [row] = support_rows(aggregate(bumps, "all"), {}, T0.date(), T0.date(), "day")
    assert row.first_response == Durations(1, 900.0, 900.0)
    # The ticket later saying when it was answered does not count it again.
    later = ticket(first_response=T0 + timedelta(minutes=15))
    later.requester_id = "mia"
    assert seen is not None and seen.first_response_at == T0 + timedelta(minutes=15)
    assert fold(event(9, T0, "ticket_updated", later), seen).bumps == []
