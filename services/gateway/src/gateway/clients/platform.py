"""The conversation service's PlatformService, as the gateway calls it, and the
platform routes' translation (platform staff only; the service checks)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from confab.conversation.v1 import platform_pb2 as ppb
from confab.conversation.v1 import support_pb2 as spb
from confab_core.identity import Caller
from gateway import convert, schemas, ticketconvert
from gateway import platform_schemas as ps
from gateway import support_schemas as ss
from gateway.clients.jobops import JobOps
from gateway.clients.peer import PeerClient
from gateway.clients.ticketops import ACTION_BY_NAME
from gateway.ratelimit import Action, RateLimiter

if TYPE_CHECKING:
    from confab.conversation.v1.platform_pb2_grpc import PlatformServiceAsyncStub


def escalated(t: spb.Ticket) -> ps.EscalatedTicketOut:
    return ps.EscalatedTicketOut(**ticketconvert.ticket(t).model_dump(), tenant_id=t.tenant_id)


class PlatformClient(PeerClient):
    def __init__(self, stub: PlatformServiceAsyncStub, timeout: float) -> None:
        super().__init__(timeout)
        self._stub = stub

    async def list_tickets(
        self, caller: Caller, request: ppb.ListEscalatedTicketsRequest
    ) -> ppb.ListEscalatedTicketsResponse:
        return await self._call(self._stub.ListEscalatedTickets, request, caller)

    async def get_ticket(
        self, caller: Caller, request: ppb.GetEscalatedTicketRequest
    ) -> ppb.GetEscalatedTicketResponse:
        return await self._call(self._stub.GetEscalatedTicket, request, caller)

    async def list_messages(
        self, caller: Caller, request: ppb.ListEscalatedMessagesRequest
    ) -> ppb.ListEscalatedMessagesResponse:
        return await self._call(self._stub.ListEscalatedMessages, request, caller)

    async def reply(
        self, caller: Caller, request: ppb.ReplyToEscalatedTicketRequest
    ) -> ppb.ReplyToEscalatedTicketResponse:
        return await self._call(self._stub.ReplyToEscalatedTicket, request, caller)

    async def transition(
        self, caller: Caller, request: ppb.TransitionEscalatedTicketRequest
    ) -> ppb.TransitionEscalatedTicketResponse:
        return await self._call(self._stub.TransitionEscalatedTicket, request, caller)


class PlatformOps:
    def __init__(self, platform: PlatformClient, jobs: JobOps, limiter: RateLimiter) -> None:
        self._p = platform
        self._limiter = limiter
        self.jobs = jobs

    async def list_tickets(
        self, caller: Caller, include_closed: bool, cursor: str, limit: int
    ) -> ps.EscalatedTicketPageOut:
        await self._limiter.check(caller, Action.PLATFORM_READ)
        req = ppb.ListEscalatedTicketsRequest(
            include_closed=include_closed, page_token=cursor, limit=limit
        )
        resp = await self._p.list_tickets(caller, req)
        return ps.EscalatedTicketPageOut(
            tickets=[escalated(t) for t in resp.tickets],
            next_cursor=resp.next_page_token or None,
        )

    async def get_ticket(self, caller: Caller, ticket_id: str) -> ps.EscalatedTicketEnvelopeOut:
        await self._limiter.check(caller, Action.PLATFORM_READ)
        resp = await self._p.get_ticket(caller, ppb.GetEscalatedTicketRequest(ticket_id=ticket_id))
        return ps.EscalatedTicketEnvelopeOut(ticket=escalated(resp.ticket))

    async def list_messages(
        self, caller: Caller, ticket_id: str, after_seq: int, before_seq: int, limit: int
    ) -> ps.EscalatedMessagesOut:
        await self._limiter.check(caller, Action.PLATFORM_READ)
        req = ppb.ListEscalatedMessagesRequest(
            ticket_id=ticket_id, after_seq=after_seq, before_seq=before_seq, limit=limit
        )
        resp = await self._p.list_messages(caller, req)
        return ps.EscalatedMessagesOut(
            tenant_id=resp.tenant_id,
            conversation_id=resp.conversation_id,
            messages=[convert.message(m) for m in resp.messages],
            has_more=resp.has_more,
        )

    async def reply(
        self, caller: Caller, ticket_id: str, body: ps.PlatformReplyIn
    ) -> schemas.SendMessageOut:
        await self._limiter.check(caller, Action.PLATFORM_WRITE)
        req = ppb.ReplyToEscalatedTicketRequest(
            ticket_id=ticket_id, text=body.text, client_msg_id=body.client_msg_id
        )
        resp = await self._p.reply(caller, req)
        return schemas.SendMessageOut(message=convert.message(resp.message), created=resp.created)

    async def transition(
        self, caller: Caller, ticket_id: str, body: ss.TransitionIn
    ) -> ps.EscalatedTicketEnvelopeOut:
        await self._limiter.check(caller, Action.PLATFORM_WRITE)
        req = ppb.TransitionEscalatedTicketRequest(
            ticket_id=ticket_id, action=ACTION_BY_NAME[body.action], note=body.note
        )
        resp = await self._p.transition(caller, req)
        return ps.EscalatedTicketEnvelopeOut(ticket=escalated(resp.ticket))
