"""The conversation service's MembershipService, as presence uses it."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from confab.conversation.v1 import membership_pb2 as pb
from confab.conversation.v1 import membership_pb2_grpc as pb_grpc
from confab_core.grpcx.client import translate
from confab_core.identity import Caller, acting_as


class MembershipClient:
    """Each call acts for the given caller; the channel signs it."""

    def __init__(self, channel: grpc.aio.Channel, timeout: float) -> None:
        self._stub = pb_grpc.MembershipServiceStub(channel)
        self._timeout = timeout

    async def check_member(self, caller: Caller, conversation_id: str) -> None:
        """Returns when ``caller`` is a member; NotFound or PermissionDenied otherwise."""
        try:
            with acting_as(caller):
                await self._stub.CheckMember(
                    pb.CheckMemberRequest(conversation_id=conversation_id), timeout=self._timeout
                )
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from None

    async def co_members(self, caller: Caller, user_ids: Sequence[str]) -> set[str]:
        """Which of ``user_ids`` share a conversation with ``caller``."""
        try:
            with acting_as(caller):
                resp = await self._stub.FilterCoMembers(
                    pb.FilterCoMembersRequest(user_ids=list(user_ids)), timeout=self._timeout
                )
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from None
        return set(resp.user_ids)
