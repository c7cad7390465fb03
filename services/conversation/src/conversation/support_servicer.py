"""gRPC servicer for the support desk's tickets: translation only."""

from __future__ import annotations

from confab.conversation.v1 import support_pb2 as spb
from confab.conversation.v1 import support_pb2_grpc as spb_grpc
from confab_core.errors import InvalidArgument
from confab_core.grpcx import Ctx
from confab_core.identity import current_caller
from conversation.handlers import ticketflow
from conversation.handlers.support import SupportHandler


def _context(present: bool, link: object) -> tuple[str, str] | None:
    if not present:
        return None
    kind, ident = getattr(link, "kind", ""), getattr(link, "id", "")
    return (str(kind), str(ident))


class SupportServicer(spb_grpc.SupportServiceServicer):
    def __init__(self, support: SupportHandler) -> None:
        self._s = support

    async def OpenTicket(
        self, request: spb.OpenTicketRequest, context: Ctx
    ) -> spb.OpenTicketResponse:
        opened = await self._s.open(
            current_caller(),
            subject=request.subject,
            category=request.category,
            priority=request.priority,
            tags=list(request.tags),
            context=_context(request.HasField("context"), request.context),
            text=request.text,
            client_msg_id=request.client_msg_id,
            to_platform=request.to_platform,
        )
        return spb.OpenTicketResponse(ticket=opened.ticket, conversation=opened.conversation)

    async def TicketFromMessage(
        self, request: spb.TicketFromMessageRequest, context: Ctx
    ) -> spb.TicketFromMessageResponse:
        opened = await self._s.from_message(
            current_caller(),
            conversation_id=request.message.conversation_id,
            message_id=request.message.message_id,
            subject=request.subject,
            category=request.category,
            priority=request.priority,
        )
        return spb.TicketFromMessageResponse(ticket=opened.ticket, conversation=opened.conversation)

    async def GetTicket(self, request: spb.GetTicketRequest, context: Ctx) -> spb.GetTicketResponse:
        return spb.GetTicketResponse(ticket=await self._s.get(current_caller(), request.ticket_id))

    async def GetConversationTicket(
        self, request: spb.GetConversationTicketRequest, context: Ctx
    ) -> spb.GetConversationTicketResponse:
        ticket = await self._s.of_conversation(current_caller(), request.conversation_id)
        return spb.GetConversationTicketResponse(ticket=ticket)

    async def UpdateTicket(
        self, request: spb.UpdateTicketRequest, context: Ctx
    ) -> spb.UpdateTicketResponse:
        ticket = await self._s.update(
            current_caller(),
            request.ticket_id,
            subject=request.subject if request.HasField("subject") else None,
            category=request.category if request.HasField("category") else None,
            priority=request.priority,
            tags=list(request.tags) if request.set_tags else None,
            context=_context(request.HasField("context"), request.context),
            expected_version=request.expected_version,
        )
        return spb.UpdateTicketResponse(ticket=ticket)

    async def TransitionTicket(
        self, request: spb.TransitionTicketRequest, context: Ctx
    ) -> spb.TransitionTicketResponse:
        action = ticketflow.BY_PROTO.get(request.action)
        if action is None:
            raise InvalidArgument("unknown ticket action", "invalid_action")
        ticket = await self._s.transition(
            current_caller(),
            request.ticket_id,
            action,
            request.note,
            handoff_reason=request.handoff_reason,
            handoff_summary=request.handoff_summary,
        )
        return spb.TransitionTicketResponse(ticket=ticket)

    async def ListTicketQueue(
        self, request: spb.ListTicketQueueRequest, context: Ctx
    ) -> spb.ListTicketQueueResponse:
        page = await self._s.queue(
            current_caller(),
            team_id=request.team_id,
            category=request.category,
            priority=request.priority,
            statuses=list(request.statuses),
            assignee=request.assignee,
            page_token=request.page_token,
            limit=request.limit,
        )
        return spb.ListTicketQueueResponse(
            tickets=page.tickets, next_page_token=page.next_page_token
        )

    async def ListMyTickets(
        self, request: spb.ListMyTicketsRequest, context: Ctx
    ) -> spb.ListMyTicketsResponse:
        page = await self._s.mine(
            current_caller(), page_token=request.page_token, limit=request.limit
        )
        return spb.ListMyTicketsResponse(tickets=page.tickets, next_page_token=page.next_page_token)

    async def ClaimTicket(
        self, request: spb.ClaimTicketRequest, context: Ctx
    ) -> spb.ClaimTicketResponse:
        return spb.ClaimTicketResponse(
            ticket=await self._s.claim(current_caller(), request.ticket_id)
        )

    async def AssignTicket(
        self, request: spb.AssignTicketRequest, context: Ctx
    ) -> spb.AssignTicketResponse:
        ticket = await self._s.assign(
            current_caller(), request.ticket_id, request.assignee_id, request.team_id
        )
        return spb.AssignTicketResponse(ticket=ticket)

    async def EscalateTicket(
        self, request: spb.EscalateTicketRequest, context: Ctx
    ) -> spb.EscalateTicketResponse:
        ticket = await self._s.escalate(current_caller(), request.ticket_id, request.reason)
        return spb.EscalateTicketResponse(ticket=ticket)
