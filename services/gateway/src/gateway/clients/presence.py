"""The presence service, as the gateway calls it: one typed method per RPC."""

from __future__ import annotations

from typing import TYPE_CHECKING

from confab.presence.v1 import presence_pb2 as ppb
from confab_core.identity import Caller
from gateway.clients.peer import PeerClient

if TYPE_CHECKING:
    from confab.presence.v1.presence_pb2_grpc import PresenceServiceAsyncStub


class PresenceClient(PeerClient):
    def __init__(self, stub: PresenceServiceAsyncStub, timeout: float) -> None:
        super().__init__(timeout)
        self._stub = stub

    async def connect(self, caller: Caller, request: ppb.ConnectRequest) -> ppb.ConnectResponse:
        return await self._call(self._stub.Connect, request, caller)

    async def disconnect(
        self, caller: Caller, request: ppb.DisconnectRequest
    ) -> ppb.DisconnectResponse:
        return await self._call(self._stub.Disconnect, request, caller)

    async def get_presence(
        self, caller: Caller, request: ppb.GetPresenceRequest
    ) -> ppb.GetPresenceResponse:
        return await self._call(self._stub.GetPresence, request, caller)

    async def heartbeat(
        self, caller: Caller | None, request: ppb.HeartbeatRequest
    ) -> ppb.HeartbeatResponse:
        return await self._call(self._stub.Heartbeat, request, caller)

    async def set_status(
        self, caller: Caller, request: ppb.SetStatusRequest
    ) -> ppb.SetStatusResponse:
        return await self._call(self._stub.SetStatus, request, caller)

    async def set_typing(
        self, caller: Caller, request: ppb.SetTypingRequest
    ) -> ppb.SetTypingResponse:
        return await self._call(self._stub.SetTyping, request, caller)
