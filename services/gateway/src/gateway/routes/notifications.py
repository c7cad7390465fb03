from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from confab_core import limits
from gateway import schemas
from gateway.deps import CallerDep, OpsDep

router = APIRouter(prefix="/notifications", tags=["notifications"])


@router.get("", response_model=list[schemas.NotificationOut])
async def list_notifications(
    caller: CallerDep,
    ops: OpsDep,
    limit: Annotated[int, Query(ge=1, le=limits.MAX_PAGE)] = limits.DEFAULT_PAGE,
) -> list[schemas.NotificationOut]:
    return await ops.notifications(caller, limit)
