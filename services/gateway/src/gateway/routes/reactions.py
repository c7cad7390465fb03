from __future__ import annotations

from fastapi import APIRouter

from gateway import schemas
from gateway.deps import CallerDep, OpsDep
from gateway.routes.conversations import WRITE_ERRORS, ConversationId
from gateway.routes.messages import MessageId

router = APIRouter(
    prefix="/conversations/{conversation_id}/messages/{message_id}/reactions", tags=["reactions"]
)


@router.post(
    "",
    response_model=schemas.ToggleReactionOut,
    responses={**WRITE_ERRORS, 429: {"model": schemas.ErrorOut}},
)
async def toggle_reaction(
    conversation_id: ConversationId,
    message_id: MessageId,
    body: schemas.ToggleReactionIn,
    caller: CallerDep,
    ops: OpsDep,
) -> schemas.ToggleReactionOut:
    """Adds the caller's reaction with this emoji, or removes it if present."""
    return await ops.toggle_reaction(caller, conversation_id, message_id, body.emoji)
