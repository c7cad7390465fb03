from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from gateway import schemas
from gateway.deps import CallerDep, OpsDep

router = APIRouter(prefix="/conversations", tags=["conversations"])

ConversationId = Annotated[str, Path(min_length=1, max_length=schemas.MAX_ID_CHARS)]
ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": schemas.ErrorOut},
    404: {"model": schemas.ErrorOut},
    422: {"model": schemas.ErrorOut},
}


@router.post(
    "",
    response_model=schemas.CreateConversationOut,
    status_code=status.HTTP_201_CREATED,
    responses=ERRORS,
)
async def create_conversation(
    body: schemas.CreateConversationIn, caller: CallerDep, ops: OpsDep, response: Response
) -> schemas.CreateConversationOut:
    result = await ops.create_conversation(caller, body)
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return result


@router.get("", response_model=list[schemas.ConversationOut], responses=ERRORS)
async def list_conversations(
    caller: CallerDep, ops: OpsDep, limit: Annotated[int, Query(ge=1, le=100)] = 50
) -> list[schemas.ConversationOut]:
    return await ops.list_conversations(caller, limit)


@router.get("/{conversation_id}", response_model=schemas.ConversationOut, responses=ERRORS)
async def get_conversation(
    conversation_id: ConversationId, caller: CallerDep, ops: OpsDep
) -> schemas.ConversationOut:
    return await ops.get_conversation(caller, conversation_id)


@router.get("/{conversation_id}/members", response_model=list[schemas.MemberOut], responses=ERRORS)
async def list_members(
    conversation_id: ConversationId, caller: CallerDep, ops: OpsDep
) -> list[schemas.MemberOut]:
    return await ops.list_members(caller, conversation_id)


@router.post("/{conversation_id}/read", response_model=schemas.ReadStateOut, responses=ERRORS)
async def mark_read(
    conversation_id: ConversationId, body: schemas.MarkReadIn, caller: CallerDep, ops: OpsDep
) -> schemas.ReadStateOut:
    return await ops.mark_read(caller, conversation_id, body.seq)


@router.post("/{conversation_id}/summary", response_model=schemas.SummaryOut, responses=ERRORS)
async def summarize(
    conversation_id: ConversationId, caller: CallerDep, ops: OpsDep
) -> schemas.SummaryOut:
    return await ops.summarize(caller, conversation_id)
