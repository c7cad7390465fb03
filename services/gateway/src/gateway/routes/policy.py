from __future__ import annotations

from fastapi import APIRouter

from gateway import schemas
from gateway.deps import CallerDep, OpsDep
from gateway.routes.conversations import LIMITED, WRITE_ERRORS

router = APIRouter(prefix="/tenant", tags=["tenant"])


@router.get("/policy", response_model=schemas.PolicyOut, responses={**WRITE_ERRORS, **LIMITED})
async def get_policy(caller: CallerDep, ops: OpsDep) -> schemas.PolicyOut:
    """The caller's tenant's compliance policy; tenant admins only (403 ``forbidden``)."""
    return await ops.get_policy(caller)


@router.patch("/policy", response_model=schemas.PolicyOut, responses={**WRITE_ERRORS, **LIMITED})
async def update_policy(
    body: schemas.PolicyPatchIn, caller: CallerDep, ops: OpsDep
) -> schemas.PolicyOut:
    """Changes the fields present; tenant admins only. A value out of bounds is 422
    ``invalid_policy`` naming the field; a stale ``expected_version`` is 409
    ``version_conflict``. Takes effect within seconds on every replica."""
    return await ops.update_policy(caller, body)
