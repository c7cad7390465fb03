"""Tickets, the queue, and the support desk's categories and teams
(docs/support.md, "Endpoints")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from confab_core import limits
from gateway import schemas
from gateway import support_schemas as ss
from gateway.clients.ticketops import TicketOps
from gateway.deps import CallerDep, ContextDep
from gateway.routes.conversations import LIMITED, WRITE_ERRORS, ConversationId
from gateway.routes.messages import MessageId

router = APIRouter(tags=["support"])

TicketId = Annotated[str, Path(min_length=1, max_length=limits.MAX_ID_CHARS)]
TeamId = Annotated[str, Path(min_length=1, max_length=limits.MAX_ID_CHARS)]
Filter = Annotated[str, Query(max_length=limits.MAX_ID_CHARS)]
ERRORS: dict[int | str, dict[str, object]] = {**WRITE_ERRORS, **LIMITED}
READ_ERRORS: dict[int | str, dict[str, object]] = {
    **ERRORS,
    404: {"model": schemas.ErrorOut},
}


def get_ticket_ops(ctx: ContextDep) -> TicketOps:
    return TicketOps(ctx.backends.support, ctx.backends.support_admin, ctx.ops.limiter)


TicketOpsDep = Annotated[TicketOps, Depends(get_ticket_ops)]


@router.post(
    "/tickets",
    response_model=ss.OpenedTicketOut,
    status_code=status.HTTP_201_CREATED,
    responses=ERRORS,
)
async def open_ticket(
    body: ss.OpenTicketIn, caller: CallerDep, ops: TicketOpsDep
) -> ss.OpenedTicketOut:
    """Opens a ticket in a new support conversation of the caller; it is queued
    (or goes to the support bot first when the tenant has it take new tickets)."""
    return await ops.open(caller, body)


@router.get("/tickets/queue", response_model=ss.TicketPageOut, responses=ERRORS)
async def ticket_queue(
    caller: CallerDep,
    ops: TicketOpsDep,
    team_id: Filter = "",
    category: Annotated[str, Query(max_length=limits.MAX_CATEGORY_CHARS)] = "",
    priority: ss.TicketPriorityName | None = None,
    status_: Annotated[list[ss.TicketStatusName] | None, Query(alias="status")] = None,
    assignee: Filter = "",
    cursor: Annotated[str, Query(max_length=1024)] = "",
    limit: Annotated[int, Query(ge=1, le=limits.MAX_PAGE)] = limits.MAX_PAGE,
) -> ss.TicketPageOut:
    """Agents and admins: by priority (urgent first), then longest waiting.
    Without ``status``: the unassigned open tickets (``assignee`` unset or
    ``none``), or every open one. ``assignee``: ``me``, ``none``, ``any`` or a
    user id."""
    return await ops.queue(
        caller,
        team_id=team_id,
        category=category,
        priority=priority,
        statuses=list(status_ or []),
        assignee=assignee,
        cursor=cursor,
        limit=limit,
    )


@router.get("/tickets/mine", response_model=ss.TicketPageOut, responses=ERRORS)
async def my_tickets(
    caller: CallerDep,
    ops: TicketOpsDep,
    cursor: Annotated[str, Query(max_length=1024)] = "",
    limit: Annotated[int, Query(ge=1, le=limits.MAX_PAGE)] = limits.MAX_PAGE,
) -> ss.TicketPageOut:
    """The caller's own tickets (as requester), newest first."""
    return await ops.mine(caller, cursor, limit)


@router.get("/tickets/{ticket_id}", response_model=ss.TicketEnvelopeOut, responses=READ_ERRORS)
async def get_ticket(
    ticket_id: TicketId, caller: CallerDep, ops: TicketOpsDep
) -> ss.TicketEnvelopeOut:
    return await ops.get(caller, ticket_id)


@router.patch("/tickets/{ticket_id}", response_model=ss.TicketEnvelopeOut, responses=READ_ERRORS)
async def update_ticket(
    ticket_id: TicketId, body: ss.UpdateTicketIn, caller: CallerDep, ops: TicketOpsDep
) -> ss.TicketEnvelopeOut:
    """Subject and context (the requester too); category, priority and tags
    (agents and admins). ``expected_version``: 409 version_mismatch unless equal."""
    return await ops.update(caller, ticket_id, body)


@router.post(
    "/tickets/{ticket_id}/transitions", response_model=ss.TicketEnvelopeOut, responses=READ_ERRORS
)
async def transition_ticket(
    ticket_id: TicketId, body: ss.TransitionIn, caller: CallerDep, ops: TicketOpsDep
) -> ss.TicketEnvelopeOut:
    """A status change by action; an illegal one is 409 invalid_transition."""
    return await ops.transition(caller, ticket_id, body)


@router.post(
    "/tickets/{ticket_id}/claim", response_model=ss.TicketEnvelopeOut, responses=READ_ERRORS
)
async def claim_ticket(
    ticket_id: TicketId, caller: CallerDep, ops: TicketOpsDep
) -> ss.TicketEnvelopeOut:
    """Agents: takes an unassigned ticket; 409 already_assigned when someone was first."""
    return await ops.claim(caller, ticket_id)


@router.post(
    "/tickets/{ticket_id}/assign", response_model=ss.TicketEnvelopeOut, responses=READ_ERRORS
)
async def assign_ticket(
    ticket_id: TicketId, body: ss.AssignIn, caller: CallerDep, ops: TicketOpsDep
) -> ss.TicketEnvelopeOut:
    """Admins: assign, reassign or transfer to an agent and/or a team."""
    return await ops.assign(caller, ticket_id, body)


@router.post(
    "/tickets/{ticket_id}/escalate", response_model=ss.TicketEnvelopeOut, responses=READ_ERRORS
)
async def escalate_ticket(
    ticket_id: TicketId, body: ss.EscalateIn, caller: CallerDep, ops: TicketOpsDep
) -> ss.TicketEnvelopeOut:
    """Tenant admins: hands the ticket to platform staff."""
    return await ops.escalate(caller, ticket_id, body)


@router.get(
    "/conversations/{conversation_id}/ticket",
    response_model=ss.TicketEnvelopeOut,
    responses=READ_ERRORS,
)
async def conversation_ticket(
    conversation_id: ConversationId, caller: CallerDep, ops: TicketOpsDep
) -> ss.TicketEnvelopeOut:
    """The ticket a support conversation carries."""
    return await ops.of_conversation(caller, conversation_id)


@router.post(
    "/conversations/{conversation_id}/messages/{message_id}/ticket",
    response_model=ss.OpenedTicketOut,
    status_code=status.HTTP_201_CREATED,
    responses=READ_ERRORS,
)
async def ticket_from_message(
    conversation_id: ConversationId,
    message_id: MessageId,
    body: ss.QuickTicketIn,
    caller: CallerDep,
    ops: TicketOpsDep,
) -> ss.OpenedTicketOut:
    """Agents and admins: a ticket for the message's author, linked both ways."""
    return await ops.from_message(caller, conversation_id, message_id, body)


@router.get("/support/categories", response_model=ss.CategoriesOut, responses=ERRORS)
async def list_categories(caller: CallerDep, ops: TicketOpsDep) -> ss.CategoriesOut:
    return await ops.categories(caller)


@router.put("/support/categories", response_model=ss.CategoriesOut, responses=ERRORS)
async def put_categories(
    body: ss.CategoriesIn, caller: CallerDep, ops: TicketOpsDep
) -> ss.CategoriesOut:
    """Tenant admins: replaces the list."""
    return await ops.put_categories(caller, body)


@router.get("/support/teams", response_model=ss.TeamListOut, responses=ERRORS)
async def list_teams(caller: CallerDep, ops: TicketOpsDep) -> ss.TeamListOut:
    return await ops.teams(caller)


@router.post(
    "/support/teams",
    response_model=ss.TeamOut,
    status_code=status.HTTP_201_CREATED,
    responses=ERRORS,
)
async def create_team(body: ss.TeamIn, caller: CallerDep, ops: TicketOpsDep) -> ss.TeamOut:
    """Tenant admins."""
    return await ops.create_team(caller, body)


@router.put("/support/teams/{team_id}", response_model=ss.TeamOut, responses=READ_ERRORS)
async def update_team(
    team_id: TeamId, body: ss.TeamIn, caller: CallerDep, ops: TicketOpsDep
) -> ss.TeamOut:
    """Tenant admins: its name and agents."""
    return await ops.update_team(caller, team_id, body)


@router.delete(
    "/support/teams/{team_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=READ_ERRORS,
)
async def delete_team(team_id: TeamId, caller: CallerDep, ops: TicketOpsDep) -> None:
    """Tenant admins."""
    await ops.delete_team(caller, team_id)
