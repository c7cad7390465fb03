"""The support desk's tickets, as the bot uses them."""

from __future__ import annotations

import grpc

from confab.conversation.v1 import support_pb2 as pb
from confab.conversation.v1 import support_pb2_grpc as pb_grpc
from confab_core.grpcx.client import translate


class SupportClient:
    """Acts as the current caller (the serving agent's bot user)."""

    def __init__(self, channel: grpc.aio.Channel, timeout: float = 10.0) -> None:
        self._stub = pb_grpc.SupportServiceStub(channel)
        self._timeout = timeout

    async def conversation_ticket(self, conversation_id: str) -> pb.Ticket:
        try:
            resp = await self._stub.GetConversationTicket(
                pb.GetConversationTicketRequest(conversation_id=conversation_id),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from exc
        return resp.ticket

    async def hand_off(
        self, ticket_id: str, reason: pb.HandoffReason.ValueType, summary: str
    ) -> pb.Ticket:
        try:
            resp = await self._stub.TransitionTicket(
                pb.TransitionTicketRequest(
                    ticket_id=ticket_id,
                    action=pb.TICKET_ACTION_HANDOFF,
                    handoff_reason=reason,
                    handoff_summary=summary,
                ),
                timeout=self._timeout,
            )
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from exc
        return resp.ticket
