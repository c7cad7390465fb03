"""gRPC servicer: translates requests to handler calls and results to protos."""

from __future__ import annotations

from confab.presence.v1 import presence_pb2 as pb
from confab.presence.v1 import presence_pb2_grpc as pb_grpc
from confab_core.grpcx import Ctx
from confab_core.identity import current_caller, current_service
from presence import convert
from presence.handlers.presence import HeartbeatEntry, PresenceHandler


class PresenceServicer(pb_grpc.PresenceServiceServicer):
    def __init__(self, presence: PresenceHandler) -> None:
        self._presence = presence

    async def Connect(self, request: pb.ConnectRequest, context: Ctx) -> pb.ConnectResponse:
        state = await self._presence.connect(
            current_caller(), request.connection_id, request.gateway_id
        )
        return pb.ConnectResponse(presence=convert.presence(state))

    async def Disconnect(
        self, request: pb.DisconnectRequest, context: Ctx
    ) -> pb.DisconnectResponse:
        state = await self._presence.disconnect(current_caller(), request.connection_id)
        return pb.DisconnectResponse(presence=convert.presence(state))

    async def Heartbeat(self, request: pb.HeartbeatRequest, context: Ctx) -> pb.HeartbeatResponse:
        refreshed = await self._presence.heartbeat(
            current_service(),
            request.gateway_id,
            [HeartbeatEntry(c.tenant_id, c.user_id, c.connection_id) for c in request.connections],
        )
        return pb.HeartbeatResponse(refreshed=refreshed)

    async def GetPresence(
        self, request: pb.GetPresenceRequest, context: Ctx
    ) -> pb.GetPresenceResponse:
        states = await self._presence.get(current_caller(), list(request.user_ids))
        return pb.GetPresenceResponse(presences=[convert.presence(s) for s in states])

    async def SetStatus(self, request: pb.SetStatusRequest, context: Ctx) -> pb.SetStatusResponse:
        state = await self._presence.set_status(
            current_caller(),
            request.status,
            request.custom_status if request.HasField("custom_status") else None,
            (
                request.custom_status_expires_at.ToMilliseconds()
                if request.HasField("custom_status_expires_at")
                else None
            ),
        )
        return pb.SetStatusResponse(presence=convert.presence(state))

    async def SetTyping(self, request: pb.SetTypingRequest, context: Ctx) -> pb.SetTypingResponse:
        expires_ms = await self._presence.set_typing(
            current_caller(), request.conversation_id, request.typing
        )
        return pb.SetTypingResponse(expires_at=convert.timestamp(expires_ms))
