"""Streamed calls (file uploads and downloads) carry the caller's signed token like
unary ones, over a real loopback connection."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import grpc
import pytest

from confab_core.clock import SystemClock
from confab_core.grpcx import Ctx
from confab_core.grpcx.client import channel as confab_channel
from confab_core.identity import CALLER_METADATA_KEY, Caller, acting_as
from confab_core.servicetoken import InternalAuth

SERVICE = "confab.test.v1.StreamProbe"
KEY = b"k" * 32
SERVER_AUTH = InternalAuth("probe", KEY, SystemClock())
CLIENT_AUTH = InternalAuth("tester", KEY, SystemClock())


def _who(context: Ctx) -> dict[str, str]:
    for key, value in context.invocation_metadata() or ():
        if key == CALLER_METADATA_KEY and isinstance(value, bytes):
            verified = SERVER_AUTH.verifier.verify(value)
            assert verified.caller is not None
            return {
                "tid": verified.caller.tenant_id,
                "sub": verified.caller.user_id,
                "service": verified.service,
            }
    return {}


async def upload(requests: AsyncIterator[bytes], context: Ctx) -> bytes:
    size = 0
    async for chunk in requests:
        size += len(chunk)
    return json.dumps({**_who(context), "size": size}).encode()


async def download(request: bytes, context: Ctx) -> AsyncIterator[bytes]:
    yield json.dumps(_who(context)).encode()
    yield request


@pytest.mark.asyncio
async def test_streamed_calls_carry_the_caller() -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "Upload": grpc.stream_unary_rpc_method_handler(upload),
                    "Download": grpc.unary_stream_rpc_method_handler(download),
                },
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    ch = confab_channel(f"127.0.0.1:{port}", CLIENT_AUTH, "probe")
    try:
        caller = Caller("tenant-a", "alice")

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(3):
                yield b"x" * 1000

        with acting_as(caller):
            up = ch.stream_unary(f"/{SERVICE}/Upload")(chunks(), timeout=10)
            down = ch.unary_stream(f"/{SERVICE}/Download")(b"bytes", timeout=10)
        assert json.loads(await up) == {
            "tid": "tenant-a",
            "sub": "alice",
            "service": "tester",
            "size": 3000,
        }
        parts = [part async for part in down]
        assert json.loads(parts[0]) == {"tid": "tenant-a", "sub": "alice", "service": "tester"}
        assert parts[1] == b"bytes"
    finally:
        await ch.close()
        await server.stop(0)
