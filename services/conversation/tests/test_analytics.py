"""Analytics end to end on real servers: events written through the unit of work,
published by the real relay to the real broker, opened and folded by the
analytics consumer into aggregates in the real MongoDB-wire server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import events_pb2 as ev
from confab.conversation.v1 import support_pb2 as spb
from confab_core.clock import FakeClock
from confab_core.errors import InvalidArgument, PermissionDenied
from confab_core.identity import ROLE_AGENT, ROLE_MEMBER, ROLE_TENANT_ADMIN, Caller
from confab_core.kafka import (
    CONVERSATION_EVENTS_TOPIC,
    KafkaSecurity,
    Producer,
    TopicSpec,
    ensure_topics,
)
from confab_devservers import KafkaServer
from conversation.analytics_consumer import AnalyticsConsumer
from conversation.handlers.analytics import AnalyticsHandler, Durations
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.messages import MessageHandler
from conversation.handlers.support import SupportHandler
from conversation.handlers.unit import Change, Taken, UnitOfWork
from conversation.relay import OutboxRelay
from conversation.storage.analytics import ANALYTICS_CURSORS, ANALYTICS_DAYS, ANALYTICS_TICKETS
from conversation.storage.conversations import Claim
from conversation.storage.db import TENANT_COLLECTIONS, Database

from .conftest import create, fresh_tenant, send, user

pytestmark = pytest.mark.asyncio
DEADLINE = 30.0


@pytest_asyncio.fixture
async def kafka(kafka_server: KafkaServer) -> AsyncIterator[str]:
    kafka_server.start()
    await ensure_topics(kafka_server.bootstrap_servers, [TopicSpec(CONVERSATION_EVENTS_TOPIC)])
    yield kafka_server.bootstrap_servers


@pytest_asyncio.fixture
async def producer(kafka: str) -> AsyncIterator[Producer]:
    p = Producer(kafka)
    try:
        yield p
    finally:
        await p.stop()


def admin(tenant: str) -> Caller:
    return user("boss", tenant, ROLE_TENANT_ADMIN)


class Desk:
    """A tenant with a channel and a support conversation whose ticket events go
    through the unit of work, as the support handler writes them."""

    def __init__(self, unit: UnitOfWork, clock: FakeClock, tenant: str) -> None:
        self.unit = unit
        self.clock = clock
        self.tenant = tenant
        self.ann = user("ann", tenant, ROLE_MEMBER, ROLE_AGENT)
        self.mia = user("mia", tenant)
        self.ticket = spb.Ticket(id=f"tk-{uuid.uuid4().hex[:8]}", category="billing")
        self.conversation_id = ""

    async def open(self, conversations: ConversationHandler) -> None:
        created = await create(conversations, self.mia, kind=pb.CONVERSATION_KIND_SUPPORT)
        self.conversation_id = created.conversation.id
        self.ticket.conversation_id = self.conversation_id
        self.ticket.requester_id = self.mia.user_id
        self.ticket.created_at.FromDatetime(self.clock.now())
        await self.change("opened", spb.TICKET_STATUS_QUEUED)

    async def change(self, what: str, status: int, **fields: object) -> None:
        previous = self.ticket.status
        self.ticket.status = status  # type: ignore[assignment]
        for name, value in fields.items():
            if name.endswith("_at"):
                getattr(self.ticket, name).FromDatetime(self.clock.now())
            else:
                setattr(self.ticket, name, value)

        async def body(t: Taken) -> None:
            t.emit(
                ev.ConversationEvent(
                    ticket_updated=ev.TicketUpdated(
                        ticket=self.ticket, change=what, previous_status=previous
                    )
                )
            )

        await self.unit.one(Change(self.ann, self.conversation_id, Claim()), body)


async def topic_records(
    bootstrap: str, conversations: set[str], expected: int
) -> list[ConsumerRecord[bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        CONVERSATION_EVENTS_TOPIC,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    got: list[ConsumerRecord[bytes, bytes]] = []
    try:
        async with asyncio.timeout(DEADLINE):
            while len(got) < expected:
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    got.extend(r for r in records if r.key and r.key.decode() in conversations)
    finally:
        await consumer.stop()
    return got


async def traffic(
    db: Database,
    unit: UnitOfWork,
    clock: FakeClock,
    conversations: ConversationHandler,
    messages: MessageHandler,
) -> tuple[Desk, str]:
    """A day of chat and a ticket's life: opened, assigned, answered 30 minutes
    after opening, resolved two hours after opening."""
    desk = Desk(unit, clock, fresh_tenant())
    channel = await create(
        conversations,
        desk.ann,
        kind=pb.CONVERSATION_KIND_PUBLIC_CHANNEL,
        members=["mia"],
        title="general",
    )
    for sender in (desk.ann, desk.ann, desk.mia):
        await send(messages, sender, channel.conversation.id, text="secret words")
    await desk.open(conversations)
    clock.advance(600)
    await desk.change("assigned", spb.TICKET_STATUS_ASSIGNED, assignee_id="ann", team_id="t1")
    clock.advance(1200)
    await desk.change("first_response", spb.TICKET_STATUS_ASSIGNED, first_response_at=True)
    clock.advance(5400)
    await desk.change("status", spb.TICKET_STATUS_RESOLVED, resolved_at=True)
    return desk, channel.conversation.id


async def test_events_through_the_relay_and_kafka_give_the_figures_and_redelivery_counts_once(
    db: Database,
    unit: UnitOfWork,
    clock: FakeClock,
    conversations: ConversationHandler,
    messages: MessageHandler,
    producer: Producer,
    kafka: str,
) -> None:
    desk, channel = await traffic(db, unit, clock, conversations, messages)
    relay = OutboxRelay(
        db, producer, clock, asyncio.Event(), batch_size=500, poll_seconds=0.05, lease_seconds=10
    )
    assert await relay.publish_once() > 0
    ours = {channel, desk.conversation_id}
    published = await db.db["outbox"].count_documents({"conversation_id": {"$in": list(ours)}})
    records = await topic_records(kafka, ours, published)
    analytics = AnalyticsHandler(db)
    consumer = AnalyticsConsumer(db, analytics, group="analytics-test")
    for record in records:
        await consumer.handle_record(record)

    day = clock.now().date().isoformat()
    boss = admin(desk.tenant)
    before = await analytics.support(boss, day, day, "day", "none")
    [row] = before
    assert (row.opened, row.assigned, row.resolved, row.backlog) == (1, 1, 1, 0)
    assert (row.first_response.median, row.resolution.p90) == (1800.0, 7200.0)
    [ann] = [r for r in await analytics.support(boss, day, day, "week", "agent") if r.group]
    assert (ann.group, ann.resolved, ann.first_response.count) == ("ann", 1, 1)
    usage = await analytics.chat(boss, day, day, 5)
    assert [(d.messages, d.active_users) for d in usage.days] == [(3, 2)]
    assert [(c.conversation_id, c.kind, c.messages) for c in usage.busiest] == [
        (channel, "public_channel", 3)
    ]

    # The broker delivers everything again (a crash before the commit): nothing moves.
    for record in records:
        await consumer.handle_record(record)
    assert await analytics.support(boss, day, day, "day", "none") == before
    assert (await analytics.chat(boss, day, day, 5)).days == usage.days
    # No message content is ever stored.
    raw = [d async for d in db.db[ANALYTICS_DAYS].find({"tenant_id": desk.tenant})]
    assert raw and "secret" not in repr(raw)


async def test_the_consumer_loop_folds_what_the_relay_publishes(
    db: Database,
    unit: UnitOfWork,
    clock: FakeClock,
    conversations: ConversationHandler,
    messages: MessageHandler,
    producer: Producer,
    kafka: str,
) -> None:
    desk, _ = await traffic(db, unit, clock, conversations, messages)
    relay = OutboxRelay(
        db, producer, clock, asyncio.Event(), batch_size=500, poll_seconds=0.05, lease_seconds=10
    )
    await relay.publish_once()
    analytics = AnalyticsHandler(db)
    consumer = AnalyticsConsumer(db, analytics, group=f"analytics-{uuid.uuid4().hex[:8]}")
    loop = asyncio.create_task(consumer.run(kafka, KafkaSecurity()))
    day = clock.now().date().isoformat()
    try:
        async with asyncio.timeout(DEADLINE):
            while True:
                rows = await analytics.support(admin(desk.tenant), day, day, "day", "none")
                if rows and rows[0].resolved == 1:
                    break
                await asyncio.sleep(0.1)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    assert rows[0].opened == 1


async def apply_ticket_life(db: Database, tenant: str, clock: FakeClock) -> None:
    """The folds of a ticket's events, applied directly (no broker needed)."""
    analytics = AnalyticsHandler(db)
    t = spb.Ticket(id="tk1", conversation_id="c-support", category="billing")
    t.created_at.FromDatetime(clock.now())
    steps = [
        (spb.TICKET_STATUS_QUEUED, ""),
        (spb.TICKET_STATUS_ASSIGNED, "ann"),
    ]
    for seq, (status, assignee) in enumerate(steps, start=1):
        t.status, t.assignee_id = status, assignee  # type: ignore[assignment]
        e = ev.ConversationEvent(
            tenant_id=tenant, conversation_id="c-support", event_seq=seq, event_id=f"e{seq}"
        )
        e.occurred_at.FromDatetime(clock.now())
        e.ticket_updated.ticket.CopyFrom(t)
        assert await analytics.apply(e) is not None
    m = ev.ConversationEvent(tenant_id=tenant, conversation_id="c-chan", event_seq=1)
    m.occurred_at.FromDatetime(clock.now())
    m.message_created.message.sender_id = "ann"
    m.message_created.message.kind = pb.MESSAGE_KIND_TEXT
    m.message_created.message.created_at.FromDatetime(clock.now())
    assert await analytics.apply(m) is not None


async def test_only_tenant_admins_read_and_only_their_tenant(
    db: Database, clock: FakeClock
) -> None:
    tenant, other = fresh_tenant(), fresh_tenant()
    await apply_ticket_life(db, tenant, clock)
    analytics = AnalyticsHandler(db)
    day = clock.now().date().isoformat()
    for who in (user("mia", tenant), user("ann", tenant, ROLE_AGENT)):
        with pytest.raises(PermissionDenied) as denied:
            await analytics.support(who, day, day, "day", "none")
        assert denied.value.code == "forbidden"
        with pytest.raises(PermissionDenied):
            await analytics.chat(who, day, day, 0)
    assert [r.backlog for r in await analytics.support(admin(tenant), day, day, "day", "none")] == [
        1
    ]
    # Another tenant's admin sees nothing of it.
    assert await analytics.support(admin(other), day, day, "day", "none") == []
    usage = await analytics.chat(admin(other), day, day, 0)
    assert usage.active_users == 0 and usage.busiest == []


@pytest.mark.parametrize(
    ("bucket", "group", "code"),
    [("month", "none", "invalid_bucket"), ("day", "requester", "invalid_group_by")],
)
async def test_bad_parameters_are_refused_by_name(
    db: Database, bucket: str, group: str, code: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        await AnalyticsHandler(db).support(
            admin(fresh_tenant()), "2026-01-01", "2026-01-02", bucket, group
        )
    assert err.value.code == code
    with pytest.raises(InvalidArgument) as limit:
        await AnalyticsHandler(db).chat(admin(fresh_tenant()), "2026-01-01", "2026-01-02", 101)
    assert limit.value.code == "invalid_limit"


async def test_a_replayed_event_is_not_applied_twice(db: Database, clock: FakeClock) -> None:
    tenant = fresh_tenant()
    await apply_ticket_life(db, tenant, clock)
    e = ev.ConversationEvent(tenant_id=tenant, conversation_id="c-support", event_seq=1)
    e.occurred_at.FromDatetime(clock.now())
    e.ticket_updated.ticket.id = "tk1"
    # An older event_seq than the watermark: a replay.
    assert await AnalyticsHandler(db).apply(e) is None


async def test_user_erasure_replaces_the_agent_and_sender_everywhere(
    db: Database, clock: FakeClock
) -> None:
    tenant = fresh_tenant()
    await apply_ticket_life(db, tenant, clock)
    store = db.for_tenant(tenant).analytics
    assert await store.forget_user("ann", "deleted-0123456789ab") > 0
    for name in (ANALYTICS_DAYS, ANALYTICS_TICKETS):
        raw = [d async for d in db.db[name].find({"tenant_id": tenant})]
        assert raw and "'ann'" not in repr(raw)
    day = clock.now().date().isoformat()
    groups = {
        r.group for r in await AnalyticsHandler(db).support(admin(tenant), day, day, "day", "agent")
    }
    assert "deleted-0123456789ab" in groups and "ann" not in groups


async def test_tenant_erasure_deletes_the_aggregates(db: Database, clock: FakeClock) -> None:
    tenant, other = fresh_tenant(), fresh_tenant()
    await apply_ticket_life(db, tenant, clock)
    await apply_ticket_life(db, other, clock)
    purge = db.purge(tenant)
    for name in (ANALYTICS_DAYS, ANALYTICS_TICKETS, ANALYTICS_CURSORS):
        assert name in TENANT_COLLECTIONS
        while await purge.delete_batch(name, 100):
            pass
        assert await db.db[name].count_documents({"tenant_id": tenant}) == 0
        assert await db.db[name].count_documents({"tenant_id": other}) > 0


async def test_backlog_carries_over_days_before_the_range(db: Database, clock: FakeClock) -> None:
    tenant = fresh_tenant()
    await apply_ticket_life(db, tenant, clock)
    later = (clock.now() + timedelta(days=10)).date().isoformat()
    rows = await AnalyticsHandler(db).support(admin(tenant), later, later, "day", "agent")
    assert [(r.group, r.backlog, r.opened) for r in rows] == [("ann", 1, 0)]


async def test_a_ticket_through_the_support_handler_shows_in_the_figures(
    db: Database,
    unit: UnitOfWork,
    clock: FakeClock,
    messages: MessageHandler,
    producer: Producer,
    kafka: str,
) -> None:
    tenant = fresh_tenant()
    mia, ann = user("mia", tenant), user("ann", tenant, ROLE_MEMBER, ROLE_AGENT)
    support = SupportHandler(unit)
    opened = await support.open(mia, subject="Cannot log in", text="help")
    ticket_id, conversation_id = opened.ticket.id, opened.ticket.conversation_id
    clock.advance(300)
    await support.claim(ann, ticket_id)
    clock.advance(900)
    # The agent's first answer: 20 minutes after opening.
    await send(messages, ann, conversation_id, text="on it")
    await send(messages, mia, conversation_id, text="thanks")
    clock.advance(2400)
    await support.transition(ann, ticket_id, "resolve")
    relay = OutboxRelay(
        db, producer, clock, asyncio.Event(), batch_size=500, poll_seconds=0.05, lease_seconds=10
    )
    await relay.publish_once()
    published = await db.db["outbox"].count_documents({"conversation_id": conversation_id})
    records = await topic_records(kafka, {conversation_id}, published)
    analytics = AnalyticsHandler(db)
    consumer = AnalyticsConsumer(db, analytics, group="analytics-test")
    for record in records * 2:
        await consumer.handle_record(record)
    day = clock.now().date().isoformat()
    [row] = await analytics.support(admin(tenant), day, day, "day", "none")
    assert (row.opened, row.assigned, row.resolved, row.backlog) == (1, 1, 1, 0)
    assert row.first_response == Durations(1, 1200.0, 1200.0)
    assert row.resolution == Durations(1, 3600.0, 3600.0)
    agents = await analytics.support(admin(tenant), day, day, "day", "agent")
    assert [(r.group, r.assigned, r.resolved) for r in agents if r.group] == [("ann", 1, 1)]
    usage = await analytics.chat(admin(tenant), day, day, 1)
    # help, on it, thanks (the system messages of each transition are not counted).
    assert [(d.messages, d.active_users) for d in usage.days] == [(3, 2)]
