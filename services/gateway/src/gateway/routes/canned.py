"""Canned replies and the tenant's support profile (docs/api.md, "Canned replies")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from confab_core import limits
from gateway import canned_schemas as cs
from gateway.clients.canned import CannedOps
from gateway.deps import CallerDep, ContextDep
from gateway.routes.conversations import LIMITED, WRITE_ERRORS, ConversationId

router = APIRouter(tags=["canned replies"])

CannedId = Annotated[str, Path(min_length=1, max_length=limits.MAX_ID_CHARS)]


def get_canned_ops(ctx: ContextDep) -> CannedOps:
    return CannedOps(ctx.backends.canned, ctx.ops.limiter)


CannedOpsDep = Annotated[CannedOps, Depends(get_canned_ops)]
RESPONSES = {**WRITE_ERRORS, **LIMITED}


@router.get("/canned-replies", response_model=cs.CannedReplyPageOut, responses=RESPONSES)
async def list_canned_replies(
    caller: CallerDep,
    ops: CannedOpsDep,
    q: Annotated[str, Query(max_length=limits.MAX_QUERY_CHARS)] = "",
    limit: Annotated[int, Query(ge=1, le=limits.MAX_PAGE)] = 50,
    cursor: Annotated[str, Query(max_length=1024)] = "",
) -> cs.CannedReplyPageOut:
    """The tenant's shared replies and the caller's personal ones; agents and admins.
    With ``q``: shortcode prefix matches, then shortcode substring matches, then
    replies whose body has every word of ``q``; within each, personal before
    shared, then by shortcode."""
    return await ops.search(caller, q, limit, cursor)


@router.post(
    "/canned-replies",
    response_model=cs.CannedReplyOut,
    status_code=status.HTTP_201_CREATED,
    responses=RESPONSES,
)
async def create_canned_reply(
    body: cs.CannedReplyIn, caller: CallerDep, ops: CannedOpsDep
) -> cs.CannedReplyOut:
    """``shared`` (tenant admins) or ``personal`` (the caller's own). 409
    ``shortcode_taken``; 422 ``invalid_shortcode``, ``unknown_variable``."""
    return await ops.create(caller, body)


@router.patch("/canned-replies/{canned_id}", response_model=cs.CannedReplyOut, responses=RESPONSES)
async def update_canned_reply(
    canned_id: CannedId, body: cs.CannedReplyPatchIn, caller: CallerDep, ops: CannedOpsDep
) -> cs.CannedReplyOut:
    return await ops.update(caller, canned_id, body)


@router.delete(
    "/canned-replies/{canned_id}", status_code=status.HTTP_204_NO_CONTENT, responses=RESPONSES
)
async def delete_canned_reply(canned_id: CannedId, caller: CallerDep, ops: CannedOpsDep) -> None:
    await ops.delete(caller, canned_id)


@router.post(
    "/conversations/{conversation_id}/canned-replies/{canned_id}/render",
    response_model=cs.RenderedOut,
    responses=RESPONSES,
)
async def render_canned_reply(
    conversation_id: ConversationId, canned_id: CannedId, caller: CallerDep, ops: CannedOpsDep
) -> cs.RenderedOut:
    """The text the reply would send here. 422 ``variable_unavailable`` when a
    variable has no value in this conversation (a ticket's, outside a ticket)."""
    return await ops.render(caller, conversation_id, canned_id)


@router.post(
    "/conversations/{conversation_id}/canned-replies/{canned_id}/send",
    response_model=cs.SendCannedReplyOut,
    status_code=status.HTTP_201_CREATED,
    responses=RESPONSES,
)
async def send_canned_reply(
    conversation_id: ConversationId,
    canned_id: CannedId,
    body: cs.SendCannedReplyIn,
    caller: CallerDep,
    ops: CannedOpsDep,
    response: Response,
) -> cs.SendCannedReplyOut:
    """Renders on the server and sends as the caller, like ``POST .../messages``:
    200 instead of 201 for a retry with the same ``client_msg_id``."""
    result = await ops.send(caller, conversation_id, canned_id, body)
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return result


@router.get("/support/profile", response_model=cs.SupportProfileOut, responses=RESPONSES)
async def get_support_profile(caller: CallerDep, ops: CannedOpsDep) -> cs.SupportProfileOut:
    return await ops.get_profile(caller)


@router.put("/support/profile", response_model=cs.SupportProfileOut, responses=RESPONSES)
async def put_support_profile(
    body: cs.SupportProfileIn, caller: CallerDep, ops: CannedOpsDep
) -> cs.SupportProfileOut:
    """Tenant admins: the name ``{{tenant.name}}`` renders to."""
    return await ops.set_profile(caller, body)
