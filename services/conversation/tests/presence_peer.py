"""The real presence service, in-process on a real Redis, for auto-assignment tests:
tests connect agents and set their status through its handler, and the
conversation service's PresenceClient asks it over gRPC who is online."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from confab.presence.v1 import presence_pb2 as ppb
from confab.presence.v1 import presence_pb2_grpc as ppb_grpc
from confab_core import redisx
from confab_core.clock import FakeClock, SystemClock
from confab_core.grpcx.client import channel
from confab_core.grpcx.server import GrpcServer
from confab_core.identity import Caller
from confab_core.servicetoken import CONVERSATION, PRESENCE, InternalAuth
from confab_devservers import RedisServer
from conversation.clients.presence import PresenceClient
from presence.clients.conversation import MembershipClient
from presence.events import EventQueue
from presence.handlers.presence import PresenceHandler
from presence.membership import Memberships
from presence.servicer import PresenceServicer
from presence.storage.presence import PresenceDb

KEY = b"assignment-tests-internal-key-32bytes"
# The presence service never asks conversation here: the conversation
# service's own calls see the whole tenant.
NOWHERE = "127.0.0.1:9"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@dataclass
class PresencePeer:
    handler: PresenceHandler
    client: PresenceClient

    async def online(self, tenant_id: str, user_id: str) -> None:
        await self.handler.connect(Caller(tenant_id, user_id), f"conn-{user_id}", "gw-1")

    async def away(self, tenant_id: str, user_id: str) -> None:
        await self.handler.set_status(Caller(tenant_id, user_id), ppb.PRESENCE_STATUS_AWAY)

    async def offline(self, tenant_id: str, user_id: str) -> None:
        await self.handler.disconnect(Caller(tenant_id, user_id), f"conn-{user_id}")


@pytest_asyncio.fixture
async def presence_peer(redis_server: RedisServer, clock: FakeClock) -> AsyncIterator[PresencePeer]:
    redis = redisx.connect(redis_server.url)
    await redis.flushdb()
    member_channel = channel(NOWHERE, InternalAuth(PRESENCE, KEY, SystemClock()), CONVERSATION)
    handler = PresenceHandler(
        PresenceDb(redis),
        EventQueue(100_000, clock),
        clock,
        Memberships(MembershipClient(member_channel, 1.0), clock),
        ttl_seconds=60.0,
        offline_grace_seconds=0.0,
        typing_ttl_seconds=6.0,
    )
    server = GrpcServer(0, InternalAuth(PRESENCE, KEY, SystemClock()), host="127.0.0.1")
    servicer = PresenceServicer(handler)
    server.add(
        lambda s: ppb_grpc.add_PresenceServiceServicer_to_server(servicer, s),
        ppb.DESCRIPTOR.services_by_name["PresenceService"].full_name,
    )
    port = await server.start()
    ch = channel(f"127.0.0.1:{port}", InternalAuth(CONVERSATION, KEY, SystemClock()), PRESENCE)
    try:
        yield PresencePeer(handler, PresenceClient(ch, 5.0))
    finally:
        await ch.close()
        await server.stop(0)
        await member_channel.close()
        await redis.aclose()
