"""Tickets, the queue and the desk's setup, as REST routes call them: rate
limits, then translation."""

from __future__ import annotations

from typing import cast

from confab.conversation.v1 import conversation_pb2 as cpb
from confab.conversation.v1 import support_admin_pb2 as apb
from confab.conversation.v1 import support_pb2 as spb
from confab_core.identity import Caller
from gateway import convert
from gateway import support_schemas as ss
from gateway.clients.support import SupportAdminClient, SupportClient
from gateway.ratelimit import Action, RateLimiter
from gateway.schemas import ContextLink
from gateway.ticketconvert import dt, ticket

PRIORITY_BY_NAME = {
    name.removeprefix("TICKET_PRIORITY_").lower(): value
    for name, value in spb.TicketPriority.items()
    if value
}
STATUS_BY_NAME = {
    name.removeprefix("TICKET_STATUS_").lower(): value
    for name, value in spb.TicketStatus.items()
    if value
}
ACTION_BY_NAME = {
    name.removeprefix("TICKET_ACTION_").lower(): value
    for name, value in spb.TicketAction.items()
    if value
}

HANDOFF_REASON_BY_NAME = {
    name.removeprefix("HANDOFF_REASON_").lower(): value
    for name, value in spb.HandoffReason.items()
    if value
}


def team(t: apb.SupportTeam) -> ss.TeamOut:
    return ss.TeamOut(
        id=t.id,
        name=t.name,
        agent_ids=list(t.agent_ids),
        created_at=dt(t.created_at),
        updated_at=dt(t.updated_at),
    )


def _context(link: ContextLink | None) -> cpb.ContextLink | None:
    return cpb.ContextLink(kind=link.kind, id=link.id) if link else None


def _priority(name: str | None) -> spb.TicketPriority.ValueType:
    return cast(spb.TicketPriority.ValueType, PRIORITY_BY_NAME[name] if name else 0)


def _page(tickets: list[spb.Ticket], token: str) -> ss.TicketPageOut:
    return ss.TicketPageOut(tickets=[ticket(t) for t in tickets], next_cursor=token or None)


class TicketOps:
    def __init__(
        self, support: SupportClient, admin: SupportAdminClient, limiter: RateLimiter
    ) -> None:
        self._s = support
        self._a = admin
        self._limiter = limiter

    async def open(self, caller: Caller, body: ss.OpenTicketIn) -> ss.OpenedTicketOut:
        await self._limiter.check(caller, Action.TICKET_WRITE)
        req = spb.OpenTicketRequest(
            subject=body.subject,
            category=body.category or "",
            priority=_priority(body.priority),
            tags=body.tags,
            context=_context(body.context),
            text=body.text or "",
            client_msg_id=body.client_msg_id or "",
            to_platform=body.to_platform,
        )
        resp = await self._s.open_ticket(caller, req)
        return ss.OpenedTicketOut(
            ticket=ticket(resp.ticket), conversation=convert.conversation(resp.conversation)
        )

    async def from_message(
        self, caller: Caller, conversation_id: str, message_id: str, body: ss.QuickTicketIn
    ) -> ss.OpenedTicketOut:
        await self._limiter.check(caller, Action.TICKET_WRITE)
        req = spb.TicketFromMessageRequest(
            message=spb.MessageRef(conversation_id=conversation_id, message_id=message_id),
            subject=body.subject,
            category=body.category or "",
            priority=_priority(body.priority),
        )
        resp = await self._s.ticket_from_message(caller, req)
        return ss.OpenedTicketOut(
            ticket=ticket(resp.ticket), conversation=convert.conversation(resp.conversation)
        )

    async def get(self, caller: Caller, ticket_id: str) -> ss.TicketEnvelopeOut:
        await self._limiter.check(caller, Action.TICKET_READ)
        resp = await self._s.get_ticket(caller, spb.GetTicketRequest(ticket_id=ticket_id))
        return ss.TicketEnvelopeOut(ticket=ticket(resp.ticket))

    async def of_conversation(self, caller: Caller, conversation_id: str) -> ss.TicketEnvelopeOut:
        await self._limiter.check(caller, Action.TICKET_READ)
        req = spb.GetConversationTicketRequest(conversation_id=conversation_id)
        resp = await self._s.get_conversation_ticket(caller, req)
        return ss.TicketEnvelopeOut(ticket=ticket(resp.ticket))

    async def update(
        self, caller: Caller, ticket_id: str, body: ss.UpdateTicketIn
    ) -> ss.TicketEnvelopeOut:
        await self._limiter.check(caller, Action.TICKET_WRITE)
        req = spb.UpdateTicketRequest(
            ticket_id=ticket_id,
            priority=_priority(body.priority),
            tags=body.tags or [],
            set_tags=body.tags is not None,
            context=_context(body.context),
            expected_version=body.expected_version or 0,
        )
        if body.subject is not None:
            req.subject = body.subject
        if body.category is not None:
            req.category = body.category
        resp = await self._s.update_ticket(caller, req)
        return ss.TicketEnvelopeOut(ticket=ticket(resp.ticket))

    async def transition(
        self, caller: Caller, ticket_id: str, body: ss.TransitionIn
    ) -> ss.TicketEnvelopeOut:
        await self._limiter.check(caller, Action.TICKET_WRITE)
        req = spb.TransitionTicketRequest(
            ticket_id=ticket_id,
            action=ACTION_BY_NAME[body.action],
            note=body.note,
            handoff_reason=HANDOFF_REASON_BY_NAME[body.handoff_reason]
            if body.handoff_reason
            else spb.HANDOFF_REASON_UNSPECIFIED,
            handoff_summary=body.handoff_summary,
        )
        resp = await self._s.transition_ticket(caller, req)
        return ss.TicketEnvelopeOut(ticket=ticket(resp.ticket))

    async def claim(self, caller: Caller, ticket_id: str) -> ss.TicketEnvelopeOut:
        await self._limiter.check(caller, Action.TICKET_WRITE)
        resp = await self._s.claim_ticket(caller, spb.ClaimTicketRequest(ticket_id=ticket_id))
        return ss.TicketEnvelopeOut(ticket=ticket(resp.ticket))

    async def assign(
        self, caller: Caller, ticket_id: str, body: ss.AssignIn
    ) -> ss.TicketEnvelopeOut:
        await self._limiter.check(caller, Action.TICKET_WRITE)
        req = spb.AssignTicketRequest(
            ticket_id=ticket_id, assignee_id=body.assignee_id or "", team_id=body.team_id or ""
        )
        resp = await self._s.assign_ticket(caller, req)
        return ss.TicketEnvelopeOut(ticket=ticket(resp.ticket))

    async def escalate(
        self, caller: Caller, ticket_id: str, body: ss.EscalateIn
    ) -> ss.TicketEnvelopeOut:
        await self._limiter.check(caller, Action.TICKET_WRITE)
        req = spb.EscalateTicketRequest(ticket_id=ticket_id, reason=body.reason)
        resp = await self._s.escalate_ticket(caller, req)
        return ss.TicketEnvelopeOut(ticket=ticket(resp.ticket))

    async def queue(
        self,
        caller: Caller,
        *,
        team_id: str,
        category: str,
        priority: str | None,
        statuses: list[str],
        assignee: str,
        cursor: str,
        limit: int,
    ) -> ss.TicketPageOut:
        await self._limiter.check(caller, Action.TICKET_READ)
        req = spb.ListTicketQueueRequest(
            team_id=team_id,
            category=category,
            priority=_priority(priority),
            statuses=[STATUS_BY_NAME[s] for s in statuses],
            assignee=assignee,
            page_token=cursor,
            limit=limit,
        )
        resp = await self._s.list_ticket_queue(caller, req)
        return _page(list(resp.tickets), resp.next_page_token)

    async def mine(self, caller: Caller, cursor: str, limit: int) -> ss.TicketPageOut:
        await self._limiter.check(caller, Action.TICKET_READ)
        req = spb.ListMyTicketsRequest(page_token=cursor, limit=limit)
        resp = await self._s.list_my_tickets(caller, req)
        return _page(list(resp.tickets), resp.next_page_token)

    async def categories(self, caller: Caller) -> ss.CategoriesOut:
        await self._limiter.check(caller, Action.TICKET_READ)
        resp = await self._a.list_categories(caller)
        return ss.CategoriesOut(categories=list(resp.categories))

    async def put_categories(self, caller: Caller, body: ss.CategoriesIn) -> ss.CategoriesOut:
        await self._limiter.check(caller, Action.SUPPORT_ADMIN)
        req = apb.PutCategoriesRequest(categories=body.categories)
        resp = await self._a.put_categories(caller, req)
        return ss.CategoriesOut(categories=list(resp.categories))

    async def teams(self, caller: Caller) -> ss.TeamListOut:
        await self._limiter.check(caller, Action.TICKET_READ)
        resp = await self._a.list_teams(caller)
        return ss.TeamListOut(teams=[team(t) for t in resp.teams])

    async def create_team(self, caller: Caller, body: ss.TeamIn) -> ss.TeamOut:
        await self._limiter.check(caller, Action.SUPPORT_ADMIN)
        req = apb.CreateTeamRequest(name=body.name, agent_ids=body.agent_ids)
        return team((await self._a.create_team(caller, req)).team)

    async def update_team(self, caller: Caller, team_id: str, body: ss.TeamIn) -> ss.TeamOut:
        await self._limiter.check(caller, Action.SUPPORT_ADMIN)
        req = apb.UpdateTeamRequest(team_id=team_id, name=body.name, agent_ids=body.agent_ids)
        return team((await self._a.update_team(caller, req)).team)

    async def delete_team(self, caller: Caller, team_id: str) -> None:
        await self._limiter.check(caller, Action.SUPPORT_ADMIN)
        await self._a.delete_team(caller, apb.DeleteTeamRequest(team_id=team_id))
