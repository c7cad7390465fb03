"""Auto-assignment of support tickets: the tenant's settings and its agents."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from confab_core import limits
from gateway import assignment_schemas as s
from gateway.clients.assignment import AssignmentOps
from gateway.deps import CallerDep, ContextDep
from gateway.routes.conversations import LIMITED, WRITE_ERRORS

router = APIRouter(prefix="/support", tags=["support"])


def get_assignment(ctx: ContextDep) -> AssignmentOps:
    return AssignmentOps(ctx.backends.assignment, ctx.ops.limiter)


AssignmentDep = Annotated[AssignmentOps, Depends(get_assignment)]
UserId = Annotated[str, Path(min_length=1, max_length=limits.MAX_ID_CHARS)]


@router.get(
    "/assignment",
    response_model=s.AssignmentSettingsOut,
    responses={**WRITE_ERRORS, **LIMITED},
)
async def get_assignment_settings(caller: CallerDep, ops: AssignmentDep) -> s.AssignmentSettingsOut:
    """The tenant's auto-assignment settings; agents and tenant admins
    (403 ``forbidden`` otherwise). Never changed: the defaults, version 0."""
    return await ops.get_settings(caller)


@router.put(
    "/assignment",
    response_model=s.AssignmentSettingsOut,
    responses={**WRITE_ERRORS, **LIMITED},
)
async def update_assignment_settings(
    body: s.AssignmentSettingsIn, caller: CallerDep, ops: AssignmentDep
) -> s.AssignmentSettingsOut:
    """Changes the fields present; tenant admins only. Out of bounds is 422; a
    stale ``expected_version`` is 409 ``version_conflict``. Audited."""
    return await ops.update_settings(caller, body)


@router.get("/agents", response_model=s.AgentListOut, responses={**WRITE_ERRORS, **LIMITED})
async def list_agents(caller: CallerDep, ops: AssignmentDep) -> s.AgentListOut:
    """The tenant's agents and admins known to the service, with presence,
    capacity and open tickets; agents and tenant admins."""
    return await ops.list_agents(caller)


@router.put(
    "/agents/{user_id}",
    response_model=s.AgentOut,
    responses={**WRITE_ERRORS, **LIMITED},
)
async def set_agent_capacity(
    user_id: UserId, body: s.AgentCapacityIn, caller: CallerDep, ops: AssignmentDep
) -> s.AgentOut:
    """Sets an agent's own capacity (null: back to the default); tenant admins
    only. An unknown user, or one who is not an agent, is 404 ``agent_not_found``.
    Audited."""
    return await ops.set_capacity(caller, user_id, body)
