"""gRPC servicer: translates requests to handler calls and results to protos."""

from __future__ import annotations

from confab.presence.v1 import presence_pb2 as pb
from confab.presence.v1 import presence_pb2_grpc as pb_grpc
from confab_core.grpcx import Ctx
from confab_core.identity import current_caller
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
            request.gateway_id,
            [HeartbeatEntry(c.tenant_id, c.user_id, c.connection_id) for c in request.connections],
        )
        return pb.HeartbeatResponse(refreshed=refreshed)

    async def GetPresence(
        self, request: pb.GetPresenceRequest, context: Ctx
    ) -> pb.GetPresenceResponse:
        states = await self._presence.get(current_caller(), list(request.user_ids))
        return pb.GetPresenceResponse(presences=[convert.presence(s) for s in states])
