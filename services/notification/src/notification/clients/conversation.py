"""The conversation service, as the notification service uses it."""

from __future__ import annotations

import grpc

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import conversation_pb2_grpc as pb_grpc
from confab.conversation.v1 import staff_pb2, staff_pb2_grpc
from confab_core.grpcx.client import translate


class ConversationClient:
    """Calls act for whoever ``current_caller()`` is; the channel signs it into the
    service token (confab_core.servicetoken), the one way identity travels."""

    def __init__(self, channel: grpc.aio.Channel, timeout: float = 10.0) -> None:
        self._stub = pb_grpc.ConversationServiceStub(channel)
        self._staff = staff_pb2_grpc.StaffServiceStub(channel)
        self._timeout = timeout

    async def get_conversation(self, conversation_id: str) -> pb.Conversation:
        try:
            resp = await self._stub.GetConversation(
                pb.GetConversationRequest(conversation_id=conversation_id),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from exc
        return resp.conversation

    async def list_members(self, conversation_id: str) -> list[pb.Member]:
        try:
            resp = await self._stub.ListMembers(
                pb.ListMembersRequest(conversation_id=conversation_id), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from exc
        return list(resp.members)

    async def ticket_staff(self, ticket_id: str) -> list[staff_pb2.StaffMember]:
        """Who works the ticket: its team's agents, or every agent and admin."""
        try:
            resp = await self._staff.ListTicketStaff(
                staff_pb2.ListTicketStaffRequest(ticket_id=ticket_id), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from exc
        return list(resp.staff)
