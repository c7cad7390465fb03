"""Sealed conversation events: what the outbox writes and every consumer opens.

The consumer test runs a real broker: sealed, tampered, unsealed and shredded
records go through consume_forever, and only the intact one reaches the handler;
the others are committed and counted, not retried.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from prometheus_client import REGISTRY

from confab.conversation.v1 import events_pb2, keys_pb2
from confab_core.crypto import DataKey, KeysShreddedError, TenantKeys, UndecryptableError
from confab_core.kafka import EVENT_ID_HEADER, Producer, TopicSpec, consume_forever, ensure_topics
from confab_core.sealed_events import (
    EventOpener,
    event_headers,
    keys_from_proto,
    open_event,
    seal_event,
)
from confab_devservers import KafkaServer

from .test_kafka import committed, wait_committed

DEADLINE = 30.0


def tenant_keys(tenant: str) -> TenantKeys:
    key = DataKey.generate(f"{tenant}-k1")
    return TenantKeys(tenant, key, {key.key_id: key}, b"s" * 32)


class Keyring:
    """A KeySource over fixed keys (the lookup is all the opener needs of one)."""

    def __init__(self, *keys: TenantKeys, shredded: tuple[str, ...] = ()) -> None:
        self._keys = {k.tenant_id: k for k in keys}
        self._shredded = shredded

    async def keys(self, tenant_id: str) -> TenantKeys:
        if tenant_id in self._shredded:
            raise KeysShreddedError(tenant_id)
        return self._keys[tenant_id]


def event(tenant: str, text: str) -> events_pb2.ConversationEvent:
    ev = events_pb2.ConversationEvent(
        event_id=uuid.uuid4().hex, tenant_id=tenant, conversation_id="c1", event_seq=1
    )
    ev.message_created.message.text = text
    return ev


def sealed(keys: TenantKeys, ev: events_pb2.ConversationEvent) -> bytes:
    return seal_event(keys.current, ev.tenant_id, ev.event_id, ev.SerializeToString())


def test_a_sealed_event_opens_only_as_itself() -> None:
    a, b = tenant_keys("tenant-a"), tenant_keys("tenant-b")
    ev = event("tenant-a", "the launch code is 0000")
    blob = sealed(a, ev)
    assert b"launch code" not in blob
    assert open_event(a, ev.event_id, blob) == ev.SerializeToString()
    # Another event's id, or another tenant's keys, and it does not open.
    with pytest.raises(UndecryptableError):
        open_event(a, "another-event", blob)
    forged_b = TenantKeys("tenant-b", a.current, a.by_id, a.search_key)
    with pytest.raises(UndecryptableError):
        open_event(forged_b, ev.event_id, blob)
    with pytest.raises(UndecryptableError):
        open_event(b, ev.event_id, blob)


def test_keys_from_the_key_service_answer() -> None:
    resp = keys_pb2.GetTenantKeysResponse(tenant_id="t", current_key_id="k2", search_key=b"x" * 32)
    resp.keys.add(key_id="k1", key=b"1" * 32)
    resp.keys.add(key_id="k2", key=b"2" * 32)
    keys = keys_from_proto(resp)
    assert keys.current.key_id == "k2" and set(keys.by_id) == {"k1", "k2"}
    resp.current_key_id = "k3"
    with pytest.raises(UndecryptableError):
        keys_from_proto(resp)


def skipped(group: str, reason: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "confab_sealed_events_skipped_total", {"group": group, "reason": reason}
        )
        or 0.0
    )


@pytest.mark.asyncio
async def test_only_intact_events_reach_the_handler(kafka_server: KafkaServer) -> None:
    bootstrap = kafka_server.bootstrap_servers
    topic, group = f"sealed-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [TopicSpec(topic, partitions=1)])
    a = tenant_keys("tenant-a")
    good, tampered, plain, gone = (
        event("tenant-a", "fine"),
        event("tenant-a", "tampered"),
        event("tenant-a", "plain"),
        event("tenant-gone", "shredded"),
    )
    broken = bytearray(sealed(a, tampered))
    broken[-1] ^= 1
    gone_keys = tenant_keys("tenant-gone")
    records = [
        (b"c1", bytes(broken), event_headers("tenant-a", tampered.event_id)),
        (b"c1", plain.SerializeToString(), []),
        (b"c1", sealed(gone_keys, gone), event_headers("tenant-gone", gone.event_id)),
        # A good value under another event's id: its associated data does not match.
        (
            b"c1",
            sealed(a, good),
            [
                *event_headers("tenant-a", good.event_id)[:1],
                (EVENT_ID_HEADER, tampered.event_id.encode()),
            ],
        ),
        (b"c1", sealed(a, good), event_headers("tenant-a", good.event_id)),
    ]
    producer = Producer(bootstrap)
    try:
        await producer.send_many(topic, records)
    finally:
        await producer.stop()

    opener = EventOpener(Keyring(a, shredded=("tenant-gone",)), group)
    seen: list[events_pb2.ConversationEvent] = []
    handled = asyncio.Event()

    async def handle(record: ConsumerRecord[bytes, bytes]) -> None:
        ev = await opener.open(record)
        if ev is not None:
            seen.append(ev)
            handled.set()

    task = asyncio.create_task(
        consume_forever(
            bootstrap=bootstrap, topics=[topic], group_id=group, handler=handle, retry_delay=0.05
        )
    )
    try:
        async with asyncio.timeout(DEADLINE):
            await handled.wait()
        await wait_committed(bootstrap, group, TopicPartition(topic, 0), len(records))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [ev.message_created.message.text for ev in seen] == ["fine"]
    assert await committed(bootstrap, group, TopicPartition(topic, 0)) == len(records)
    assert skipped(group, "undecryptable") == 2
    assert skipped(group, "unsealed") == 1
    assert skipped(group, "shredded") == 1
