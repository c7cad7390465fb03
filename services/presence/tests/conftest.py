"""Real Redis (and Kafka, for the tests that ask for it) on free local ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from confab.presence.v1 import events_pb2
from confab_core import redisx
from confab_core.clock import FakeClock
from confab_devservers import KafkaServer, RedisServer
from presence.events import EventQueue, PendingEvent
from presence.handlers.presence import PresenceHandler
from presence.storage.presence import PresenceDb
from presence.sweeper import Sweeper

TTL = 60.0
# The default handler goes offline at the last disconnect, as before the grace
# existed; tests of the grace build theirs with GRACE (the service's default).
GRACE = 10.0
TYPING_TTL = 6.0


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def kafka_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaServer]:
    server = KafkaServer(tmp_path_factory.mktemp("kafka"))
    server.start(timeout=180)
    yield server
    server.stop()


@pytest_asyncio.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = redisx.connect(redis_server.url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(clock: FakeClock) -> EventQueue:
    return EventQueue(10_000, clock)


@pytest.fixture
def db(redis: Redis) -> PresenceDb:
    return PresenceDb(redis)


MakeHandler = Callable[..., PresenceHandler]


@pytest.fixture
def make_handler(clock: FakeClock) -> MakeHandler:
    """Builds handlers on other stores or queues, e.g. one per simulated pod."""

    def make(db: PresenceDb, queue: EventQueue, *, grace: float = 0.0) -> PresenceHandler:
        return PresenceHandler(
            db,
            queue,
            clock,
            ttl_seconds=TTL,
            offline_grace_seconds=grace,
            typing_ttl_seconds=TYPING_TTL,
        )

    return make


@pytest.fixture
def handler(db: PresenceDb, queue: EventQueue, make_handler: MakeHandler) -> PresenceHandler:
    return make_handler(db, queue)


@pytest.fixture
def graceful(db: PresenceDb, queue: EventQueue, make_handler: MakeHandler) -> PresenceHandler:
    """With the offline grace, as the service runs by default."""
    return make_handler(db, queue, grace=GRACE)


@pytest.fixture
def sweeper(db: PresenceDb, queue: EventQueue, clock: FakeClock) -> Sweeper:
    # A tiny page makes every multi-user sweep exercise paging.
    return Sweeper(db, queue, clock, ttl_seconds=TTL, interval_seconds=5, batch_size=2)


Published = list[tuple[PendingEvent, events_pb2.PresenceEvent]]


@pytest.fixture
def events(queue: EventQueue) -> Callable[[], Published]:
    """Takes what the code under test queued for Kafka, decoded."""

    def take() -> Published:
        out = []
        for pending in queue.take(len(queue)):
            event = events_pb2.PresenceEvent()
            event.ParseFromString(pending.value)
            out.append((pending, event))
        return out

    return take
