"""The conversation service's AssignmentService as the gateway calls it, with the
rate limit of each call and the translation to the public JSON shapes."""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING, cast

from confab.conversation.v1 import assignment_pb2 as apb
from confab_core.identity import Caller
from gateway import assignment_schemas as s
from gateway.clients.peer import PeerClient
from gateway.ratelimit import Action, RateLimiter

if TYPE_CHECKING:
    from confab.conversation.v1.assignment_pb2_grpc import AssignmentServiceAsyncStub

_MODE_BY_NAME = {
    "round_robin": apb.ASSIGNMENT_MODE_ROUND_ROBIN,
    "least_busy": apb.ASSIGNMENT_MODE_LEAST_BUSY,
}
_MODE_NAME = {value: name for name, value in _MODE_BY_NAME.items()}


class AssignmentClient(PeerClient):
    def __init__(self, stub: AssignmentServiceAsyncStub, timeout: float) -> None:
        super().__init__(timeout)
        self._stub = stub

    async def get_settings(self, caller: Caller) -> apb.GetAssignmentSettingsResponse:
        return await self._call(
            self._stub.GetAssignmentSettings, apb.GetAssignmentSettingsRequest(), caller
        )

    async def update_settings(
        self, caller: Caller, request: apb.UpdateAssignmentSettingsRequest
    ) -> apb.UpdateAssignmentSettingsResponse:
        return await self._call(self._stub.UpdateAssignmentSettings, request, caller)

    async def list_agents(self, caller: Caller) -> apb.ListAgentsResponse:
        return await self._call(self._stub.ListAgents, apb.ListAgentsRequest(), caller)

    async def set_capacity(
        self, caller: Caller, request: apb.SetAgentCapacityRequest
    ) -> apb.SetAgentCapacityResponse:
        return await self._call(self._stub.SetAgentCapacity, request, caller)


def settings_out(p: apb.AssignmentSettings) -> s.AssignmentSettingsOut:
    return s.AssignmentSettingsOut(
        enabled=p.enabled,
        mode=cast(s.AssignmentModeName, _MODE_NAME.get(p.mode, "round_robin")),
        default_capacity=p.default_capacity,
        updated_at=p.updated_at.ToDatetime(tzinfo=UTC) if p.HasField("updated_at") else None,
        version=p.version,
    )


def agent_out(a: apb.Agent) -> s.AgentOut:
    return s.AgentOut(
        user_id=a.user_id,
        name=a.name,
        roles=list(a.roles),
        online=a.online,
        capacity=a.capacity,
        custom_capacity=a.custom_capacity,
        open_tickets=a.open_tickets,
        team_ids=list(a.team_ids),
        last_assigned_at=(
            a.last_assigned_at.ToDatetime(tzinfo=UTC) if a.HasField("last_assigned_at") else None
        ),
    )


class AssignmentOps:
    """Rate limit, then translation: the rules live in the conversation service."""

    def __init__(self, client: AssignmentClient, limiter: RateLimiter) -> None:
        self._c = client
        self._limiter = limiter

    async def get_settings(self, caller: Caller) -> s.AssignmentSettingsOut:
        await self._limiter.check(caller, Action.TICKET_READ)
        return settings_out((await self._c.get_settings(caller)).settings)

    async def update_settings(
        self, caller: Caller, body: s.AssignmentSettingsIn
    ) -> s.AssignmentSettingsOut:
        await self._limiter.check(caller, Action.SUPPORT_ADMIN)
        req = apb.UpdateAssignmentSettingsRequest()
        if body.enabled is not None:
            req.enabled = body.enabled
        if body.mode is not None:
            req.mode = _MODE_BY_NAME[body.mode]
        if body.default_capacity is not None:
            req.default_capacity = body.default_capacity
        if body.expected_version is not None:
            req.expected_version = body.expected_version
        return settings_out((await self._c.update_settings(caller, req)).settings)

    async def list_agents(self, caller: Caller) -> s.AgentListOut:
        await self._limiter.check(caller, Action.TICKET_READ)
        resp = await self._c.list_agents(caller)
        return s.AgentListOut(agents=[agent_out(a) for a in resp.agents])

    async def set_capacity(
        self, caller: Caller, user_id: str, body: s.AgentCapacityIn
    ) -> s.AgentOut:
        await self._limiter.check(caller, Action.SUPPORT_ADMIN)
        req = apb.SetAgentCapacityRequest(
            user_id=user_id, capacity=body.capacity or 0, clear=body.capacity is None
        )
        return agent_out((await self._c.set_capacity(caller, req)).agent)
