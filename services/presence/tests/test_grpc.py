"""End to end over gRPC: the real servicer behind GrpcServer and its interceptors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from contextvars import Token
from datetime import timedelta
from typing import Any

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
from confab_core.identity import (
    CALLER_METADATA_KEY,
    ROLE_AGENT,
    Caller,
    acting_as,
    reset_caller,
    set_caller,
)
from confab_core.servicetoken import GATEWAY, PRESENCE, InternalAuth
from presence.events import EventQueue
from presence.handlers.presence import PresenceHandler
from presence.servicer import PresenceServicer

STAFF = frozenset({ROLE_AGENT})


@asynccontextmanager
async def serving(
    handler: PresenceHandler, kit: Any, as_service: str = GATEWAY
) -> AsyncIterator[pb_grpc.PresenceServiceAsyncStub]:
    """The servicer behind a real server; calls are signed as ``as_service``."""
    server = GrpcServer(0, kit.internal_auth(PRESENCE), host="127.0.0.1")
    servicer = PresenceServicer(handler)
    server.add(
        lambda s: pb_grpc.add_PresenceServiceServicer_to_server(servicer, s),
        pb.DESCRIPTOR.services_by_name["PresenceService"].full_name,
    )
    port = await server.start()
    ch = channel(f"127.0.0.1:{port}", kit.internal_auth(as_service), PRESENCE)
    try:
        yield pb_grpc.PresenceServiceStub(ch)  # type: ignore[misc]
    finally:
        await ch.close()
        await server.stop(0)


@pytest_asyncio.fixture
async def stub(
    handler: PresenceHandler, kit: Any
) -> AsyncIterator[pb_grpc.PresenceServiceAsyncStub]:
    async with serving(handler, kit) as found:
        yield found


@pytest.mark.asyncio
async def test_connect_get_disconnect_over_grpc(stub, clock, queue: EventQueue) -> None:
    token = set_caller(Caller(tenant_id="t1", user_id="alice", roles=STAFF))
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

    token = set_caller(Caller(tenant_id="t2", user_id="mallory", roles=STAFF))
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
async def test_heartbeat_needs_a_gateways_service_token(
    handler: PresenceHandler, stub, kit: Any
) -> None:
    beat = pb.HeartbeatRequest(
        gateway_id="gw1",
        connections=[pb.HeartbeatConnection(tenant_id="t1", user_id="a", connection_id="c1")],
    )
    # An end user's call signed by the gateway is still the gateway's.
    token = set_caller(Caller(tenant_id="t1", user_id="alice"))
    try:
        assert (await stub.Heartbeat(beat)).refreshed == 0
    finally:
        reset_caller(token)
    async with serving(handler, kit, as_service="bot") as as_bot:
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await as_bot.Heartbeat(beat)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert translate(denied.value).code == "service_not_allowed"
    server = GrpcServer(0, kit.internal_auth(PRESENCE), host="127.0.0.1")
    servicer = PresenceServicer(handler)
    server.add(
        lambda s: pb_grpc.add_PresenceServiceServicer_to_server(servicer, s),
        pb.DESCRIPTOR.services_by_name["PresenceService"].full_name,
    )
    port = await server.start()
    plain = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    forged = InternalAuth(GATEWAY, b"not-the-key-" * 3, FakeClock()).signer.token(None, PRESENCE)
    try:
        unsigned = pb_grpc.PresenceServiceStub(plain)  # type: ignore[misc]
        with pytest.raises(grpc.aio.AioRpcError) as anonymous:
            await unsigned.Heartbeat(beat)
        assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert translate(anonymous.value).code == "service_only"
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await unsigned.Heartbeat(beat, metadata=((CALLER_METADATA_KEY, forged),))
        assert bad.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert translate(bad.value).code == "bad_service_token"
    finally:
        await plain.close()
        await server.stop(0)


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
    return set_caller(Caller(tenant_id=tenant_id, user_id=user_id, roles=STAFF))


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
async def test_set_typing_over_grpc(
    db, queue, make_handler, real_memberships, conversation_addr, clock: FakeClock, events, kit: Any
) -> None:
    alice = Caller(tenant_id="t1", user_id="alice")
    conv_id = await kit.create_group(conversation_addr, alice, ["bob"])
    handler = make_handler(db, queue, members=real_memberships)
    async with serving(handler, kit) as stub:
        with acting_as(alice):
            got = await stub.SetTyping(pb.SetTypingRequest(conversation_id=conv_id, typing=True))
        with (
            acting_as(Caller(tenant_id="t1", user_id="mallory")),
            pytest.raises(grpc.aio.AioRpcError) as outsider,
        ):
            await stub.SetTyping(pb.SetTypingRequest(conversation_id=conv_id, typing=True))
    assert got.expires_at == future(clock, 6)
    [(pending, event)] = events()
    assert pending.key == b"t1:alice"
    assert (event.typing.conversation_id, event.typing.typing) == (conv_id, True)
    assert event.typing.expires_at == got.expires_at
    # A private group is invisible to a non-member: the same 404 as no conversation.
    assert outsider.value.code() == grpc.StatusCode.NOT_FOUND
    assert translate(outsider.value).code == "conversation_not_found"


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
