from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from confab_devservers import KafkaServer, ServerStartError


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"k")
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str, count: int, within: float = 20.0) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    got: list[bytes] = []
    try:
        async with asyncio.timeout(within):
            while len(got) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    got.extend(r.value for r in records if r.value is not None)
    finally:
        await consumer.stop()
    return got


def _topic() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


@pytest.mark.asyncio
async def test_produce_and_consume_auto_created_topic(kafka_server: KafkaServer) -> None:
    topic = _topic()
    await _produce(kafka_server.bootstrap_servers, topic, [b"a", b"b", b"c"])
    assert await _consume(kafka_server.bootstrap_servers, topic, 3) == [b"a", b"b", b"c"]


@pytest.mark.asyncio
async def test_broker_defaults(kafka_server: KafkaServer) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_server.bootstrap_servers)
    await admin.start()
    try:
        topic = _topic()
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
        auto = _topic()
        await _produce(kafka_server.bootstrap_servers, auto, [b"x"])
        described = {t["topic"]: t for t in await admin.describe_topics([topic, auto])}
        assert len(described[topic]["partitions"]) == 2
        assert len(described[auto]["partitions"]) == 4  # num.partitions
    finally:
        await admin.close()


@pytest.mark.asyncio
async def test_consumer_group_commits_survive_restart(kafka_server: KafkaServer) -> None:
    topic, group = _topic(), f"g-{uuid.uuid4().hex[:6]}"
    bootstrap = kafka_server.bootstrap_servers
    await _produce(bootstrap, topic, [b"1", b"2"])

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        seen: list[bytes] = []
        async with asyncio.timeout(30):
            while len(seen) < 2:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    seen.extend(r.value for r in records if r.value is not None)
        await consumer.commit()
    finally:
        await consumer.stop()

    await asyncio.to_thread(kafka_server.restart)
    assert kafka_server.bootstrap_servers == bootstrap
    await _produce(bootstrap, topic, [b"3"])

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        rest: list[bytes] = []
        async with asyncio.timeout(30):
            while not rest:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    rest.extend(r.value for r in records if r.value is not None)
    finally:
        await consumer.stop()
    assert rest == [b"3"]


@pytest.mark.asyncio
async def test_data_survives_stop_and_start(kafka_server: KafkaServer) -> None:
    topic = _topic()
    port = kafka_server.port
    await _produce(kafka_server.bootstrap_servers, topic, [b"before-stop"])

    kafka_server.stop()
    assert not kafka_server.running
    kafka_server.start()

    assert kafka_server.port == port
    await _produce(kafka_server.bootstrap_servers, topic, [b"after-start"])
    assert await _consume(kafka_server.bootstrap_servers, topic, 2) == [
        b"before-stop",
        b"after-start",
    ]


@pytest.mark.asyncio
async def test_data_survives_kill(kafka_server: KafkaServer) -> None:
    topic = _topic()
    await _produce(kafka_server.bootstrap_servers, topic, [b"before-kill"])
    old_pid = kafka_server.pid

    kafka_server.kill()
    assert not kafka_server.running
    kafka_server.start()

    assert kafka_server.pid != old_pid
    assert await _consume(kafka_server.bootstrap_servers, topic, 1) == [b"before-kill"]


def test_log_file(kafka_server: KafkaServer) -> None:
    assert kafka_server.log_path.is_file()
    assert "Kafka Server started" in kafka_server.log_path.read_text(errors="replace")


def test_bad_config_fails_fast_with_log_tail(tmp_path: Path) -> None:
    server = KafkaServer(tmp_path, extra_properties={"num.io.threads": "not-a-number"})
    with pytest.raises(ServerStartError) as info:
        server.start(timeout=60)
    # Rejected by the storage format step or the broker itself; either way the
    # error must carry the JVM's complaint.
    assert "num.io.threads" in str(info.value)
    assert not server.running
