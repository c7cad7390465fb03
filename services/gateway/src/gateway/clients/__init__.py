"""Stubs for the services behind the gateway, called on behalf of a caller."""

from __future__ import annotations

from typing import TypeVar

import grpc

from confab_core.grpcx.client import translate
from confab_core.identity import CALLER_METADATA_KEY, Caller

Req = TypeVar("Req")
Resp = TypeVar("Resp")


async def call(
    method: grpc.aio.UnaryUnaryMultiCallable[Req, Resp],
    request: Req,
    caller: Caller,
    timeout_s: float,
) -> Resp:
    """Calls ``method`` as ``caller``; a peer's error comes back as our ConfabError."""
    try:
        return await method(
            request, metadata=((CALLER_METADATA_KEY, caller.to_bytes()),), timeout=timeout_s
        )
    except grpc.aio.AioRpcError as exc:
        raise translate(exc) from None
