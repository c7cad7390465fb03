"""End to end over gRPC: the real servicer behind GrpcServer and its interceptors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from contextvars import Token
from datetime import timedelta

import grpc
import pytest
import pytest_asyncio
from google.protobuf.timestamp_pb2 import Timestamp

from confab.presence.v1 import presence_pb2 as pb
from confab.presence.v1 import presence_pb2_grpc as pb_grpc
from confab_core.clock import FakeClock
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


def as_caller(tenant_id: str, user_id: str) -> Token[Caller | None]:
    return set_caller(Caller(tenant_id=tenant_id, user_id=user_id))


def future(clock: FakeClock, seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(clock.now() + timedelta(seconds=seconds))
    return ts


@pytest.mark.asyncio
async def test_set_status_over_grpc(stub, clock: FakeClock, queue: EventQueue) -> None:
    token = as_caller("t1", "alice")
    try:
        await stub.Connect(pb.ConnectRequest(connection_id="c1", gateway_id="gw1"))
        expires = future(clock, 30)
        got = await stub.SetStatus(
            pb.SetStatusRequest(
                status=pb.PRESENCE_STATUS_AWAY,
                custom_status="Lunch",
                custom_status_expires_at=expires,
            )
        )
        assert got.presence.status == pb.PRESENCE_STATUS_AWAY
        assert got.presence.chosen_status == pb.PRESENCE_STATUS_AWAY
        assert got.presence.custom_status == "Lunch"
        assert got.presence.custom_status_expires_at == expires

        # custom_status unset keeps the text; set to "" clears it.
        kept = await stub.SetStatus(pb.SetStatusRequest(status=pb.PRESENCE_STATUS_BUSY))
        assert (kept.presence.status, kept.presence.custom_status) == (
            pb.PRESENCE_STATUS_BUSY,
            "Lunch",
        )
        cleared = await stub.SetStatus(
            pb.SetStatusRequest(status=pb.PRESENCE_STATUS_BUSY, custom_status="")
        )
        assert cleared.presence.custom_status == ""
        assert not cleared.presence.HasField("custom_status_expires_at")

        [read] = (await stub.GetPresence(pb.GetPresenceRequest(user_ids=["alice"]))).presences
        assert (read.status, read.chosen_status, read.custom_status) == (
            pb.PRESENCE_STATUS_BUSY,
            pb.PRESENCE_STATUS_BUSY,
            "",
        )
    finally:
        reset_caller(token)
    assert len(queue) == 1  # one user's presence, coalesced to the newest


@pytest.mark.asyncio
async def test_set_status_is_scoped_to_the_callers_tenant_over_grpc(stub, clock) -> None:
    token = as_caller("t1", "alice")
    try:
        await stub.Connect(pb.ConnectRequest(connection_id="c1", gateway_id="gw1"))
        await stub.SetStatus(
            pb.SetStatusRequest(status=pb.PRESENCE_STATUS_BUSY, custom_status="t1 secret")
        )
    finally:
        reset_caller(token)

    token = as_caller("t2", "mallory")
    try:
        [seen] = (await stub.GetPresence(pb.GetPresenceRequest(user_ids=["alice"]))).presences
    finally:
        reset_caller(token)
    assert (seen.status, seen.custom_status) == (pb.PRESENCE_STATUS_OFFLINE, "")
    assert seen.chosen_status == pb.PRESENCE_STATUS_ONLINE


@pytest.mark.asyncio
async def test_set_typing_over_grpc(stub, clock: FakeClock, events) -> None:
    token = as_caller("t1", "alice")
    try:
        got = await stub.SetTyping(pb.SetTypingRequest(conversation_id="conv-1", typing=True))
    finally:
        reset_caller(token)
    assert got.expires_at == future(clock, 6)
    [(pending, event)] = events()
    assert pending.key == b"t1:alice"
    assert (event.typing.conversation_id, event.typing.typing) == ("conv-1", True)
    assert event.typing.expires_at == got.expires_at


@pytest.mark.asyncio
async def test_new_rpcs_keep_their_error_codes(stub, clock: FakeClock) -> None:
    async def code(call: Awaitable[object]) -> tuple[grpc.StatusCode, str]:
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await call
        error = translate(exc.value)
        return exc.value.code(), error.code

    invalid = grpc.StatusCode.INVALID_ARGUMENT
    token = as_caller("t1", "alice")
    try:
        assert await code(
            stub.SetStatus(pb.SetStatusRequest(status=pb.PRESENCE_STATUS_OFFLINE))
        ) == (invalid, "invalid_status")
        assert await code(stub.SetStatus(pb.SetStatusRequest())) == (invalid, "invalid_status")
        assert await code(
            stub.SetStatus(
                pb.SetStatusRequest(status=pb.PRESENCE_STATUS_AWAY, custom_status="x" * 101)
            )
        ) == (invalid, "custom_status_too_long")
        assert await code(
            stub.SetStatus(
                pb.SetStatusRequest(
                    status=pb.PRESENCE_STATUS_AWAY,
                    custom_status="Lunch",
                    custom_status_expires_at=future(clock, -1),
                )
            )
        ) == (invalid, "invalid_expiry")
        assert await code(stub.SetTyping(pb.SetTypingRequest(typing=True))) == (
            invalid,
            "missing_conversation_id",
        )
        assert await code(
            stub.SetTyping(pb.SetTypingRequest(conversation_id="c" * 129, typing=True))
        ) == (invalid, "invalid_conversation_id")
    finally:
        reset_caller(token)

    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await stub.SetTyping(pb.SetTypingRequest(conversation_id="conv-1", typing=True))
    assert isinstance(translate(anonymous.value), Unauthenticated)
