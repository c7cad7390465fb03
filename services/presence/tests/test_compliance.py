"""Erasure of presence over real gRPC and Redis: the user's (or the tenant's) keys
and index entries go, the fleet-wide counts follow, other tenants stay; only the
conversation service may ask."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from confab.presence.v1 import compliance_pb2 as pb
from confab.presence.v1 import compliance_pb2_grpc as pb_grpc
from confab_core.clock import SystemClock
from confab_core.errors import InvalidArgument
from confab_core.grpcx.client import channel
from confab_core.grpcx.server import GrpcServer
from confab_core.identity import Caller, acting_as
from confab_core.servicetoken import CONVERSATION, GATEWAY, PRESENCE, InternalAuth
from conversation.clients.compliance import PresencePeer
from presence.compliance_servicer import PresenceComplianceServicer
from presence.handlers.compliance import PresenceCompliance
from presence.storage import keys
from presence.storage.presence import PresenceDb

from .conftest import HOST, INTERNAL_KEY

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def world(db: PresenceDb) -> AsyncIterator[tuple[PresenceDb, PresencePeer, str]]:
    server = GrpcServer(0, InternalAuth(PRESENCE, INTERNAL_KEY.encode(), SystemClock()), host=HOST)
    servicer = PresenceComplianceServicer(PresenceCompliance(db))
    server.add(
        lambda s: pb_grpc.add_PresenceComplianceServiceServicer_to_server(servicer, s),
        pb.DESCRIPTOR.services_by_name["PresenceComplianceService"].full_name,
    )
    port = await server.start()
    target = f"{HOST}:{port}"
    conv = channel(
        target, InternalAuth(CONVERSATION, INTERNAL_KEY.encode(), SystemClock()), PRESENCE
    )
    try:
        yield db, PresencePeer(conv, 5.0), target
    finally:
        await conv.close()
        await server.stop(0)


async def online(db: PresenceDb, tenant: str, user: str, conn: str) -> None:
    await db.for_tenant(tenant).connect(user, conn, now_ms=1_000, expires_ms=60_000, ttl_ms=60_000)


async def keys_of(redis: Redis, needle: str) -> list[str]:
    found = [k async for k in redis.scan_iter(match=f"*{needle}*")]
    index = [m for m, _ in await redis.zrange(keys.INDEX_KEY, 0, -1, withscores=True)]
    return [str(k) for k in found] + [str(m) for m in index if needle in str(m)]


async def test_a_user_then_a_tenant_is_forgotten(
    world: tuple[PresenceDb, PresencePeer, str], redis: Redis
) -> None:
    db, peer, _ = world
    await online(db, "t1", "vic", "c1")
    await online(db, "t1", "vic", "c2")
    await online(db, "t1", "amy", "c3")
    await online(db, "t2", "vic", "c4")
    assert await db.stats() == (4, 3)

    assert await peer.erase_user("t1", "vic") == 2
    assert await keys_of(redis, "t1:vic") == [] and "vic" not in str(await keys_of(redis, "t1"))
    assert await keys_of(redis, "t2:vic")
    assert await db.stats() == (2, 2)

    assert await peer.erase_tenant("t1") == 2
    assert await keys_of(redis, "t1") == []
    assert await keys_of(redis, "t2:vic")
    assert await db.stats() == (1, 1)


async def test_only_the_conversation_service_may_call_and_bad_input(
    world: tuple[PresenceDb, PresencePeer, str],
) -> None:
    db, peer, target = world
    await online(db, "t1", "vic", "c1")
    gateway = channel(target, InternalAuth(GATEWAY, INTERNAL_KEY.encode(), SystemClock()), PRESENCE)
    try:
        stub = pb_grpc.PresenceComplianceServiceStub(gateway)
        with acting_as(Caller("t1", "root")), pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.EraseTenantPresence(pb.EraseTenantPresenceRequest())
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        await gateway.close()
    with pytest.raises(InvalidArgument):
        await peer.erase_user("t1", "")
    assert await db.stats() == (1, 1)
