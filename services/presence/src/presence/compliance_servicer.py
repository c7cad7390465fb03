"""gRPC servicer of PresenceComplianceService: translation only."""

from __future__ import annotations

from confab.presence.v1 import compliance_pb2 as pb
from confab.presence.v1 import compliance_pb2_grpc as pb_grpc
from confab_core.grpcx import Ctx
from confab_core.identity import current_caller
from presence.handlers.compliance import PresenceCompliance


class PresenceComplianceServicer(pb_grpc.PresenceComplianceServiceServicer):
    def __init__(self, compliance: PresenceCompliance) -> None:
        self._c = compliance

    async def EraseUserPresence(
        self, request: pb.EraseUserPresenceRequest, context: Ctx
    ) -> pb.EraseUserPresenceResponse:
        deleted = await self._c.erase_user(current_caller(), request.user_id)
        return pb.EraseUserPresenceResponse(deleted_keys=deleted)

    async def EraseTenantPresence(
        self, request: pb.EraseTenantPresenceRequest, context: Ctx
    ) -> pb.EraseTenantPresenceResponse:
        deleted = await self._c.erase_tenant(current_caller())
        return pb.EraseTenantPresenceResponse(deleted_keys=deleted)
