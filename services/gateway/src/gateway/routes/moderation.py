"""Mutes, bans, reports and the moderation queue.

Tenant-wide under ``/moderation`` (tenant admins), per conversation under
``/conversations/{id}/moderation`` (its admins); reports under the message.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from confab_core import limits
from gateway import governance_schemas as gs
from gateway import schemas
from gateway.deps import CallerDep
from gateway.routes.audit import READ_ERRORS, GovernanceDep
from gateway.routes.conversations import WRITE_ERRORS, ConversationId
from gateway.routes.messages import MessageId

UserId = Annotated[str, Path(min_length=1, max_length=limits.MAX_ID_CHARS)]
EntryId = Annotated[str, Path(min_length=1, max_length=limits.MAX_ID_CHARS)]
MODERATE_ERRORS: dict[int | str, dict[str, object]] = {
    **WRITE_ERRORS,
    429: {"model": schemas.ErrorOut},
}
KINDS = {"mutes": "mute", "bans": "ban"}

router = APIRouter(tags=["moderation"])
tenant = APIRouter(prefix="/moderation")
conversation = APIRouter(prefix="/conversations/{conversation_id}/moderation")


def _sanction_routes(kind_path: str) -> None:
    kind = KINDS[kind_path]

    @tenant.post(
        f"/{kind_path}",
        response_model=gs.SanctionOut,
        status_code=status.HTTP_201_CREATED,
        responses=MODERATE_ERRORS,
        name=f"{kind}_tenant_wide",
        summary=f"{kind.title()} a user in the whole tenant",
    )
    async def impose_tenant_wide(
        body: gs.SanctionIn, caller: CallerDep, ops: GovernanceDep
    ) -> gs.SanctionOut:
        return await ops.sanction(caller, kind, "", body)

    @tenant.delete(
        f"/{kind_path}/{{user_id}}",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        responses=MODERATE_ERRORS,
        name=f"lift_{kind}_tenant_wide",
        summary=f"Lift a tenant-wide {kind}",
    )
    async def lift_tenant_wide(user_id: UserId, caller: CallerDep, ops: GovernanceDep) -> None:
        await ops.lift(caller, kind, "", user_id)

    @conversation.post(
        f"/{kind_path}",
        response_model=gs.SanctionOut,
        status_code=status.HTTP_201_CREATED,
        responses=MODERATE_ERRORS,
        name=f"{kind}_in_conversation",
        summary=f"{kind.title()} a user in this conversation",
    )
    async def impose_here(
        conversation_id: ConversationId, body: gs.SanctionIn, caller: CallerDep, ops: GovernanceDep
    ) -> gs.SanctionOut:
        return await ops.sanction(caller, kind, conversation_id, body)

    @conversation.delete(
        f"/{kind_path}/{{user_id}}",
        status_code=status.HTTP_204_NO_CONTENT,
        response_class=Response,
        responses=MODERATE_ERRORS,
        name=f"lift_{kind}_in_conversation",
        summary=f"Lift a {kind} in this conversation",
    )
    async def lift_here(
        conversation_id: ConversationId, user_id: UserId, caller: CallerDep, ops: GovernanceDep
    ) -> None:
        await ops.lift(caller, kind, conversation_id, user_id)


for _path in KINDS:
    _sanction_routes(_path)


@tenant.get("/sanctions", response_model=gs.SanctionListOut, responses=READ_ERRORS)
async def list_sanctions(
    caller: CallerDep,
    ops: GovernanceDep,
    user_id: Annotated[str, Query(max_length=limits.MAX_ID_CHARS)] = "",
    limit: Annotated[int, Query(ge=1, le=limits.MAX_PAGE)] = limits.MAX_PAGE,
) -> gs.SanctionListOut:
    """Active mutes and bans of the whole tenant, every scope; tenant admins only."""
    return await ops.sanctions(caller, "", user_id, limit)


@conversation.get(
    "/sanctions",
    response_model=gs.SanctionListOut,
    responses={**READ_ERRORS, 404: {"model": schemas.ErrorOut}},
)
async def list_conversation_sanctions(
    conversation_id: ConversationId,
    caller: CallerDep,
    ops: GovernanceDep,
    user_id: Annotated[str, Query(max_length=limits.MAX_ID_CHARS)] = "",
    limit: Annotated[int, Query(ge=1, le=limits.MAX_PAGE)] = limits.MAX_PAGE,
) -> gs.SanctionListOut:
    """Active mutes and bans in this conversation; its admins only."""
    return await ops.sanctions(caller, conversation_id, user_id, limit)


@tenant.get("/queue", response_model=gs.QueuePageOut, responses=READ_ERRORS)
async def moderation_queue(
    caller: CallerDep,
    ops: GovernanceDep,
    status_: Annotated[str, Query(alias="status", max_length=16)] = "open",
    kind: Annotated[str, Query(max_length=16)] = "",
    limit: Annotated[int, Query(ge=1, le=limits.MAX_PAGE)] = limits.DEFAULT_PAGE,
    cursor: Annotated[str, Query(max_length=1024)] = "",
) -> gs.QueuePageOut:
    """Reports and PII flags, oldest first; ``status``: open, resolved or all;
    ``kind``: report or pii. Tenant admins only."""
    return await ops.queue(caller, status_, kind, limit, cursor)


@tenant.post(
    "/queue/{entry_id}/resolve",
    response_model=gs.QueueEntryOut,
    responses=MODERATE_ERRORS,
)
async def resolve_queue_entry(
    entry_id: EntryId, body: gs.ResolveIn, caller: CallerDep, ops: GovernanceDep
) -> gs.QueueEntryOut:
    """Resolves an open entry: dismiss it, delete the message, or mute or ban its
    author (in the conversation, or tenant-wide with ``tenant_wide``)."""
    return await ops.resolve(caller, entry_id, body)


@router.post(
    "/conversations/{conversation_id}/messages/{message_id}/report",
    response_model=gs.QueueEntryOut,
    status_code=status.HTTP_201_CREATED,
    responses=MODERATE_ERRORS,
)
async def report_message(
    conversation_id: ConversationId,
    message_id: MessageId,
    body: gs.ReportIn,
    caller: CallerDep,
    ops: GovernanceDep,
) -> gs.QueueEntryOut:
    """Reports a message the caller can see to the tenant's moderators; once
    per user and message (409 ``already_reported``)."""
    return await ops.report(caller, conversation_id, message_id, body.reason)


router.include_router(tenant)
router.include_router(conversation)
