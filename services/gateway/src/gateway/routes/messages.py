from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from confab_core import limits
from gateway import schemas
from gateway.deps import CallerDep, OpsDep
from gateway.routes.conversations import ERRORS, LIMITED, WRITE_ERRORS, ConversationId

router = APIRouter(prefix="/conversations/{conversation_id}/messages", tags=["messages"])

MessageId = Annotated[str, Path(min_length=1, max_length=limits.MAX_ID_CHARS)]


@router.post(
    "",
    response_model=schemas.SendMessageOut,
    status_code=status.HTTP_201_CREATED,
    responses={**WRITE_ERRORS, **LIMITED},
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
    after_seq: Annotated[
        int, Query(ge=0, le=limits.MAX_INT64, description="Oldest first, seq > after_seq")
    ] = 0,
    before_seq: Annotated[
        int, Query(ge=0, le=limits.MAX_INT64, description="Newest first, seq < before_seq")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=limits.MAX_PAGE)] = limits.DEFAULT_PAGE,
) -> schemas.MessagePage:
    return await ops.list_messages(caller, conversation_id, after_seq, before_seq, limit)


@router.patch(
    "/{message_id}",
    response_model=schemas.MessageOut,
    responses={**WRITE_ERRORS, **LIMITED},
)
async def edit_message(
    conversation_id: ConversationId,
    message_id: MessageId,
    body: schemas.EditMessageIn,
    caller: CallerDep,
    ops: OpsDep,
) -> schemas.MessageOut:
    """Replaces the text of the caller's own message; sets ``edited_at``."""
    return await ops.edit_message(caller, conversation_id, message_id, body.text)


@router.delete("/{message_id}", response_model=schemas.MessageOut, responses=WRITE_ERRORS)
async def delete_message(
    conversation_id: ConversationId, message_id: MessageId, caller: CallerDep, ops: OpsDep
) -> schemas.MessageOut:
    """Leaves a tombstone (``deleted: true``, text, file and reactions cleared, seq kept)."""
    return await ops.delete_message(caller, conversation_id, message_id)


@router.get("/{message_id}/thread", response_model=schemas.ThreadPage, responses=ERRORS)
async def list_thread(
    conversation_id: ConversationId,
    message_id: MessageId,
    caller: CallerDep,
    ops: OpsDep,
    after_seq: Annotated[
        int, Query(ge=0, le=limits.MAX_INT64, description="Replies with seq > after_seq")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=limits.MAX_PAGE)] = limits.DEFAULT_PAGE,
) -> schemas.ThreadPage:
    """The thread's root and its replies, oldest first."""
    return await ops.list_thread(caller, conversation_id, message_id, after_seq, limit)
