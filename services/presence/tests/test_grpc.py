"""End to end over gRPC: the real servicer behind GrpcServer and its interceptors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio

from confab.presence.v1 import presence_pb2 as pb
from confab.presence.v1 import presence_pb2_grpc as pb_grpc
from confab_core.errors import InvalidArgument, Unauthenticated
from confab_core.grpcx.client import channel, translate
from confab_core.grpcx.server import GrpcServer
from confab_core.identity import Caller, reset_caller, set_caller
from presence.events import EventQueue
from presence.handlers.presence import PresenceHandler
from presence.servicer import PresenceServicer


@pytest_asyncio.fixture
async def stub(handler: PresenceHandler) -> AsyncIterator[pb_grpc.PresenceServiceAsyncStub]:
    server = GrpcServer(0, host="127.0.0.1")
    servicer = PresenceServicer(handler)
    server.add(
        lambda s: pb_grpc.add_PresenceServiceServicer_to_server(servicer, s),
        pb.DESCRIPTOR.services_by_name["PresenceService"].full_name,
    )
    port = await server.start()
    ch = channel(f"127.0.0.1:{port}")
    try:
        yield pb_grpc.PresenceServiceStub(ch)  # type: ignore[misc]
    finally:
        await ch.close()
        await server.stop(0)


@pytest.mark.asyncio
async def test_connect_get_disconnect_over_grpc(stub, clock, queue: EventQueue) -> None:
    token = set_caller(Caller(tenant_id="t1", user_id="alice"))
    try:
        connected = await stub.Connect(pb.ConnectRequest(connection_id="c1", gateway_id="gw1"))
        assert connected.presence.status == pb.PRESENCE_STATUS_ONLINE
        assert connected.presence.device_count == 1
        assert connected.presence.last_active_at.ToDatetime(tzinfo=clock.now().tzinfo) == (
            clock.now()
        )

        got = await stub.GetPresence(pb.GetPresenceRequest(user_ids=["alice", "bob"]))
        assert [(p.user_id, p.status) for p in got.presences] == [
            ("alice", pb.PRESENCE_STATUS_ONLINE),
            ("bob", pb.PRESENCE_STATUS_OFFLINE),
        ]

        gone = await stub.Disconnect(pb.DisconnectRequest(connection_id="c1"))
        assert gone.presence.status == pb.PRESENCE_STATUS_OFFLINE
        assert gone.presence.device_count == 0
    finally:
        reset_caller(token)
    assert len(queue) == 1  # one user: the offline event replaced the online one


@pytest.mark.asyncio
async def test_other_tenant_sees_nothing_over_grpc(stub) -> None:
    token = set_caller(Caller(tenant_id="t1", user_id="alice"))
    try:
        await stub.Connect(pb.ConnectRequest(connection_id="c1", gateway_id="gw1"))
    finally:
        reset_caller(token)

    token = set_caller(Caller(tenant_id="t2", user_id="mallory"))
    try:
        got = await stub.GetPresence(pb.GetPresenceRequest(user_ids=["alice"]))
    finally:
        reset_caller(token)
    assert got.presences[0].status == pb.PRESENCE_STATUS_OFFLINE
    assert got.presences[0].device_count == 0


@pytest.mark.asyncio
async def test_heartbeat_is_internal_and_takes_tenants_from_entries(stub) -> None:
    token = set_caller(Caller(tenant_id="t1", user_id="alice"))
    try:
        await stub.Connect(pb.ConnectRequest(connection_id="c1", gateway_id="gw1"))
    finally:
        reset_caller(token)

    beat = await stub.Heartbeat(
        pb.HeartbeatRequest(
            gateway_id="gw1",
            connections=[
                pb.HeartbeatConnection(tenant_id="t1", user_id="alice", connection_id="c1"),
                pb.HeartbeatConnection(tenant_id="t2", user_id="alice", connection_id="c1"),
            ],
        )
    )
    assert beat.refreshed == 1


@pytest.mark.asyncio
async def test_errors_keep_their_status_and_code(stub) -> None:
    token = set_caller(Caller(tenant_id="t1", user_id="alice"))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as too_many:
            await stub.GetPresence(pb.GetPresenceRequest(user_ids=[f"u{i}" for i in range(501)]))
    finally:
        reset_caller(token)
    assert too_many.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    error = translate(too_many.value)
    assert isinstance(error, InvalidArgument)
    assert error.code == "too_many_user_ids"

    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await stub.Connect(pb.ConnectRequest(connection_id="c1", gateway_id="gw1"))
    assert isinstance(translate(anonymous.value), Unauthenticated)
