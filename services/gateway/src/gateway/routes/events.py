from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from confab_core import limits
from gateway import schemas
from gateway.deps import CallerDep, OpsDep
from gateway.routes.conversations import ERRORS, ConversationId

router = APIRouter(prefix="/conversations/{conversation_id}/events", tags=["events"])


@router.get("", response_model=schemas.EventPage, responses=ERRORS)
async def list_events(
    conversation_id: ConversationId,
    caller: CallerDep,
    ops: OpsDep,
    after_event_seq: Annotated[
        int, Query(ge=0, le=limits.MAX_INT64, description="Events with event_seq > this")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=limits.MAX_PAGE)] = limits.DEFAULT_PAGE,
) -> schemas.EventPage:
    """The conversation's events in event_seq order, each as the socket delivers it."""
    return await ops.list_events(caller, conversation_id, after_event_seq, limit)
