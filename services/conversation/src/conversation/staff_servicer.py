"""gRPC servicer of StaffService: translation only."""

from __future__ import annotations

from confab.conversation.v1 import staff_pb2 as pb
from confab.conversation.v1 import staff_pb2_grpc as pb_grpc
from confab_core.grpcx import Ctx
from confab_core.identity import current_caller
from conversation.handlers.staff import StaffHandler


class StaffServicer(pb_grpc.StaffServiceServicer):
    def __init__(self, staff: StaffHandler) -> None:
        self._s = staff

    async def ListTicketStaff(
        self, request: pb.ListTicketStaffRequest, context: Ctx
    ) -> pb.ListTicketStaffResponse:
        found = await self._s.ticket_staff(current_caller(), request.ticket_id)
        return pb.ListTicketStaffResponse(
            staff=[
                pb.StaffMember(user_id=p.user_id, display_name=p.display_name, email=p.email)
                for p in found
            ]
        )
