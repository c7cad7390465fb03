"""gRPC servicer of PlatformService (platform staff and escalated tickets): translation only."""

from __future__ import annotations

from confab.conversation.v1 import platform_pb2 as ppb
from confab.conversation.v1 import platform_pb2_grpc as ppb_grpc
from confab_core.grpcx import Ctx
from confab_core.identity import current_caller
from conversation import convert
from conversation.handlers.platform import PlatformHandler


class PlatformServicer(ppb_grpc.PlatformServiceServicer):
    def __init__(self, platform: PlatformHandler) -> None:
        self._p = platform

    async def ListEscalatedTickets(
        self, request: ppb.ListEscalatedTicketsRequest, context: Ctx
    ) -> ppb.ListEscalatedTicketsResponse:
        page = await self._p.list_tickets(
            current_caller(),
            include_closed=request.include_closed,
            page_token=request.page_token,
            limit=request.limit,
        )
        return ppb.ListEscalatedTicketsResponse(
            tickets=page.tickets, next_page_token=page.next_page_token
        )

    async def GetEscalatedTicket(
        self, request: ppb.GetEscalatedTicketRequest, context: Ctx
    ) -> ppb.GetEscalatedTicketResponse:
        ticket = await self._p.get(current_caller(), request.ticket_id)
        return ppb.GetEscalatedTicketResponse(ticket=ticket)

    async def ListEscalatedMessages(
        self, request: ppb.ListEscalatedMessagesRequest, context: Ctx
    ) -> ppb.ListEscalatedMessagesResponse:
        found = await self._p.messages(
            current_caller(),
            request.ticket_id,
            after_seq=request.after_seq,
            before_seq=request.before_seq,
            limit=request.limit,
        )
        return ppb.ListEscalatedMessagesResponse(
            messages=[convert.message(m) for m in found.page.messages],
            has_more=found.page.has_more,
            tenant_id=found.tenant_id,
            conversation_id=found.conversation_id,
        )

    async def ReplyToEscalatedTicket(
        self, request: ppb.ReplyToEscalatedTicketRequest, context: Ctx
    ) -> ppb.ReplyToEscalatedTicketResponse:
        sent = await self._p.reply(
            current_caller(), request.ticket_id, request.text, request.client_msg_id
        )
        return ppb.ReplyToEscalatedTicketResponse(
            message=convert.message(sent.message), created=sent.created
        )

    async def TransitionEscalatedTicket(
        self, request: ppb.TransitionEscalatedTicketRequest, context: Ctx
    ) -> ppb.TransitionEscalatedTicketResponse:
        ticket = await self._p.transition(
            current_caller(), request.ticket_id, request.action, request.note
        )
        return ppb.TransitionEscalatedTicketResponse(ticket=ticket)
