"""gRPC servicer for the support desk's categories and teams: translation only."""

from __future__ import annotations

from confab.conversation.v1 import support_admin_pb2 as apb
from confab.conversation.v1 import support_admin_pb2_grpc as apb_grpc
from confab_core.grpcx import Ctx
from confab_core.identity import current_caller
from conversation.convert import ts
from conversation.handlers.support_admin import SupportAdminHandler
from conversation.storage.tickets import Team


def team(t: Team) -> apb.SupportTeam:
    return apb.SupportTeam(
        id=t.id,
        name=t.name,
        agent_ids=t.agent_ids,
        created_at=ts(t.created_at),
        updated_at=ts(t.updated_at),
    )


class SupportAdminServicer(apb_grpc.SupportAdminServiceServicer):
    def __init__(self, admin: SupportAdminHandler) -> None:
        self._a = admin

    async def ListCategories(
        self, request: apb.ListCategoriesRequest, context: Ctx
    ) -> apb.ListCategoriesResponse:
        return apb.ListCategoriesResponse(categories=await self._a.categories(current_caller()))

    async def PutCategories(
        self, request: apb.PutCategoriesRequest, context: Ctx
    ) -> apb.PutCategoriesResponse:
        stored = await self._a.put_categories(current_caller(), list(request.categories))
        return apb.PutCategoriesResponse(categories=stored)

    async def ListTeams(self, request: apb.ListTeamsRequest, context: Ctx) -> apb.ListTeamsResponse:
        return apb.ListTeamsResponse(teams=[team(t) for t in await self._a.teams(current_caller())])

    async def CreateTeam(
        self, request: apb.CreateTeamRequest, context: Ctx
    ) -> apb.CreateTeamResponse:
        created = await self._a.create_team(current_caller(), request.name, list(request.agent_ids))
        return apb.CreateTeamResponse(team=team(created))

    async def UpdateTeam(
        self, request: apb.UpdateTeamRequest, context: Ctx
    ) -> apb.UpdateTeamResponse:
        updated = await self._a.update_team(
            current_caller(), request.team_id, request.name, list(request.agent_ids)
        )
        return apb.UpdateTeamResponse(team=team(updated))

    async def DeleteTeam(
        self, request: apb.DeleteTeamRequest, context: Ctx
    ) -> apb.DeleteTeamResponse:
        await self._a.delete_team(current_caller(), request.team_id)
        return apb.DeleteTeamResponse()
