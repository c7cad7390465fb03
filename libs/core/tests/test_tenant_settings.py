"""TenantSettingsCache: one load per tenant, shared by concurrent callers, and a
change seen through a real Kafka well within a second of its event (every wait
ends on an event the consumer sets, never on a sleep)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiokafka import ConsumerRecord

from confab.conversation.v1 import settings_pb2
from confab_core.clock import FakeClock
from confab_core.kafka import Producer
from confab_core.tenant_settings import (
    TENANT_SETTINGS_TOPIC,
    TenantSettingsCache,
    settings_consumer,
)
from confab_devservers import KafkaServer

pytestmark = pytest.mark.asyncio

DEADLINE = 30.0


class Source:
    """What the conversation service would answer, and how often it was asked."""

    def __init__(self) -> None:
        self.versions: dict[str, int] = {}
        self.loads: dict[str, int] = {}
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False

    async def load(self, tenant_id: str) -> settings_pb2.TenantSettings:
        self.loads[tenant_id] = self.loads.get(tenant_id, 0) + 1
        await self.gate.wait()
        if self.fail:
            raise ConnectionError("conversation service down")
        return settings_pb2.TenantSettings(version=self.versions.get(tenant_id, 0))


class Observed(TenantSettingsCache):
    """The real cache, announcing each record it handled."""

    def __init__(self, source: Source, clock: FakeClock, **kwargs: float) -> None:
        super().__init__(source.load, clock, **kwargs)
        self.handled: asyncio.Queue[str] = asyncio.Queue()

    async def handle_record(self, record: ConsumerRecord[bytes, bytes]) -> None:
        await super().handle_record(record)
        self.handled.put_nowait((record.key or b"").decode())


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def test_one_load_per_tenant_shared_by_concurrent_callers() -> None:
    source, clock = Source(), FakeClock()
    cache = TenantSettingsCache(source.load, clock, max_age_seconds=60)
    a, b = tenant(), tenant()
    source.versions[a] = 3
    source.gate.clear()
    waiting = [asyncio.create_task(cache.get(a)) for _ in range(10)]
    await asyncio.sleep(0)
    source.gate.set()
    assert [s.version for s in await asyncio.gather(*waiting)] == [3] * 10
    assert (await cache.get(b)).version == 0
    assert source.loads == {a: 1, b: 1}
    # Callers get copies: one caller's change is nobody else's.
    mine = await cache.get(a)
    mine.version = 99
    assert (await cache.get(a)).version == 3
    # Past the maximum age, the next get loads again.
    clock.advance(61)
    source.versions[a] = 4
    assert (await cache.get(a)).version == 4 and source.loads[a] == 2


async def test_invalidate_and_a_failed_load_is_not_kept() -> None:
    source, clock = Source(), FakeClock()
    cache = TenantSettingsCache(source.load, clock)
    a = tenant()
    assert (await cache.get(a)).version == 0
    source.versions[a] = 1
    assert (await cache.get(a)).version == 0
    cache.invalidate(a)
    assert (await cache.get(a)).version == 1
    cache.invalidate(a)
    source.fail = True
    with pytest.raises(ConnectionError):
        await cache.get(a)
    source.fail = False
    assert (await cache.get(a)).version == 1
    assert source.loads[a] == 4


@pytest_asyncio.fixture
async def producer(kafka_server: KafkaServer) -> AsyncIterator[Producer]:
    p = Producer(kafka_server.bootstrap_servers)
    try:
        yield p
    finally:
        await p.stop()


async def test_a_change_is_seen_within_a_second_of_its_event(
    kafka_server: KafkaServer, producer: Producer
) -> None:
    source, clock = Source(), FakeClock()
    cache = Observed(source, clock)
    a, b = tenant(), tenant()
    ready = asyncio.Event()
    task = asyncio.create_task(
        settings_consumer(
            cache,
            bootstrap=kafka_server.bootstrap_servers,
            group_id=f"pod-{uuid.uuid4().hex[:8]}",
            ready=ready,
        )
    )
    try:
        async with asyncio.timeout(DEADLINE):
            await ready.wait()
            assert (await cache.get(a)).version == 0
            assert (await cache.get(b)).version == 0
            source.versions[a] = 1
            event = settings_pb2.TenantSettingsChanged(event_id="e1", tenant_id=a, version=1)
            started = time.monotonic()
            await producer.send(TENANT_SETTINGS_TOPIC, a.encode(), event.SerializeToString())
            while (await cache.handled.get()) != a:
                pass
            assert (await cache.get(a)).version == 1
            assert time.monotonic() - started < 1.0
            # Only that tenant was reloaded.
            assert (await cache.get(b)).version == 0
            assert source.loads == {a: 2, b: 1}
            # A record that is not an event is dropped, not retried forever.
            await producer.send(TENANT_SETTINGS_TOPIC, b.encode(), b"\xff\xff garbage")
            while (await cache.handled.get()) != b:
                pass
            assert source.loads == {a: 2, b: 1}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
