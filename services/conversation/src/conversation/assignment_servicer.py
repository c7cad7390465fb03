"""gRPC servicer of AssignmentService: translation only."""

from __future__ import annotations

from confab.conversation.v1 import assignment_pb2 as pb
from confab.conversation.v1 import assignment_pb2_grpc as pb_grpc
from confab_core.grpcx import Ctx
from confab_core.identity import current_caller
from conversation.convert import ts
from conversation.handlers.assignment import AgentView, AssignmentHandler, SettingsPatch
from conversation.handlers.autoassign import LEAST_BUSY, ROUND_ROBIN
from conversation.storage.assignment import AssignmentSettings

_MODES = {pb.ASSIGNMENT_MODE_ROUND_ROBIN: ROUND_ROBIN, pb.ASSIGNMENT_MODE_LEAST_BUSY: LEAST_BUSY}
_MODE_VALUES = {name: value for value, name in _MODES.items()}


def settings_message(s: AssignmentSettings) -> pb.AssignmentSettings:
    return pb.AssignmentSettings(
        enabled=s.enabled,
        mode=_MODE_VALUES[s.mode],
        default_capacity=s.default_capacity,
        updated_at=ts(s.updated_at),
        version=s.version,
    )


def agent_message(a: AgentView) -> pb.Agent:
    return pb.Agent(
        user_id=a.user_id,
        name=a.name,
        online=a.online,
        capacity=a.capacity,
        custom_capacity=a.custom_capacity,
        open_tickets=a.open_tickets,
        team_ids=sorted(a.teams),
        roles=list(a.roles),
        last_assigned_at=ts(a.last_assigned_at),
    )


class AssignmentServicer(pb_grpc.AssignmentServiceServicer):
    def __init__(self, handler: AssignmentHandler) -> None:
        self._h = handler

    async def GetAssignmentSettings(
        self, request: pb.GetAssignmentSettingsRequest, context: Ctx
    ) -> pb.GetAssignmentSettingsResponse:
        settings = await self._h.settings(current_caller())
        return pb.GetAssignmentSettingsResponse(settings=settings_message(settings))

    async def UpdateAssignmentSettings(
        self, request: pb.UpdateAssignmentSettingsRequest, context: Ctx
    ) -> pb.UpdateAssignmentSettingsResponse:
        # An unknown or unspecified mode becomes "", which validation names.
        patch = SettingsPatch(
            enabled=request.enabled if request.HasField("enabled") else None,
            mode=_MODES.get(request.mode, "") if request.HasField("mode") else None,
            default_capacity=(
                request.default_capacity if request.HasField("default_capacity") else None
            ),
            expected_version=(
                request.expected_version if request.HasField("expected_version") else None
            ),
        )
        updated = await self._h.update(current_caller(), patch)
        return pb.UpdateAssignmentSettingsResponse(settings=settings_message(updated))

    async def ListAgents(
        self, request: pb.ListAgentsRequest, context: Ctx
    ) -> pb.ListAgentsResponse:
        agents = await self._h.agents(current_caller())
        return pb.ListAgentsResponse(agents=[agent_message(a) for a in agents])

    async def SetAgentCapacity(
        self, request: pb.SetAgentCapacityRequest, context: Ctx
    ) -> pb.SetAgentCapacityResponse:
        agent = await self._h.set_capacity(
            current_caller(), request.user_id, None if request.clear else request.capacity
        )
        return pb.SetAgentCapacityResponse(agent=agent_message(agent))
