"""Presence events reach a real Kafka broker, also after it was down."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from google.protobuf.timestamp_pb2 import Timestamp
from prometheus_client import REGISTRY

from confab.presence.v1 import events_pb2
from confab.presence.v1 import presence_pb2 as pb
from confab_core.clock import FakeClock
from confab_core.identity import Caller
from confab_core.kafka import (
    EVENT_TYPE_HEADER,
    PRESENCE_EVENT_TYPE,
    PRESENCE_EVENTS_TOPIC,
    PRESENCE_SEQ_HEADER,
    Producer,
    TopicSpec,
    ensure_topics,
)
from confab_devservers import KafkaServer
from presence.events import EventQueue, Publisher
from presence.handlers.presence import PresenceHandler

DEADLINE = 60.0


async def wait_for_record(bootstrap: str, key: bytes) -> ConsumerRecord[bytes, bytes]:
    consumer = AIOKafkaConsumer(
        PRESENCE_EVENTS_TOPIC,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(DEADLINE):
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        if record.key == key:
                            return record
    finally:
        await consumer.stop()


async def wait_for_records(
    bootstrap: str, key: bytes, count: int
) -> list[ConsumerRecord[bytes, bytes]]:
    """The first ``count`` records with ``key``, in topic order."""
    consumer = AIOKafkaConsumer(
        PRESENCE_EVENTS_TOPIC,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[ConsumerRecord[bytes, bytes]] = []
    try:
        async with asyncio.timeout(DEADLINE):
            while len(found) < count:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    found.extend(r for r in records if r.key == key)
    finally:
        await consumer.stop()
    return found[:count]


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def failures() -> float:
    return REGISTRY.get_sample_value("confab_presence_publish_failures_total") or 0.0


def published() -> float:
    return REGISTRY.get_sample_value("confab_presence_events_published_total") or 0.0


@pytest.mark.asyncio
async def test_presence_event_arrives_on_the_topic(
    kafka_server: KafkaServer, handler: PresenceHandler, queue: EventQueue
) -> None:
    bootstrap = kafka_server.bootstrap_servers
    await ensure_topics(bootstrap, [TopicSpec(PRESENCE_EVENTS_TOPIC)])
    producer = Producer(bootstrap)
    publisher = Publisher(queue, producer)
    task = asyncio.create_task(publisher.run())
    tenant = f"t-{uuid.uuid4().hex}"
    published_before = published()
    try:
        await handler.connect(Caller(tenant_id=tenant, user_id="alice"), "c1", "gw1")
        record = await wait_for_record(bootstrap, f"{tenant}:alice".encode())
        # The record can be read before the publisher has seen the broker's ack.
        await wait_until(lambda: published() > published_before, "the publish ack")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()

    event = events_pb2.PresenceEvent()
    event.ParseFromString(record.value or b"")
    assert event.tenant_id == tenant
    assert event.event_id
    assert (event.presence.user_id, event.presence.status) == ("alice", pb.PRESENCE_STATUS_ONLINE)
    assert event.presence.device_count == 1
    headers = dict(record.headers)
    assert headers[EVENT_TYPE_HEADER] == PRESENCE_EVENT_TYPE
    assert headers[PRESENCE_SEQ_HEADER] == b"1"
    assert len(queue) == 0


@pytest.mark.asyncio
async def test_kafka_outage_delays_events_without_failing_connect(
    kafka_server: KafkaServer, handler: PresenceHandler, queue: EventQueue
) -> None:
    bootstrap = kafka_server.bootstrap_servers
    await ensure_topics(bootstrap, [TopicSpec(PRESENCE_EVENTS_TOPIC)])
    tenant = f"t-{uuid.uuid4().hex}"
    await asyncio.to_thread(kafka_server.stop)
    try:
        producer = Producer(bootstrap)
        publisher = Publisher(queue, producer, send_timeout=5.0, max_backoff=0.5)
        task = asyncio.create_task(publisher.run())
        try:
            failed_before = failures()
            state = await handler.connect(Caller(tenant_id=tenant, user_id="alice"), "c1", "gw1")
            assert state.status == pb.PRESENCE_STATUS_ONLINE
            await wait_until(lambda: failures() > failed_before, "a failed publish attempt")
            assert len(queue) == 1

            published_before = published()
            # Restarts on the same port and data, as a recovering broker would.
            await asyncio.to_thread(kafka_server.start, 180)
            record = await wait_for_record(bootstrap, f"{tenant}:alice".encode())
            await wait_until(lambda: published() > published_before, "the publish ack")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await producer.stop()
    finally:
        # Later tests share this broker.
        await asyncio.to_thread(kafka_server.start, 180)

    event = events_pb2.PresenceEvent()
    event.ParseFromString(record.value or b"")
    assert event.presence.status == pb.PRESENCE_STATUS_ONLINE
    assert len(queue) == 0


@pytest.mark.asyncio
async def test_status_and_typing_events_arrive_on_the_topic_in_order(
    kafka_server: KafkaServer,
    db,
    make_handler,
    real_memberships,
    conversation_addr: str,
    queue: EventQueue,
    clock: FakeClock,
    kit: Any,
) -> None:
    handler: PresenceHandler = make_handler(db, queue, members=real_memberships)
    bootstrap = kafka_server.bootstrap_servers
    await ensure_topics(bootstrap, [TopicSpec(PRESENCE_EVENTS_TOPIC)])
    tenant = f"t-{uuid.uuid4().hex}"
    alice = Caller(tenant_id=tenant, user_id="alice")
    # Queued before the publisher starts: one batch, in queue order.
    await handler.connect(alice, "c1", "gw1")
    expires = Timestamp()
    expires.FromDatetime(clock.now() + timedelta(hours=1))
    await handler.set_status(alice, pb.PRESENCE_STATUS_BUSY, "Deep work", expires.ToMilliseconds())
    conv_id = await kit.create_group(conversation_addr, alice, [])
    typing_expires = await handler.set_typing(alice, conv_id, True)
    producer = Producer(bootstrap)
    publisher = Publisher(queue, producer)
    task = asyncio.create_task(publisher.run())
    try:
        records = await wait_for_records(bootstrap, f"{tenant}:alice".encode(), 2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()

    status, typing = (events_pb2.PresenceEvent.FromString(r.value or b"") for r in records)
    assert status.WhichOneof("payload") == "presence"
    assert (status.presence.status, status.presence.chosen_status) == (
        pb.PRESENCE_STATUS_BUSY,
        pb.PRESENCE_STATUS_BUSY,
    )
    assert status.presence.custom_status == "Deep work"
    assert status.presence.custom_status_expires_at == expires
    assert dict(records[0].headers)[PRESENCE_SEQ_HEADER] == b"2"  # the connect's was coalesced away

    assert typing.WhichOneof("payload") == "typing"
    assert typing.tenant_id == tenant
    assert (typing.typing.user_id, typing.typing.conversation_id, typing.typing.typing) == (
        "alice",
        conv_id,
        True,
    )
    assert typing.typing.expires_at.ToMilliseconds() == typing_expires
    typing_headers = dict(records[1].headers)
    assert typing_headers[EVENT_TYPE_HEADER] == PRESENCE_EVENT_TYPE
    assert PRESENCE_SEQ_HEADER not in typing_headers
