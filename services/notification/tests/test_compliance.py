"""The compliance RPCs over real gRPC and MongoDB: export pages, erasure and
retention, callable by the conversation service only, within one tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
import pytest_asyncio

from confab.notification.v1 import compliance_pb2 as pb
from confab.notification.v1 import compliance_pb2_grpc as pb_grpc
from confab.notification.v1 import notification_pb2 as npb
from confab_core import mongo
from confab_core.clock import SystemClock
from confab_core.crypto import CachingKeySource
from confab_core.errors import InvalidArgument
from confab_core.grpcx.client import channel
from confab_core.grpcx.server import GrpcServer
from confab_core.identity import Caller, acting_as
from confab_core.ids import new_id
from confab_core.servicetoken import CONVERSATION, GATEWAY, NOTIFICATION, InternalAuth
from conversation.clients.compliance import NotificationPeer
from notification.clients.keys import key_client
from notification.compliance_servicer import NotificationComplianceServicer
from notification.handlers.compliance import NotificationCompliance
from notification.storage.db import Database

from .conftest import HOST, INTERNAL_KEY, Servers

pytestmark = pytest.mark.asyncio

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest_asyncio.fixture
async def world(
    servers: Servers, conversation_addr: str
) -> AsyncIterator[tuple[Database, NotificationPeer, str]]:
    auth = InternalAuth(NOTIFICATION, INTERNAL_KEY.encode(), SystemClock())
    # Previews are sealed with the tenants' keys from the real KeyService.
    keys_channel = channel(conversation_addr, auth, CONVERSATION)
    client = mongo.connect(servers.mongo_url, "notification-compliance")
    db = Database(client, f"notif_{new_id()}", CachingKeySource(key_client(keys_channel)))
    await db.ensure_indexes()
    server = GrpcServer(0, auth, host=HOST)
    servicer = NotificationComplianceServicer(NotificationCompliance(db))
    server.add(
        lambda s: pb_grpc.add_NotificationComplianceServiceServicer_to_server(servicer, s),
        pb.DESCRIPTOR.services_by_name["NotificationComplianceService"].full_name,
    )
    port = await server.start()
    target = f"{HOST}:{port}"
    conv_channel = channel(
        target, InternalAuth(CONVERSATION, INTERNAL_KEY.encode(), SystemClock()), NOTIFICATION
    )
    try:
        yield db, NotificationPeer(conv_channel, 5.0), target
    finally:
        await conv_channel.close()
        await keys_channel.close()
        await server.stop(0)
        await client.drop_database(db.db.name)
        await client.close()


async def notify(db: Database, tenant: str, user: str, n: int, at: datetime) -> None:
    for i in range(n):
        await db.notifications(tenant).claim(
            user_id=user,
            conversation_id="c1",
            message_id=f"{user}-{at.timestamp()}-{i}",
            reason=npb.NOTIFICATION_REASON_OFFLINE_MESSAGE,
            preview=f"preview {i}",
            event_seq=i,
            email=f"{user}@example.com",
            now=at,
        )


async def test_export_pages_then_erasure_then_retention(
    world: tuple[Database, NotificationPeer, str],
) -> None:
    db, peer, _ = world
    await notify(db, "t1", "vic", 3, T0)
    await notify(db, "t1", "amy", 2, T0)
    await notify(db, "t1", "amy", 1, T0 + timedelta(days=30))
    await notify(db, "t2", "vic", 2, T0)

    first = await peer.page("t1", "vic", "", 2)
    rest = await peer.page("t1", "vic", first[-1][0], 2)
    assert len(first) == 2 and len(rest) == 1
    assert {r["type"] for _, r in first + rest} == {"notification"}
    assert first[0][1]["reason"] == "offline_message" and first[0][1]["email_status"] == "pending"

    assert await peer.erase_user("t1", "vic") == 3
    assert await peer.page("t1", "vic", "", 10) == []
    assert len(await peer.page("t2", "vic", "", 10)) == 2  # another tenant's user

    assert await peer.purge_before("t1", T0 + timedelta(days=1)) == 2
    assert [r["message_id"] for _, r in await peer.page("t1", "amy", "", 10)] == [
        f"amy-{(T0 + timedelta(days=30)).timestamp()}-0"
    ]
    assert await peer.erase_tenant("t1") == 1
    assert len(await peer.page("t2", "vic", "", 10)) == 2


async def test_only_the_conversation_service_may_call(
    world: tuple[Database, NotificationPeer, str],
) -> None:
    db, _, target = world
    await notify(db, "t1", "vic", 1, T0)
    gateway = channel(
        target, InternalAuth(GATEWAY, INTERNAL_KEY.encode(), SystemClock()), NOTIFICATION
    )
    try:
        stub = pb_grpc.NotificationComplianceServiceStub(gateway)
        admin = Caller("t1", "root", frozenset({"tenant_admin"}))
        with acting_as(admin), pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.EraseUserNotifications(pb.EraseUserNotificationsRequest(user_id="vic"))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        await gateway.close()
    assert await db.notifications("t1").list_for_user("vic", 10)


async def test_bad_input_is_invalid_argument(world: tuple[Database, NotificationPeer, str]) -> None:
    _, peer, _ = world
    calls = (peer.page("t1", "", "", 10), peer.page("t1", "vic", "", 0), peer.erase_user("t1", ""))
    for call in calls:
        with pytest.raises(InvalidArgument) as err:
            await call
        assert err.value.code in ("invalid_user_id", "invalid_limit")
