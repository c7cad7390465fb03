"""Real Redis (and Kafka, MongoDB and the conversation service, for the tests
that ask for them) on free local ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import cast

import grpc
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from confab.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from confab.presence.v1 import events_pb2
from confab_core import redisx
from confab_core.clock import FakeClock, SystemClock
from confab_core.grpcx.client import channel
from confab_core.identity import Caller, acting_as
from confab_core.ids import new_id
from confab_core.servicetoken import CONVERSATION, InternalAuth
from confab_devservers import KafkaServer, MongoServer, RedisServer, dev_key_file
from conversation import app as conversation_app
from conversation.settings import ConversationSettings
from presence.clients.conversation import MembershipClient
from presence.events import EventQueue, PendingEvent
from presence.handlers.presence import PresenceHandler
from presence.membership import Memberships
from presence.storage.presence import PresenceDb
from presence.sweeper import Sweeper

TTL = 60.0
# The default handler goes offline at the last disconnect, as before the grace
# existed; tests of the grace build theirs with GRACE (the service's default).
GRACE = 10.0
TYPING_TTL = 6.0
HOST = "127.0.0.1"
INTERNAL_KEY = "presence-tests-internal-key-32-bytes!"
# Tests that never ask the conversation service point their membership client
# here, a closed port: a lookup they did not expect fails loudly (UNAVAILABLE).
NOWHERE = f"{HOST}:9"


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


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MongoServer]:
    server = MongoServer(tmp_path_factory.mktemp("mongo"))
    server.start()
    yield server
    server.stop()


@pytest_asyncio.fixture
async def conversation_addr(
    mongo_server: MongoServer, kafka_server: KafkaServer
) -> AsyncIterator[str]:
    """The real conversation service, on a database of its own."""
    settings = ConversationSettings(
        internal_key=INTERNAL_KEY,
        mongo_url=mongo_server.url,
        kafka_bootstrap_servers=kafka_server.bootstrap_servers,
        grpc_port=0,
        mongo_database=f"conv_{new_id()}",
        key_file=dev_key_file(),
        # No virus scanner here: new files would stay pending.
        clamd_required=False,
    )
    async with conversation_app.running(settings, host=HOST) as port:
        yield f"{HOST}:{port}"


async def create_group(
    conversation_addr: str,
    owner: Caller,
    members: list[str],
    kind: int = conversation_pb2.CONVERSATION_KIND_GROUP,
) -> str:
    """A conversation (a private group unless told) in the real conversation
    service; returns its id."""
    ch = channel(conversation_addr, internal_auth("gateway"), CONVERSATION)
    try:
        with acting_as(owner):
            resp = await conversation_pb2_grpc.ConversationServiceStub(ch).CreateConversation(
                conversation_pb2.CreateConversationRequest(
                    kind=cast(conversation_pb2.ConversationKind.ValueType, kind),
                    title="group",
                    member_ids=members,
                ),
                timeout=10,
            )
    finally:
        await ch.close()
    return resp.conversation.id


def internal_auth(service: str) -> InternalAuth:
    # Real expiries: the conversation service checks them against its own clock.
    return InternalAuth(service, INTERNAL_KEY.encode(), SystemClock())


class Kit:
    """The helpers above, handed to tests by the ``kit`` fixture: this folder cannot be
    a package (the conversation service's tests already are one named ``tests``)."""

    create_group = staticmethod(create_group)
    internal_auth = staticmethod(internal_auth)


@pytest.fixture
def kit() -> type[Kit]:
    return Kit


async def open_memberships(target: str, clock: FakeClock) -> tuple[Memberships, grpc.aio.Channel]:
    # Tokens carry real expiries, so they are signed by the system clock; the
    # caches follow the test's clock.
    ch = channel(
        target, InternalAuth("presence", INTERNAL_KEY.encode(), SystemClock()), CONVERSATION
    )
    return Memberships(MembershipClient(ch, 5.0), clock), ch


@pytest_asyncio.fixture
async def memberships(clock: FakeClock) -> AsyncIterator[Memberships]:
    found, ch = await open_memberships(NOWHERE, clock)
    yield found
    await ch.close()


@pytest_asyncio.fixture
async def real_memberships(clock: FakeClock, conversation_addr: str) -> AsyncIterator[Memberships]:
    found, ch = await open_memberships(conversation_addr, clock)
    yield found
    await ch.close()


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
def make_handler(clock: FakeClock, memberships: Memberships) -> MakeHandler:
    """Builds handlers on other stores or queues, e.g. one per simulated pod."""

    def make(
        db: PresenceDb,
        queue: EventQueue,
        *,
        grace: float = 0.0,
        members: Memberships | None = None,
    ) -> PresenceHandler:
        return PresenceHandler(
            db,
            queue,
            clock,
            members or memberships,
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
