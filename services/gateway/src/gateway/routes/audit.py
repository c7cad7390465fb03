"""The tenant's audit log, for tenant admins: query and verify."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from confab_core import limits
from gateway import governance_schemas as gs
from gateway import schemas
from gateway.clients.governance_ops import GovernanceOps
from gateway.deps import CallerDep, ContextDep

router = APIRouter(prefix="/audit", tags=["audit"])

READ_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": schemas.ErrorOut},
    403: {"model": schemas.ErrorOut},
    422: {"model": schemas.ErrorOut},
    429: {"model": schemas.ErrorOut},
}
Filter = Annotated[str, Query(max_length=limits.MAX_ID_CHARS)]


def get_governance(ctx: ContextDep) -> GovernanceOps:
    return GovernanceOps(ctx.backends.audit, ctx.backends.moderation, ctx.ops.limiter)


GovernanceDep = Annotated[GovernanceOps, Depends(get_governance)]


@router.get("", response_model=gs.AuditPageOut, responses=READ_ERRORS)
async def list_audit_records(
    caller: CallerDep,
    ops: GovernanceDep,
    actor: Filter = "",
    action: Annotated[str, Query(max_length=64)] = "",
    target_kind: Annotated[str, Query(max_length=64)] = "",
    target_id: Filter = "",
    since: Annotated[datetime | None, Query(alias="from")] = None,
    until: Annotated[datetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=limits.MAX_PAGE)] = limits.DEFAULT_PAGE,
    cursor: Annotated[str, Query(max_length=32)] = "",
) -> gs.AuditPageOut:
    """Newest first. ``from`` is inclusive, ``to`` exclusive; ``next_cursor``
    fetches the following (older) page. Tenant admins only."""
    return await ops.audit_records(
        caller,
        actor=actor,
        action=action,
        target_kind=target_kind,
        target_id=target_id,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )


@router.get("/verify", response_model=gs.AuditVerifyOut, responses=READ_ERRORS)
async def verify_audit(caller: CallerDep, ops: GovernanceDep) -> gs.AuditVerifyOut:
    """Recomputes the tenant's hash chain; ``broken`` names its first broken link."""
    return await ops.verify_audit(caller)
