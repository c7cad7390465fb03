"""Auto-assignment wired to the tickets: their queue and load, the observer that
records assignments and wakes the assigner, and the system actor's assign."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from confab.conversation.v1 import support_pb2 as pb
from confab_core.errors import ConfabError
from conversation.handlers import ticketflow
from conversation.handlers.autoassign import Waiting
from conversation.handlers.support import SupportHandler, system_caller
from conversation.handlers.support_hooks import TicketChange, TicketMessage
from conversation.storage.db import TenantStore
from conversation.storage.tickets import ASSIGNED, QUEUED, WAITING_ON_USER, QueueFilter

log = logging.getLogger(__name__)

# What counts against an agent's capacity.
LOAD_STATUSES = (ASSIGNED, WAITING_ON_USER)


class TicketView:
    """The ticket side as auto-assignment reads it."""

    async def open_counts(self, store: TenantStore, user_ids: list[str]) -> dict[str, int]:
        found = await asyncio.gather(
            *(store.tickets.for_assignee(u, LOAD_STATUSES) for u in user_ids)
        )
        return {u: len(tickets) for u, tickets in zip(user_ids, found, strict=True)}

    async def teams(self, store: TenantStore, user_ids: list[str]) -> dict[str, frozenset[str]]:
        wanted = set(user_ids)
        out: dict[str, set[str]] = {}
        for team in await store.support.teams():
            for agent_id in team.agent_ids:
                if agent_id in wanted:
                    out.setdefault(agent_id, set()).add(team.id)
        return {u: frozenset(t) for u, t in out.items()}

    async def queue(self, store: TenantStore, limit: int) -> list[Waiting]:
        tickets = await store.tickets.queue(QueueFilter(statuses=(QUEUED,), assignee_id=""), limit)
        # A ticket a tenant admin opened straight to the platform is for
        # platform staff, not for the tenant's own agents.
        return [Waiting(t.id, t.team_id) for t in tickets if not t.platform]


def _frees_or_queues(change: TicketChange) -> bool:
    """A change after which the assigner may find work: a ticket waiting
    unassigned in the queue, or an agent's slot freed."""
    after, before = change.after, change.before
    if after.status == QUEUED and not after.assignee_id:
        return True
    if before is None or not before.assignee_id or before.status not in LOAD_STATUSES:
        return False
    return after.status not in LOAD_STATUSES or after.assignee_id != before.assignee_id


class AssignmentObserver:
    """Records each assignment (least busy's tie break, round robin's pointer)
    in the change's transaction, and wakes the assigner after commits that
    queue a ticket or free a slot."""

    def __init__(self, wake: Callable[[str], None]) -> None:
        self._wake = wake

    async def on_change(self, store: TenantStore, change: TicketChange) -> None:
        after, before = change.after, change.before
        if not after.assignee_id or (
            before is not None and before.assignee_id == after.assignee_id
        ):
            return
        await store.assignment.record_assignment(
            after.assignee_id, change.at, move_pointer=change.action == ticketflow.AUTO_ASSIGN
        )

    async def on_message(self, store: TenantStore, message: TicketMessage) -> None:
        return None

    async def decorate(self, store: TenantStore, tickets: list[pb.Ticket]) -> None:
        return None

    def after_commit(self, tenant_id: str, changes: list[TicketChange]) -> None:
        if any(_frees_or_queues(c) for c in changes):
            self._wake(tenant_id)


class SystemAssign:
    """The assigner's way to give a ticket: ``SupportHandler.assign`` as the
    system actor, conditional on the ticket still being queued and unassigned."""

    def __init__(self, support: SupportHandler) -> None:
        self._support = support

    async def __call__(self, tenant_id: str, ticket_id: str, agent_id: str, team_id: str) -> bool:
        try:
            done = await self._support.assign(
                system_caller(tenant_id), ticket_id, agent_id, team_id, auto=True
            )
        except ConfabError as exc:
            # The ticket or its team changed under the pass (deleted, agent
            # left the team): the next pass sees the new state.
            log.info("auto-assignment of %s skipped: %s", ticket_id, exc)
            return False
        return done is not None
