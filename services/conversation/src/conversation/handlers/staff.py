"""Who works a ticket, for internal services that reach them (the notification
service tells them about a handoff)."""

from __future__ import annotations

from confab_core.errors import NotFound, PermissionDenied
from confab_core.identity import ROLE_SERVICE, Caller
from confab_core.limits import MAX_ID_CHARS
from conversation.handlers.assignment import AGENT_ROLES, MAX_AGENTS
from conversation.storage.db import Database
from conversation.storage.users import UserProfile


class StaffHandler:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def ticket_staff(self, caller: Caller, ticket_id: str) -> list[UserProfile]:
        """The ticket's team's agents; every agent and admin when it has no team."""
        if not caller.has_role(ROLE_SERVICE):
            raise PermissionDenied("internal services only", "forbidden")
        store = self._db.for_tenant(caller.tenant_id)
        ticket = await store.tickets.get(ticket_id) if len(ticket_id) <= MAX_ID_CHARS else None
        if ticket is None:
            raise NotFound("ticket not found", "ticket_not_found")
        team = await store.support.team(ticket.team_id) if ticket.team_id else None
        if team is None:
            return await store.users.with_roles(AGENT_ROLES, MAX_AGENTS)
        found = await store.users.get_many(list(team.agent_ids))
        return [found[u] for u in team.agent_ids if u in found]
