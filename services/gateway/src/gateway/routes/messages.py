from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from gateway import schemas
from gateway.deps import CallerDep, OpsDep
from gateway.routes.conversations import ERRORS, ConversationId

router = APIRouter(prefix="/conversations/{conversation_id}/messages", tags=["messages"])


@router.post(
    "",
    response_model=schemas.SendMessageOut,
    status_code=status.HTTP_201_CREATED,
    responses={**ERRORS, 403: {"model": schemas.ErrorOut}, 429: {"model": schemas.ErrorOut}},
)
async def send_message(
    conversation_id: ConversationId,
    body: schemas.SendMessageIn,
    caller: CallerDep,
    ops: OpsDep,
    response: Response,
) -> schemas.SendMessageOut:
    result = await ops.send_message(caller, conversation_id, body)
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return result


@router.get("", response_model=schemas.MessagePage, responses=ERRORS)
async def list_messages(
    conversation_id: ConversationId,
    caller: CallerDep,
    ops: OpsDep,
    after_seq: Annotated[int, Query(ge=0, description="Oldest first, seq > after_seq")] = 0,
    before_seq: Annotated[int, Query(ge=0, description="Newest first, seq < before_seq")] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> schemas.MessagePage:
    return await ops.list_messages(caller, conversation_id, after_seq, before_seq, limit)
