"""What every client of a peer service shares: identity, timeout, error mapping."""

from __future__ import annotations

from typing import TypeVar

import grpc

from confab_core.grpcx.client import translate
from confab_core.identity import Caller, acting_as

Req = TypeVar("Req")
Resp = TypeVar("Resp")


class PeerClient:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    async def _call(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[Req, Resp],
        request: Req,
        caller: Caller | None,
        timeout_factor: float = 1.0,
    ) -> Resp:
        """Calls as ``caller`` (None: the gateway itself), signed by the channel;
        a peer's error comes back as our ConfabError."""
        try:
            with acting_as(caller):
                return await method(request, timeout=self.timeout * timeout_factor)
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from None
