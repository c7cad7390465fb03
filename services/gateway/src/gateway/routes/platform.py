"""Platform staff's routes (docs/api.md, "Platform staff"): escalated tickets of
every tenant, and tenant erasure. Anyone but platform staff gets 403 ``forbidden``;
a ticket that is not escalated is 404 ``ticket_not_found``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from confab_core import limits
from gateway import platform_schemas as ps
from gateway import schemas
from gateway import support_schemas as ss
from gateway.clients.jobops import JobOps
from gateway.clients.platform import PlatformOps
from gateway.deps import CallerDep, ContextDep
from gateway.routes.conversations import LIMITED, WRITE_ERRORS

router = APIRouter(prefix="/platform", tags=["platform"])

TicketId = Annotated[str, Path(min_length=1, max_length=limits.MAX_ID_CHARS)]
TenantId = Annotated[str, Path(min_length=1, max_length=limits.MAX_ID_CHARS)]
JobId = Annotated[str, Path(min_length=1, max_length=limits.MAX_ID_CHARS)]
ERRORS = {**WRITE_ERRORS, **LIMITED}


def get_platform_ops(ctx: ContextDep) -> PlatformOps:
    limiter = ctx.ops.limiter
    return PlatformOps(ctx.backends.platform, JobOps(ctx.backends.jobs, limiter), limiter)


PlatformOpsDep = Annotated[PlatformOps, Depends(get_platform_ops)]


@router.get("/tickets", response_model=ps.EscalatedTicketPageOut, responses=ERRORS)
async def list_escalated_tickets(
    caller: CallerDep,
    ops: PlatformOpsDep,
    include_closed: bool = False,
    limit: Annotated[int, Query(ge=1, le=limits.MAX_PAGE)] = limits.DEFAULT_PAGE,
    cursor: Annotated[str, Query(max_length=1024)] = "",
) -> ps.EscalatedTicketPageOut:
    """Escalated tickets of every tenant (open ones unless ``include_closed``),
    urgent first, then the oldest escalation; each names its ``tenant_id``."""
    return await ops.list_tickets(caller, include_closed, cursor, limit)


@router.get("/tickets/{ticket_id}", response_model=ps.EscalatedTicketEnvelopeOut, responses=ERRORS)
async def get_escalated_ticket(
    ticket_id: TicketId, caller: CallerDep, ops: PlatformOpsDep
) -> ps.EscalatedTicketEnvelopeOut:
    return await ops.get_ticket(caller, ticket_id)


@router.get(
    "/tickets/{ticket_id}/messages", response_model=ps.EscalatedMessagesOut, responses=ERRORS
)
async def list_escalated_messages(
    ticket_id: TicketId,
    caller: CallerDep,
    ops: PlatformOpsDep,
    after_seq: Annotated[
        int, Query(ge=0, le=limits.MAX_INT64, description="Oldest first, seq > after_seq")
    ] = 0,
    before_seq: Annotated[
        int, Query(ge=0, le=limits.MAX_INT64, description="Newest first, seq < before_seq")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=limits.MAX_PAGE)] = limits.DEFAULT_PAGE,
) -> ps.EscalatedMessagesOut:
    """The messages of the ticket's support conversation."""
    return await ops.list_messages(caller, ticket_id, after_seq, before_seq, limit)


@router.post(
    "/tickets/{ticket_id}/messages",
    response_model=schemas.SendMessageOut,
    status_code=status.HTTP_201_CREATED,
    responses=ERRORS,
)
async def reply_to_escalated_ticket(
    ticket_id: TicketId,
    body: ps.PlatformReplyIn,
    caller: CallerDep,
    ops: PlatformOpsDep,
    response: Response,
) -> schemas.SendMessageOut:
    """A reply in the ticket's conversation, with ``sender_role`` ``super_admin``;
    a retry with the same ``client_msg_id`` answers 200 with the stored message."""
    result = await ops.reply(caller, ticket_id, body)
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return result


@router.post(
    "/tickets/{ticket_id}/transitions",
    response_model=ps.EscalatedTicketEnvelopeOut,
    responses=ERRORS,
)
async def transition_escalated_ticket(
    ticket_id: TicketId, body: ss.TransitionIn, caller: CallerDep, ops: PlatformOpsDep
) -> ps.EscalatedTicketEnvelopeOut:
    """A status change by the support state machine (409 ``invalid_transition``)."""
    return await ops.transition(caller, ticket_id, body)


@router.post(
    "/tenants/{tenant_id}/erasure",
    response_model=schemas.JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=ERRORS,
)
async def create_tenant_erasure(
    tenant_id: TenantId, body: schemas.CreateTenantErasureIn, caller: CallerDep, ops: PlatformOpsDep
) -> schemas.JobOut:
    """Queues the erasure of a whole tenant; ``confirm_tenant_id`` must repeat it
    (422 ``confirmation_mismatch``). Audited in the tenant's chain."""
    return await ops.jobs.create_tenant_erasure(caller, tenant_id, body)


@router.get("/tenants/{tenant_id}/jobs/{job_id}", response_model=schemas.JobOut, responses=ERRORS)
async def get_tenant_job(
    tenant_id: TenantId, job_id: JobId, caller: CallerDep, ops: PlatformOpsDep
) -> schemas.JobOut:
    """A job the caller asked for in that tenant (a tenant erasure)."""
    return await ops.jobs.get_tenant_job(caller, tenant_id, job_id)
