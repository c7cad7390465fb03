"""The outbox relay against real MongoDB-wire and Kafka servers."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from confab.conversation.v1 import events_pb2
from confab_core.clock import FakeClock
from confab_core.kafka import (
    CONVERSATION_EVENTS_TOPIC,
    TENANT_ID_HEADER,
    Producer,
    TopicSpec,
    ensure_topics,
)
from confab_devservers import KafkaServer
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.messages import MessageHandler
from conversation.relay import LEASE_ID, OutboxRelay
from conversation.storage.db import Database

from .conftest import ALICE, ALICE_B, BOB, count, create, open_record, outbox, pending, send

DEADLINE = 30.0
LEASE_SECONDS = 10.0


class ObservedProducer(Producer):
    """The real producer, with events a test can wait on instead of sleeping."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(bootstrap)
        self.failures = 0
        self.failed = asyncio.Event()
        self.sent = asyncio.Event()

    async def send_many(
        self, topic: str, records: Sequence[tuple[bytes, bytes, Sequence[tuple[str, bytes]]]]
    ) -> None:
        try:
            await super().send_many(topic, records)
        except Exception:
            self.failures += 1
            self.failed.set()
            raise
        self.sent.set()


class ObservedRelay(OutboxRelay):
    """The real relay, announcing every batch it published and deleted."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.published = asyncio.Event()

    async def publish_once(self) -> int:
        n = await super().publish_once()
        if n:
            self.published.set()
        return n


def make_relay(
    db: Database,
    producer: Producer,
    clock: FakeClock,
    wakeup: asyncio.Event | None = None,
    batch_size: int = 500,
) -> ObservedRelay:
    return ObservedRelay(
        db,
        producer,
        clock,
        wakeup or asyncio.Event(),
        batch_size=batch_size,
        poll_seconds=0.05,
        lease_seconds=LEASE_SECONDS,
    )


@pytest_asyncio.fixture
async def kafka(kafka_server: KafkaServer) -> AsyncIterator[str]:
    kafka_server.start()  # no-op unless a test left it stopped
    await ensure_topics(kafka_server.bootstrap_servers, [TopicSpec(CONVERSATION_EVENTS_TOPIC)])
    yield kafka_server.bootstrap_servers


@pytest_asyncio.fixture
async def producer(kafka: str) -> AsyncIterator[ObservedProducer]:
    p = ObservedProducer(kafka)
    try:
        yield p
    finally:
        await p.stop()


async def read_events(
    bootstrap: str, conversation_ids: set[str], expected: int
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of these conversations on the topic, waiting for ``expected`` of them."""
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
                    got.extend(r for r in records if r.key and r.key.decode() in conversation_ids)
        # Anything more (a duplicate) would already be in the fetched batches.
        for records in (await consumer.getmany(timeout_ms=300)).values():
            got.extend(r for r in records if r.key and r.key.decode() in conversation_ids)
    finally:
        await consumer.stop()
    return got


async def by_conversation(
    db: Database, records: list[ConsumerRecord[bytes, bytes]]
) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for record in records:
        assert record.key is not None and record.value is not None
        event = await open_record(db, record)
        assert event.conversation_id == record.key.decode()
        out.setdefault(event.conversation_id, []).append(event.event_seq)
    return out


async def wait_drained(db: Database, *relays: ObservedRelay) -> None:
    """Waits, batch by batch, until the relays have emptied the outbox."""
    async with asyncio.timeout(DEADLINE):
        while True:
            if not await pending(db):
                return
            waits = [asyncio.create_task(r.published.wait()) for r in relays]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
            for r in relays:
                r.published.clear()


@contextlib.asynccontextmanager
async def running(*relays: ObservedRelay) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(r.run()) for r in relays]
    try:
        yield
        for task in tasks:
            assert not task.done(), task.exception()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def traffic(conversations: ConversationHandler, messages: MessageHandler) -> dict[str, int]:
    """Two conversations in two tenants; returns how many events each has."""
    a = (await create(conversations, ALICE, members=["bob"])).conversation.id
    b = (await create(conversations, ALICE_B, members=["bob"])).conversation.id
    for i in range(3):
        await send(messages, (ALICE, BOB)[i % 2], a, text=f"a{i}")
    await send(messages, ALICE_B, b, text="b0")
    await messages.mark_read(BOB, conversation_id=a, seq=3)
    return {a: 5, b: 2}


@pytest.mark.asyncio
async def test_publish_once_sends_in_event_seq_order_and_marks_published(
    db: Database,
    conversations: ConversationHandler,
    messages: MessageHandler,
    clock: FakeClock,
    kafka: str,
    producer: ObservedProducer,
) -> None:
    expected = await traffic(conversations, messages)
    relay = make_relay(db, producer, clock)
    assert await relay.publish_once() == 7
    assert await pending(db) == []
    assert await relay.publish_once() == 0
    # Published events stay as the conversation's event log, marked and dated.
    log = await outbox(db)
    assert len(log) == 7
    assert all(d["published"] is True and d["published_at"] == clock.now() for d in log)

    records = await read_events(kafka, set(expected), 7)
    assert await by_conversation(db, records) == {
        c: list(range(1, n + 1)) for c, n in expected.items()
    }
    for record in records:
        headers = dict(record.headers)
        assert headers["confab-event-type"] == b"confab.conversation.v1.ConversationEvent"
    # Keyed by conversation: one conversation's events share a partition.
    partitions: dict[bytes | None, set[int]] = {}
    for record in records:
        partitions.setdefault(record.key, set()).add(record.partition)
    assert all(len(p) == 1 for p in partitions.values())


@pytest.mark.asyncio
async def test_the_topic_and_the_event_log_hold_no_plaintext(
    db: Database,
    conversations: ConversationHandler,
    messages: MessageHandler,
    clock: FakeClock,
    kafka: str,
    producer: ObservedProducer,
) -> None:
    secret = f"wire-secret-{uuid.uuid4().hex}"
    conv = (
        await create(conversations, ALICE, members=["bob"], title=f"{secret}-title")
    ).conversation
    sent = await send(messages, ALICE, conv.id, text=f"{secret}-text")
    await messages.edit(
        ALICE, conversation_id=conv.id, message_id=sent.message.id, text=f"{secret}-edit"
    )
    relay = make_relay(db, producer, clock)
    assert await relay.publish_once() == 3
    records = await read_events(kafka, {conv.id}, 3)

    # A raw read of the broker's log and of the outbox: sealed bytes only.
    raw = [r.value or b"" for r in records]
    raw += [bytes(d["payload"]) async for d in db.db["outbox"].find({"conversation_id": conv.id})]
    assert raw and not [blob for blob in raw if secret.encode() in blob]
    for record in records:
        headers = dict(record.headers)
        assert headers[TENANT_ID_HEADER] == ALICE.tenant_id.encode()
    # Opened with the tenant's keys, they are the events; the edit rewrote the
    # retained copies of the content, sealed again.
    events = [await open_record(db, r) for r in records]
    assert [e.WhichOneof("payload") for e in events] == [
        "conversation_created",
        "message_created",
        "message_updated",
    ]
    assert events[2].message_updated.message.text == f"{secret}-edit"


@pytest.mark.asyncio
async def test_a_small_batch_takes_the_oldest_events_first(
    db: Database,
    conversations: ConversationHandler,
    messages: MessageHandler,
    clock: FakeClock,
    kafka: str,
    producer: ObservedProducer,
) -> None:
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    for _ in range(4):
        await send(messages, ALICE, conv)
    relay = make_relay(db, producer, clock, batch_size=2)
    left = []
    for _ in range(3):
        await relay.publish_once()
        left.append(await pending(db))
    assert left == [[3, 4, 5], [5], []]
    records = await read_events(kafka, {conv}, 5)
    assert await by_conversation(db, records) == {conv: [1, 2, 3, 4, 5]}


@pytest.mark.asyncio
async def test_kafka_outage_delays_events_but_loses_none(
    db: Database,
    conversations: ConversationHandler,
    messages: MessageHandler,
    clock: FakeClock,
    wakeup: asyncio.Event,
    kafka_server: KafkaServer,
    kafka: str,
    producer: ObservedProducer,
) -> None:
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    await send(messages, ALICE, conv, text="before the outage")
    await asyncio.to_thread(kafka_server.stop)
    try:
        relay = make_relay(db, producer, clock, wakeup)
        async with running(relay):
            async with asyncio.timeout(DEADLINE):
                await producer.failed.wait()
            # Writes go on while Kafka is down; nothing leaves the outbox.
            await send(messages, BOB, conv, text="during the outage")
            producer.failed.clear()
            async with asyncio.timeout(DEADLINE):
                await producer.failed.wait()
            assert producer.failures >= 2
            assert not producer.sent.is_set()
            assert await pending(db) == [1, 2, 3]

            await asyncio.to_thread(kafka_server.start)
            # A new write would wake the relay; skip its back-off the same way.
            wakeup.set()
            await wait_drained(db, relay)
    finally:
        await asyncio.to_thread(kafka_server.start)

    records = await read_events(kafka, {conv}, 3)
    assert await by_conversation(db, records) == {conv: [1, 2, 3]}
    texts = [(await open_record(db, r)).message_created.message.text for r in records[1:]]
    assert texts == ["before the outage", "during the outage"]


@pytest.mark.asyncio
async def test_only_one_relay_holds_the_lease(db: Database, clock: FakeClock) -> None:
    # The lease lives in MongoDB only; these producers never connect.
    first = make_relay(db, Producer("127.0.0.1:1"), clock)
    second = make_relay(db, Producer("127.0.0.1:1"), clock)

    assert await first._hold_lease() is True
    assert await second._hold_lease() is False
    # The holder renews.
    clock.advance(LEASE_SECONDS / 2)
    assert await first._hold_lease() is True
    assert await second._hold_lease() is False
    clock.advance(LEASE_SECONDS - 1)
    assert await second._hold_lease() is False

    # The holder went quiet past its lease: the other takes over at once.
    clock.advance(2)
    assert await second._hold_lease() is True
    assert await first._hold_lease() is False
    assert await second._hold_lease() is True
    lease = await db.db["leases"].find_one({"_id": LEASE_ID})
    assert lease is not None and lease["owner"] == second._owner
    assert await count(db, "leases") == 1


@pytest.mark.asyncio
async def test_the_holder_renews_only_once_a_third_of_the_lease_passed(
    db: Database, clock: FakeClock
) -> None:
    relay = make_relay(db, Producer("127.0.0.1:1"), clock)
    assert await relay._hold_lease() is True
    first = await db.db["leases"].find_one({"_id": LEASE_ID})
    clock.advance(LEASE_SECONDS / 3 - 0.5)
    assert await relay._hold_lease() is True
    unchanged = await db.db["leases"].find_one({"_id": LEASE_ID})
    assert first is not None and unchanged is not None
    assert unchanged["expires_at"] == first["expires_at"]
    clock.advance(1)
    assert await relay._hold_lease() is True
    renewed = await db.db["leases"].find_one({"_id": LEASE_ID})
    assert renewed is not None and renewed["expires_at"] > first["expires_at"]


@pytest.mark.asyncio
async def test_racing_relays_get_one_lease(db: Database, clock: FakeClock) -> None:
    relays = [make_relay(db, Producer("127.0.0.1:1"), clock) for _ in range(4)]
    held = await asyncio.gather(*(r._hold_lease() for r in relays))
    assert sum(held) == 1
    clock.advance(LEASE_SECONDS + 1)
    held = await asyncio.gather(*(r._hold_lease() for r in relays))
    assert sum(held) == 1


@pytest.mark.asyncio
async def test_two_running_relays_publish_each_event_once(
    db: Database,
    conversations: ConversationHandler,
    messages: MessageHandler,
    clock: FakeClock,
    kafka: str,
) -> None:
    producers = [ObservedProducer(kafka), ObservedProducer(kafka)]
    relays = [make_relay(db, p, clock) for p in producers]
    try:
        async with running(*relays):
            expected = await traffic(conversations, messages)
            for relay in relays:
                relay._wakeup.set()
            await wait_drained(db, *relays)
    finally:
        for p in producers:
            await p.stop()
    # Only the lease holder published.
    assert sum(p.sent.is_set() for p in producers) == 1
    records = await read_events(kafka, set(expected), 7)
    assert await by_conversation(db, records) == {
        c: list(range(1, n + 1)) for c, n in expected.items()
    }


@pytest.mark.asyncio
async def test_records_from_before_sealing_still_replay(
    db: Database, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    await send(messages, ALICE, conv, text="written before sealing")
    # The log as an older version wrote it: payloads in the clear, no flag.
    for doc in await outbox(db, conv):
        await db.db["outbox"].update_one(
            {"_id": doc["_id"]}, {"$set": {"payload": doc["payload"]}, "$unset": {"sealed": ""}}
        )
    stored = await db.for_tenant(ALICE.tenant_id).outbox.page(conv, 0, 10)
    assert [s.event_seq for s in stored] == [1, 2]
    replayed = events_pb2.ConversationEvent.FromString(stored[1].payload)
    assert replayed.message_created.message.text == "written before sealing"
