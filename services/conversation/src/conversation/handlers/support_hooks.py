"""What other parts of the support desk (SLA, auto-assignment) hook into.

Observers run inside the transaction of the change they observe, so what they
write commits or rolls back with it. They never emit events themselves: a unit
of work claims its event count before its body runs, so whatever they must
announce later goes through a unit of work of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from confab.conversation.v1 import support_pb2 as pb
from confab_core.identity import Caller
from conversation.storage.db import TenantStore
from conversation.storage.tickets import Ticket


@dataclass(frozen=True)
class TicketChange:
    """One ticket change, inside the unit of work's transaction."""

    # None when the ticket was just opened.
    before: Ticket | None
    after: Ticket
    # opened, submit, handoff, claim, assign, release, wait_on_user, resume,
    # resolve, close, reopen, escalate, fields, auto_assign
    action: str
    actor: Caller
    at: datetime


@dataclass(frozen=True)
class TicketMessage:
    """A message stored in a ticket's conversation, inside the transaction."""

    ticket: Ticket
    message_id: str
    sender_id: str
    # super_admin, tenant_admin, agent, member, system, bot
    sender_role: str
    at: datetime


class TicketObserver(Protocol):
    async def on_change(self, store: TenantStore, change: TicketChange) -> None: ...

    async def on_message(self, store: TenantStore, message: TicketMessage) -> None: ...

    async def decorate(self, store: TenantStore, tickets: list[pb.Ticket]) -> None: ...

    def after_commit(self, tenant_id: str, changes: list[TicketChange]) -> None: ...
