from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from confab_core import limits
from gateway import schemas
from gateway.deps import CallerDep, OpsDep
from gateway.routes.conversations import ERRORS, LIMITED

router = APIRouter(prefix="/search", tags=["search"])


@router.get("/messages", response_model=schemas.SearchOut, responses={**ERRORS, **LIMITED})
async def search_messages(
    caller: CallerDep,
    ops: OpsDep,
    q: Annotated[str, Query(min_length=1, max_length=limits.MAX_QUERY_CHARS)],
    conversation_id: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=limits.MAX_ID_CHARS,
            description="Search one conversation only",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=limits.MAX_PAGE)] = limits.DEFAULT_PAGE,
) -> schemas.SearchOut:
    """Messages the caller can read that match ``q``, newest first."""
    return await ops.search_messages(caller, q, conversation_id, limit)
