"""The conversation service's support desk RPCs, as the gateway calls them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from confab.conversation.v1 import support_admin_pb2 as apb
from confab.conversation.v1 import support_pb2 as spb
from confab_core.identity import Caller
from gateway.clients.peer import PeerClient

if TYPE_CHECKING:
    from confab.conversation.v1.support_admin_pb2_grpc import SupportAdminServiceAsyncStub
    from confab.conversation.v1.support_pb2_grpc import SupportServiceAsyncStub


class SupportClient(PeerClient):
    def __init__(self, stub: SupportServiceAsyncStub, timeout: float) -> None:
        super().__init__(timeout)
        self._stub = stub

    async def open_ticket(
        self, caller: Caller, request: spb.OpenTicketRequest
    ) -> spb.OpenTicketResponse:
        return await self._call(self._stub.OpenTicket, request, caller)

    async def ticket_from_message(
        self, caller: Caller, request: spb.TicketFromMessageRequest
    ) -> spb.TicketFromMessageResponse:
        return await self._call(self._stub.TicketFromMessage, request, caller)

    async def get_ticket(
        self, caller: Caller, request: spb.GetTicketRequest
    ) -> spb.GetTicketResponse:
        return await self._call(self._stub.GetTicket, request, caller)

    async def get_conversation_ticket(
        self, caller: Caller, request: spb.GetConversationTicketRequest
    ) -> spb.GetConversationTicketResponse:
        return await self._call(self._stub.GetConversationTicket, request, caller)

    async def update_ticket(
        self, caller: Caller, request: spb.UpdateTicketRequest
    ) -> spb.UpdateTicketResponse:
        return await self._call(self._stub.UpdateTicket, request, caller)

    async def transition_ticket(
        self, caller: Caller, request: spb.TransitionTicketRequest
    ) -> spb.TransitionTicketResponse:
        return await self._call(self._stub.TransitionTicket, request, caller)

    async def list_ticket_queue(
        self, caller: Caller, request: spb.ListTicketQueueRequest
    ) -> spb.ListTicketQueueResponse:
        return await self._call(self._stub.ListTicketQueue, request, caller)

    async def list_my_tickets(
        self, caller: Caller, request: spb.ListMyTicketsRequest
    ) -> spb.ListMyTicketsResponse:
        return await self._call(self._stub.ListMyTickets, request, caller)

    async def claim_ticket(
        self, caller: Caller, request: spb.ClaimTicketRequest
    ) -> spb.ClaimTicketResponse:
        return await self._call(self._stub.ClaimTicket, request, caller)

    async def assign_ticket(
        self, caller: Caller, request: spb.AssignTicketRequest
    ) -> spb.AssignTicketResponse:
        return await self._call(self._stub.AssignTicket, request, caller)

    async def escalate_ticket(
        self, caller: Caller, request: spb.EscalateTicketRequest
    ) -> spb.EscalateTicketResponse:
        return await self._call(self._stub.EscalateTicket, request, caller)


class SupportAdminClient(PeerClient):
    def __init__(self, stub: SupportAdminServiceAsyncStub, timeout: float) -> None:
        super().__init__(timeout)
        self._stub = stub

    async def list_categories(self, caller: Caller) -> apb.ListCategoriesResponse:
        return await self._call(self._stub.ListCategories, apb.ListCategoriesRequest(), caller)

    async def put_categories(
        self, caller: Caller, request: apb.PutCategoriesRequest
    ) -> apb.PutCategoriesResponse:
        return await self._call(self._stub.PutCategories, request, caller)

    async def list_teams(self, caller: Caller) -> apb.ListTeamsResponse:
        return await self._call(self._stub.ListTeams, apb.ListTeamsRequest(), caller)

    async def create_team(
        self, caller: Caller, request: apb.CreateTeamRequest
    ) -> apb.CreateTeamResponse:
        return await self._call(self._stub.CreateTeam, request, caller)

    async def update_team(
        self, caller: Caller, request: apb.UpdateTeamRequest
    ) -> apb.UpdateTeamResponse:
        return await self._call(self._stub.UpdateTeam, request, caller)

    async def delete_team(
        self, caller: Caller, request: apb.DeleteTeamRequest
    ) -> apb.DeleteTeamResponse:
        return await self._call(self._stub.DeleteTeam, request, caller)
