from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from confab_core.identity import Caller
from gateway import sla_schemas
from gateway.clients import sla
from gateway.deps import CallerDep, ContextDep
from gateway.ratelimit import Action, RateLimiter
from gateway.routes.conversations import LIMITED, WRITE_ERRORS

router = APIRouter(prefix="/support", tags=["support"])


class SlaOps:
    """The SLA policy calls: rate limit, then the conversation service."""

    def __init__(self, client: sla.SlaClient, limiter: RateLimiter) -> None:
        self._client = client
        self._limiter = limiter

    async def get(self, caller: Caller) -> sla_schemas.SlaPolicyOut:
        await self._limiter.check(caller, Action.SLA_POLICY)
        return sla.policy_out((await self._client.get_policy(caller)).policy)

    async def put(self, caller: Caller, body: sla_schemas.SlaPolicyIn) -> sla_schemas.SlaPolicyOut:
        await self._limiter.check(caller, Action.SLA_POLICY)
        resp = await self._client.put_policy(caller, sla.put_request(body))
        return sla.policy_out(resp.policy)


def get_sla_ops(ctx: ContextDep) -> SlaOps:
    return SlaOps(ctx.backends.sla, ctx.ops.limiter)


SlaOpsDep = Annotated[SlaOps, Depends(get_sla_ops)]


@router.get("/sla", response_model=sla_schemas.SlaPolicyOut, responses={**WRITE_ERRORS, **LIMITED})
async def get_sla_policy(caller: CallerDep, ops: SlaOpsDep) -> sla_schemas.SlaPolicyOut:
    """The tenant's SLA policy (version 0 and no targets while none is set);
    tenant admins only (403 ``forbidden``)."""
    return await ops.get(caller)


@router.put("/sla", response_model=sla_schemas.SlaPolicyOut, responses={**WRITE_ERRORS, **LIMITED})
async def put_sla_policy(
    body: sla_schemas.SlaPolicyIn, caller: CallerDep, ops: SlaOpsDep
) -> sla_schemas.SlaPolicyOut:
    """Replaces the whole policy; tenant admins only. ``expected_version`` must be
    the version read (0 for none), else 409 ``version_conflict``. A bad field is
    422 with a stable code: ``invalid_timezone``, ``invalid_hours``,
    ``invalid_holiday``, ``invalid_target``, ``invalid_priority``,
    ``invalid_warning``, ``invalid_breach_action``. Applies to clocks started or
    changed from then on."""
    return await ops.put(caller, body)
