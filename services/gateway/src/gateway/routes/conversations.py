from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from confab_core import limits
from gateway import schemas
from gateway.deps import CallerDep, OpsDep

router = APIRouter(prefix="/conversations", tags=["conversations"])

ConversationId = Annotated[str, Path(min_length=1, max_length=limits.MAX_ID_CHARS)]
ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": schemas.ErrorOut},
    404: {"model": schemas.ErrorOut},
    422: {"model": schemas.ErrorOut},
}
# Writes that the permission matrix can refuse (403) or that meet an archived
# conversation or a conflicting state (409).
WRITE_ERRORS: dict[int | str, dict[str, object]] = {
    **ERRORS,
    403: {"model": schemas.ErrorOut},
    409: {"model": schemas.ErrorOut},
}
# Calls under a rate limit (gateway.ratelimit): 429 with a Retry-After header.
LIMITED: dict[int | str, dict[str, object]] = {429: {"model": schemas.ErrorOut}}


@router.post(
    "",
    response_model=schemas.CreateConversationOut,
    status_code=status.HTTP_201_CREATED,
    responses={**WRITE_ERRORS, **LIMITED},
)
async def create_conversation(
    body: schemas.CreateConversationIn, caller: CallerDep, ops: OpsDep, response: Response
) -> schemas.CreateConversationOut:
    result = await ops.create_conversation(caller, body)
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return result


@router.get("", response_model=schemas.ConversationPageOut, responses=ERRORS)
async def list_conversations(
    caller: CallerDep,
    ops: OpsDep,
    limit: Annotated[int, Query(ge=1, le=limits.MAX_PAGE)] = limits.DEFAULT_PAGE,
    cursor: Annotated[str, Query(max_length=1024)] = "",
) -> schemas.ConversationPageOut:
    """Most recent activity first; ``next_cursor`` fetches the following page."""
    return await ops.list_conversations(caller, limit, cursor)


@router.get("/{conversation_id}", response_model=schemas.ConversationOut, responses=ERRORS)
async def get_conversation(
    conversation_id: ConversationId, caller: CallerDep, ops: OpsDep
) -> schemas.ConversationOut:
    return await ops.get_conversation(caller, conversation_id)


@router.patch("/{conversation_id}", response_model=schemas.ConversationOut, responses=WRITE_ERRORS)
async def update_conversation(
    conversation_id: ConversationId,
    body: schemas.UpdateConversationIn,
    caller: CallerDep,
    ops: OpsDep,
) -> schemas.ConversationOut:
    """Changes title, description or topic; fields left out keep their value."""
    return await ops.update_conversation(caller, conversation_id, body)


@router.delete(
    "/{conversation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=WRITE_ERRORS,
)
async def delete_conversation(
    conversation_id: ConversationId, caller: CallerDep, ops: OpsDep
) -> None:
    """Tenant admins only; the conversation is gone for everyone afterwards."""
    await ops.delete_conversation(caller, conversation_id)


@router.post(
    "/{conversation_id}/archive", response_model=schemas.ConversationOut, responses=WRITE_ERRORS
)
async def archive_conversation(
    conversation_id: ConversationId, caller: CallerDep, ops: OpsDep
) -> schemas.ConversationOut:
    """Makes the conversation read-only for everyone."""
    return await ops.archive_conversation(caller, conversation_id)


@router.post(
    "/{conversation_id}/join", response_model=schemas.ConversationOut, responses=WRITE_ERRORS
)
async def join_conversation(
    conversation_id: ConversationId, caller: CallerDep, ops: OpsDep
) -> schemas.ConversationOut:
    """Joins a channel (public ones for everyone; any channel for tenant admins)."""
    return await ops.join_conversation(caller, conversation_id)


@router.post(
    "/{conversation_id}/leave",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=WRITE_ERRORS,
)
async def leave_conversation(
    conversation_id: ConversationId, caller: CallerDep, ops: OpsDep
) -> None:
    await ops.leave_conversation(caller, conversation_id)


@router.post("/{conversation_id}/read", response_model=schemas.ReadStateOut, responses=ERRORS)
async def mark_read(
    conversation_id: ConversationId, body: schemas.MarkReadIn, caller: CallerDep, ops: OpsDep
) -> schemas.ReadStateOut:
    return await ops.mark_read(caller, conversation_id, body.seq)


@router.get(
    "/{conversation_id}/summary", response_model=schemas.SummaryOut, responses={**ERRORS, **LIMITED}
)
@router.post(
    "/{conversation_id}/summary",
    response_model=schemas.SummaryOut,
    responses={**ERRORS, **LIMITED},
    description="The same as GET (kept for clients of the first API).",
)
async def summarize(
    conversation_id: ConversationId, caller: CallerDep, ops: OpsDep
) -> schemas.SummaryOut:
    """The conversation's summary by the bot, cached until the conversation's
    next message (``last_seq``). Members only: anyone else, and another tenant,
    get 404 ``conversation_not_found``. Rate limited (``summary``)."""
    return await ops.summarize(caller, conversation_id)
