"""Producer and consume_forever against a real Kafka broker.

Every wait is bounded by a deadline and ends on an event the handler sets, not
on a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from prometheus_client import REGISTRY

from confab_core.kafka import Producer, TopicSpec, consume_forever, ensure_topics
from confab_devservers import KafkaServer

DEADLINE = 30.0
Record = ConsumerRecord[bytes, bytes]


def new_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest_asyncio.fixture
async def producer(kafka_server: KafkaServer) -> AsyncIterator[Producer]:
    p = Producer(kafka_server.bootstrap_servers)
    try:
        yield p
    finally:
        await p.stop()


@contextlib.asynccontextmanager
async def consuming(
    bootstrap: str,
    topic: str,
    group: str,
    handler: Callable[[Record], Awaitable[None]],
    **kwargs: Any,
) -> AsyncIterator[asyncio.Task[None]]:
    ready = asyncio.Event()
    task = asyncio.create_task(
        consume_forever(
            bootstrap=bootstrap,
            topics=[topic],
            group_id=group,
            handler=handler,
            retry_delay=0.05,
            ready=ready,
            **kwargs,
        )
    )
    try:
        async with asyncio.timeout(DEADLINE):
            ready_wait = asyncio.create_task(ready.wait())
            done, _ = await asyncio.wait({ready_wait, task}, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                ready_wait.cancel()
                task.result()  # surfaces the consumer's error
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def committed(bootstrap: str, group: str, tp: TopicPartition) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group, partitions=[tp])
    finally:
        await admin.close()
    meta = offsets.get(tp)
    return -1 if meta is None else int(meta.offset)


async def wait_committed(bootstrap: str, group: str, tp: TopicPartition, offset: int) -> None:
    # The broker has no push for commits; ask it until the deadline.
    async with asyncio.timeout(DEADLINE):
        while True:
            if await committed(bootstrap, group, tp) >= offset:
                return
            await asyncio.sleep(0.05)


def counter(outcome: str, topic: str, group: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "confab_kafka_consumed_total", {"topic": topic, "group": group, "outcome": outcome}
        )
        or 0.0
    )


@pytest.mark.asyncio
async def test_records_arrive_in_order_per_key(
    kafka_server: KafkaServer, producer: Producer
) -> None:
    bootstrap = kafka_server.bootstrap_servers
    topic, group = new_name("order"), new_name("g")
    await ensure_topics(bootstrap, [TopicSpec(topic, partitions=3)])
    keys = [f"conv-{i}".encode() for i in range(5)]
    per_key = 8
    total = len(keys) * per_key
    seen: dict[bytes, list[int]] = {k: [] for k in keys}
    trace_ids: set[int] = set()
    done = asyncio.Event()
    count = 0

    async def handler(record: Record) -> None:
        nonlocal count
        assert record.key is not None and record.value is not None
        seen[record.key].append(int(record.value))
        trace_ids.add(trace.get_current_span().get_span_context().trace_id)
        count += 1
        if count == total:
            done.set()

    trace_id = 0xABCDEF0123456789ABCDEF0123456789
    parent = NonRecordingSpan(
        SpanContext(trace_id, 0x1234, is_remote=False, trace_flags=TraceFlags(1))
    )
    async with consuming(bootstrap, topic, group, handler):
        with trace.use_span(parent):
            for i in range(per_key):
                for key in keys:
                    await producer.send(topic, key, str(i).encode())
        async with asyncio.timeout(DEADLINE):
            await done.wait()
    assert seen == {k: list(range(per_key)) for k in keys}
    # The producer's trace context travelled in the record headers.
    assert trace_ids == {trace_id}
    assert counter("ok", topic, group) == total


@pytest.mark.asyncio
async def test_failing_record_is_retried_and_later_records_wait(
    kafka_server: KafkaServer, producer: Producer
) -> None:
    bootstrap = kafka_server.bootstrap_servers
    topic, group = new_name("retry"), new_name("g")
    await ensure_topics(bootstrap, [TopicSpec(topic, partitions=1)])
    attempts: list[str] = []
    failures_left = 2
    done = asyncio.Event()

    async def handler(record: Record) -> None:
        nonlocal failures_left
        assert record.value is not None
        value = record.value.decode()
        attempts.append(value)
        if value == "r1" and failures_left:
            failures_left -= 1
            raise RuntimeError("transient failure")
        if value == "r4":
            done.set()

    async with consuming(bootstrap, topic, group, handler):
        await producer.send_many(topic, [(b"k", f"r{i}".encode(), []) for i in range(5)])
        async with asyncio.timeout(DEADLINE):
            await done.wait()
    # r1 came back twice more instead of being skipped; r2.. waited for it.
    assert attempts == ["r0", "r1", "r1", "r1", "r2", "r3", "r4"]
    assert counter("retry", topic, group) == 2
    assert counter("ok", topic, group) == 5


@pytest.mark.asyncio
async def test_restarted_consumer_resumes_after_committed_records(
    kafka_server: KafkaServer, producer: Producer
) -> None:
    bootstrap = kafka_server.bootstrap_servers
    topic, group = new_name("commit"), new_name("g")
    tp = TopicPartition(topic, 0)
    await ensure_topics(bootstrap, [TopicSpec(topic, partitions=1)])
    first: list[bytes] = []
    first_done = asyncio.Event()

    async def first_handler(record: Record) -> None:
        assert record.value is not None
        first.append(record.value)
        if len(first) == 3:
            first_done.set()

    async with consuming(bootstrap, topic, group, first_handler):
        await producer.send_many(topic, [(b"k", v, []) for v in (b"a", b"b", b"c")])
        async with asyncio.timeout(DEADLINE):
            await first_done.wait()
        # The commit follows the handler; wait for it before stopping.
        await wait_committed(bootstrap, group, tp, 3)
    assert first == [b"a", b"b", b"c"]

    await producer.send_many(topic, [(b"k", v, []) for v in (b"d", b"e")])
    second: list[bytes] = []
    second_done = asyncio.Event()

    async def second_handler(record: Record) -> None:
        assert record.value is not None
        second.append(record.value)
        if record.value == b"e":
            second_done.set()

    async with consuming(bootstrap, topic, group, second_handler):
        async with asyncio.timeout(DEADLINE):
            await second_done.wait()
    # One partition, in order: starting at "d" proves a..c were not redelivered.
    assert second == [b"d", b"e"]
    assert await committed(bootstrap, group, tp) == 5


@pytest.mark.asyncio
async def test_from_latest_skips_history_and_ready_means_live(
    kafka_server: KafkaServer, producer: Producer
) -> None:
    bootstrap = kafka_server.bootstrap_servers
    topic, group = new_name("latest"), new_name("g")
    await ensure_topics(bootstrap, [TopicSpec(topic, partitions=2)])
    await producer.send(topic, b"k", b"old")
    seen: list[bytes] = []
    got = asyncio.Event()

    async def handler(record: Record) -> None:
        assert record.value is not None
        seen.append(record.value)
        got.set()

    async with consuming(bootstrap, topic, group, handler, from_latest=True):
        # "ready" was set once the assignment was positioned: this one counts.
        await producer.send(topic, b"k", b"new")
        async with asyncio.timeout(DEADLINE):
            await got.wait()
    assert seen == [b"new"]
