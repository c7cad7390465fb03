from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from confab_core import limits
from gateway import schemas
from gateway.deps import CallerDep, OpsDep
from gateway.routes.conversations import ERRORS, LIMITED, WRITE_ERRORS, ConversationId

router = APIRouter(prefix="/conversations/{conversation_id}/members", tags=["members"])

UserId = Annotated[str, Path(min_length=1, max_length=limits.MAX_ID_CHARS)]


@router.get("", response_model=list[schemas.MemberOut], responses=ERRORS)
async def list_members(
    conversation_id: ConversationId, caller: CallerDep, ops: OpsDep
) -> list[schemas.MemberOut]:
    return await ops.list_members(caller, conversation_id)


@router.post("", response_model=schemas.MembersAddedOut, responses={**WRITE_ERRORS, **LIMITED})
async def add_members(
    conversation_id: ConversationId, body: schemas.AddMembersIn, caller: CallerDep, ops: OpsDep
) -> schemas.MembersAddedOut:
    """Adds users; ``added`` lists those who were not members yet."""
    return await ops.add_members(caller, conversation_id, body)


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=WRITE_ERRORS,
)
async def remove_member(
    conversation_id: ConversationId, user_id: UserId, caller: CallerDep, ops: OpsDep
) -> None:
    await ops.remove_member(caller, conversation_id, user_id)


@router.patch("/{user_id}", response_model=schemas.MemberOut, responses=WRITE_ERRORS)
async def update_member_role(
    conversation_id: ConversationId,
    user_id: UserId,
    body: schemas.UpdateMemberRoleIn,
    caller: CallerDep,
    ops: OpsDep,
) -> schemas.MemberOut:
    return await ops.update_member_role(caller, conversation_id, user_id, body.role)
