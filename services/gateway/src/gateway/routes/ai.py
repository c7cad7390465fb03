"""The tenant's model usage against its monthly AI quota."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from gateway import ai_schemas as s
from gateway import schemas
from gateway.clients.botdata import AiOps
from gateway.deps import CallerDep, ContextDep

router = APIRouter(prefix="/ai", tags=["ai"])

ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": schemas.ErrorOut},
    403: {"model": schemas.ErrorOut},
    422: {"model": schemas.ErrorOut},
    429: {"model": schemas.ErrorOut},
}


def get_ai(ctx: ContextDep) -> AiOps:
    return AiOps(ctx.backends.bot_data, ctx.ops.limiter)


AiDep = Annotated[AiOps, Depends(get_ai)]


@router.get("/usage", response_model=s.UsageOut, responses=ERRORS)
async def usage(
    caller: CallerDep,
    ops: AiDep,
    month: Annotated[
        str, Query(max_length=16, description="YYYY-MM (UTC); the current month when left out")
    ] = "",
) -> s.UsageOut:
    """Tokens in and out of the tenant's bot agents in a month, per agent, and
    the monthly quota (``over_quota`` once used tokens reach it). Tenant admins
    only (403 ``forbidden``); a month not YYYY-MM is 422 ``invalid_month``."""
    return await ops.usage(caller, month)
