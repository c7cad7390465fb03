from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from confab_core import limits
from gateway import schemas
from gateway.deps import CallerDep, OpsDep
from gateway.routes.conversations import ERRORS

router = APIRouter(prefix="/channels", tags=["channels"])


@router.get("", response_model=list[schemas.ConversationOut], responses=ERRORS)
async def browse_channels(
    caller: CallerDep,
    ops: OpsDep,
    query: Annotated[
        str,
        Query(
            max_length=limits.MAX_QUERY_CHARS,
            description="Case-insensitive match on the title; empty lists all",
        ),
    ] = "",
    limit: Annotated[int, Query(ge=1, le=limits.MAX_PAGE)] = limits.DEFAULT_PAGE,
) -> list[schemas.ConversationOut]:
    """Public channels of the caller's tenant, joined or not."""
    return await ops.browse_channels(caller, query, limit)
