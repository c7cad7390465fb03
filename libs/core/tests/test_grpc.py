"""gRPC server and client interceptors end to end, over a real loopback connection."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from prometheus_client import REGISTRY

from confab_core.clock import FakeClock, SystemClock
from confab_core.errors import ERROR_CODE_METADATA_KEY, NotFound
from confab_core.grpcx import Ctx
from confab_core.grpcx.client import channel as confab_channel
from confab_core.grpcx.client import translate
from confab_core.grpcx.server import GrpcServer
from confab_core.identity import (
    CALLER_METADATA_KEY,
    ROLE_AGENT,
    ROLE_SERVICE,
    Caller,
    acting_as,
    current_caller,
    current_service,
    reset_caller,
    set_caller,
)
from confab_core.servicetoken import InternalAuth

SERVICE = "confab.test.v1.Probe"
KEY = b"k" * 32
# The server under test is the "probe" service; its callers sign as "tester".
SERVER_AUTH = InternalAuth("probe", KEY, SystemClock())
CLIENT_AUTH = InternalAuth("tester", KEY, SystemClock())
SECRET = "db-password=hunter2"


async def who_am_i(request: bytes, context: Ctx) -> bytes:
    caller = current_caller()
    span = trace.get_current_span().get_span_context()
    return json.dumps(
        {
            "tid": caller.tenant_id,
            "sub": caller.user_id,
            "roles": sorted(caller.roles),
            "name": caller.display_name,
            "trace_id": format(span.trace_id, "032x"),
            "echo": request.decode(),
            "service": current_service(),
        }
    ).encode()


async def fail(request: bytes, context: Ctx) -> bytes:
    raise NotFound("thing is gone", "thing_not_found")


async def crash(request: bytes, context: Ctx) -> bytes:
    raise RuntimeError(f"connection failed: {SECRET}")


async def abort(request: bytes, context: Ctx) -> bytes:
    await context.abort(grpc.StatusCode.ABORTED, "aborted by handler")
    raise AssertionError("unreachable")


async def upload(requests: AsyncIterator[bytes], context: Ctx) -> bytes:
    parts = [part async for part in requests]
    if parts == [b"fail"]:
        raise NotFound("thing is gone", "thing_not_found")
    return f"{current_caller().user_id}:{b''.join(parts).decode()}".encode()


async def download(request: bytes, context: Ctx) -> AsyncIterator[bytes]:
    if request == b"fail-first":
        raise NotFound("thing is gone", "thing_not_found")
    yield current_caller().user_id.encode()
    if request == b"fail-later":
        raise NotFound("thing went", "thing_gone")
    yield current_caller().tenant_id.encode()


def register(server: grpc.aio.Server) -> None:
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "WhoAmI": grpc.unary_unary_rpc_method_handler(who_am_i),
                    "Fail": grpc.unary_unary_rpc_method_handler(fail),
                    "Crash": grpc.unary_unary_rpc_method_handler(crash),
                    "Abort": grpc.unary_unary_rpc_method_handler(abort),
                    "Upload": grpc.stream_unary_rpc_method_handler(upload),
                    "Download": grpc.unary_stream_rpc_method_handler(download),
                },
            ),
        )
    )


@dataclass
class Running:
    server: GrpcServer
    target: str
    channel: grpc.aio.Channel

    def method(self, name: str) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
        return self.channel.unary_unary(f"/{SERVICE}/{name}")


@pytest_asyncio.fixture
async def running() -> AsyncIterator[Running]:
    server = GrpcServer(0, SERVER_AUTH, host="127.0.0.1")
    server.add(register, SERVICE)
    port = await server.start()
    assert port > 0 and server.port == port
    target = f"127.0.0.1:{port}"
    ch = confab_channel(target, CLIENT_AUTH, "probe")
    try:
        yield Running(server, target, ch)
    finally:
        await ch.close()
        await server.stop(0)


def trailing_code(exc: grpc.aio.AioRpcError) -> str | None:
    for key, value in exc.trailing_metadata() or ():
        if key == ERROR_CODE_METADATA_KEY:
            return str(value)
    return None


def handled(method: str, code: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "confab_grpc_server_handled_total", {"grpc_method": method, "grpc_code": code}
        )
        or 0.0
    )


@pytest.mark.asyncio
async def test_caller_arrives_in_the_handler(running: Running) -> None:
    caller = Caller("tenant-a", "alice", frozenset({ROLE_AGENT}), display_name="Älice")
    token = set_caller(caller)
    try:
        reply = json.loads(await running.method("WhoAmI")(b"hi", timeout=10))
    finally:
        reset_caller(token)
    assert reply["tid"] == "tenant-a"
    assert reply["sub"] == "alice"
    assert reply["roles"] == [ROLE_AGENT]
    assert reply["name"] == "Älice"
    assert reply["echo"] == "hi"
    assert reply["service"] == "tester"


@pytest.mark.asyncio
async def test_no_caller_is_unauthenticated_and_nothing_leaks_between_calls(
    running: Running,
) -> None:
    token = set_caller(Caller("tenant-a", "alice"))
    try:
        await running.method("WhoAmI")(b"", timeout=10)
    finally:
        reset_caller(token)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await running.method("WhoAmI")(b"", timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert trailing_code(info.value) == "no_caller"


async def call_with_token(running: Running, raw: bytes) -> grpc.aio.AioRpcError:
    plain = grpc.aio.insecure_channel(running.target)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await plain.unary_unary(f"/{SERVICE}/WhoAmI")(
                b"", metadata=((CALLER_METADATA_KEY, raw),), timeout=10
            )
    finally:
        await plain.close()
    return info.value


@pytest.mark.asyncio
async def test_unsigned_or_forged_callers_are_unauthenticated(running: Running) -> None:
    alice = Caller("tenant-a", "alice", frozenset({ROLE_AGENT}))
    bare = json.dumps(alice.to_doc()).encode()
    forged = InternalAuth("tester", b"x" * 32, SystemClock()).signer.token(alice, "probe")
    other_audience = CLIENT_AUTH.signer.token(alice, "somebody-else")
    genuine = CLIENT_AUTH.signer.token(alice, "probe")
    tampered = genuine.replace(b"alice", b"mallo")
    for raw in (b"{not json", bare, forged, other_audience, tampered):
        err = await call_with_token(running, raw)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED, raw
        assert trailing_code(err) == "bad_service_token", raw


@pytest.mark.asyncio
async def test_an_expired_token_is_unauthenticated(running: Running) -> None:
    past = FakeClock()  # 2026-01-01, long before now
    stale = InternalAuth("tester", KEY, past).signer.token(Caller("t", "u"), "probe")
    err = await call_with_token(running, stale)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert trailing_code(err) == "service_token_expired"


@pytest.mark.asyncio
async def test_only_some_services_may_carry_the_service_role(running: Running) -> None:
    svc = Caller("t", "confab-bot", frozenset({ROLE_SERVICE}))
    as_bot = InternalAuth("bot", KEY, SystemClock()).signer.token(svc, "probe")
    plain = grpc.aio.insecure_channel(running.target)
    try:
        reply = json.loads(
            await plain.unary_unary(f"/{SERVICE}/WhoAmI")(
                b"", metadata=((CALLER_METADATA_KEY, as_bot),), timeout=10
            )
        )
    finally:
        await plain.close()
    assert (reply["service"], reply["roles"]) == ("bot", [ROLE_SERVICE])
    # A service that only forwards end users (presence, conversation) cannot.
    as_presence = InternalAuth("presence", KEY, SystemClock()).signer.token(svc, "probe")
    err = await call_with_token(running, as_presence)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.asyncio
async def test_a_service_acting_as_itself_has_a_service_but_no_caller(running: Running) -> None:
    with acting_as(None), pytest.raises(grpc.aio.AioRpcError) as info:
        await running.method("WhoAmI")(b"", timeout=10)
    assert trailing_code(info.value) == "no_caller"


@pytest.mark.asyncio
async def test_trace_context_crosses_the_call(running: Running) -> None:
    trace_id = 0x0123456789ABCDEF0123456789ABCDEF
    parent = NonRecordingSpan(
        SpanContext(
            trace_id=trace_id,
            span_id=0x1122334455667788,
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
    )
    token = set_caller(Caller("t", "u"))
    try:
        with trace.use_span(parent):
            reply = json.loads(await running.method("WhoAmI")(b"", timeout=10))
    finally:
        reset_caller(token)
    assert reply["trace_id"] == format(trace_id, "032x")


@pytest.mark.asyncio
async def test_confab_error_maps_to_status_and_trailing_code(running: Running) -> None:
    method = f"/{SERVICE}/Fail"
    before = handled(method, "NOT_FOUND")
    token = set_caller(Caller("t", "u"))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await running.method("Fail")(b"", timeout=10)
    finally:
        reset_caller(token)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == "thing is gone"
    assert trailing_code(info.value) == "thing_not_found"
    back = translate(info.value)
    assert isinstance(back, NotFound)
    assert (back.code, back.message) == ("thing_not_found", "thing is gone")
    assert handled(method, "NOT_FOUND") == before + 1


@pytest.mark.asyncio
async def test_unexpected_exception_is_internal_without_details(
    running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    method = f"/{SERVICE}/Crash"
    before = handled(method, "INTERNAL")
    with caplog.at_level(logging.ERROR), pytest.raises(grpc.aio.AioRpcError) as info:
        await running.method("Crash")(b"", timeout=10)
    err = info.value
    assert err.code() == grpc.StatusCode.INTERNAL
    assert trailing_code(err) == "internal"
    details = err.details() or ""
    assert details == "internal error"
    assert SECRET not in details and "Traceback" not in details and "RuntimeError" not in details
    assert SECRET not in str(err.debug_error_string())
    # The server logs the full story for operators.
    assert any("unhandled error" in r.getMessage() for r in caplog.records)
    assert handled(method, "INTERNAL") == before + 1


@pytest.mark.asyncio
async def test_handler_abort_passes_through(running: Running) -> None:
    method = f"/{SERVICE}/Abort"
    before = handled(method, "ABORTED")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await running.method("Abort")(b"", timeout=10)
    assert info.value.code() == grpc.StatusCode.ABORTED
    assert info.value.details() == "aborted by handler"
    assert trailing_code(info.value) is None
    assert handled(method, "ABORTED") == before + 1


@pytest.mark.asyncio
async def test_health_reports_serving(running: Running) -> None:
    stub = health_pb2_grpc.HealthStub(running.channel)
    for service in ("", SERVICE, health.SERVICE_NAME):
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.asyncio
async def test_reflection_lists_services(running: Running) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(running.channel)
    call = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
    )
    names: set[str] = set()
    async for response in call:
        names |= {s.name for s in response.list_services_response.service}
    assert names == {SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME}


@pytest.mark.asyncio
async def test_stop_enters_graceful_shutdown() -> None:
    server = GrpcServer(0, SERVER_AUTH, host="127.0.0.1")
    server.add(register, SERVICE)
    port = await server.start()
    ch = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = health_pb2_grpc.HealthStub(ch)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        await server.stop(0)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
        assert info.value.code() in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        )
    finally:
        await ch.close()


@pytest.mark.asyncio
async def test_streams_carry_the_caller_and_map_errors(running: Running) -> None:
    """Uploads (client streams) and downloads (server streams) are business
    calls too: the caller's token travels, and errors keep their codes."""
    uploader = running.channel.stream_unary(f"/{SERVICE}/Upload")
    downloader = running.channel.unary_stream(f"/{SERVICE}/Download")

    async def parts(*chunks: bytes) -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    with acting_as(Caller("t1", "u1", frozenset({ROLE_AGENT}))):
        assert await uploader(parts(b"ab", b"cd")) == b"u1:abcd"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await uploader(parts(b"fail"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert trailing_code(err.value) == "thing_not_found"
        assert [m async for m in downloader(b"ok")] == [b"u1", b"t1"]
        with pytest.raises(grpc.aio.AioRpcError) as err:
            _ = [m async for m in downloader(b"fail-first")]
        assert trailing_code(err.value) == "thing_not_found"
        got: list[bytes] = []
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for m in downloader(b"fail-later"):
                got.append(m)
        assert got == [b"u1"] and trailing_code(err.value) == "thing_gone"
