"""gRPC servicer of MembershipService: translation only."""

from __future__ import annotations

from confab.conversation.v1 import membership_pb2 as pb
from confab.conversation.v1 import membership_pb2_grpc as pb_grpc
from confab_core.grpcx import Ctx
from confab_core.identity import current_caller
from conversation.handlers.membership import MembershipHandler


class MembershipServicer(pb_grpc.MembershipServiceServicer):
    def __init__(self, membership: MembershipHandler) -> None:
        self._m = membership

    async def CheckMember(
        self, request: pb.CheckMemberRequest, context: Ctx
    ) -> pb.CheckMemberResponse:
        await self._m.check_member(current_caller(), request.conversation_id)
        return pb.CheckMemberResponse()

    async def FilterCoMembers(
        self, request: pb.FilterCoMembersRequest, context: Ctx
    ) -> pb.FilterCoMembersResponse:
        ids = await self._m.filter_co_members(current_caller(), list(request.user_ids))
        return pb.FilterCoMembersResponse(user_ids=ids)
