"""Platform staff and escalated tickets: the one way into tenants they have.

A call finds its ticket in the escalation index (``Database.escalations()``, the
only cross-tenant read), then does everything else through that ticket's
tenant's stores as the staff member re-scoped to the tenant
(``platformaccess.in_tenant``: super_admin, never tenant_admin). A ticket that
is not escalated is ``ticket_not_found``, like one that does not exist. Every
read or write of a tenant's data appends a record to that tenant's audit
chain, naming the staff member: reads before they answer (a read that cannot be
audited does not happen), writes once they are done.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from confab.conversation.v1 import support_pb2 as spb
from confab_core.errors import InvalidArgument, NotFound
from confab_core.identity import Caller
from confab_core.limits import MAX_ID_CHARS
from conversation.handlers import platformaccess
from conversation.handlers.audit import AuditTrail, entry
from conversation.handlers.history import Page
from conversation.handlers.paging import page_limit
from conversation.handlers.sending import Sent
from conversation.storage.audit import Target
from conversation.storage.db import Database, Transaction
from conversation.storage.escalations import Escalation, EscalationCursor

TICKET_READ = "platform.ticket_read"
MESSAGES_READ = "platform.messages_read"
MESSAGE_SENT = "platform.message_sent"
TICKET_TRANSITION = "platform.ticket_transition"

_TOKEN_VERSION = 1


def ticket_not_found() -> NotFound:
    return NotFound("ticket not found", "ticket_not_found")


class Tickets(Protocol):
    """What platform staff need of the support desk (SupportHandler)."""

    async def view_ticket(self, caller: Caller, ticket_id: str) -> spb.Ticket | None: ...

    async def transition(
        self, caller: Caller, ticket_id: str, action: int, note: str
    ) -> spb.Ticket: ...

    async def page_messages(
        self, caller: Caller, conversation_id: str, after_seq: int, before_seq: int, limit: int
    ) -> Page: ...

    async def staff_reply(
        self, caller: Caller, conversation_id: str, text: str, client_msg_id: str
    ) -> Sent: ...


@dataclass(frozen=True)
class TicketPage:
    tickets: list[spb.Ticket]
    next_page_token: str


@dataclass(frozen=True)
class MessagesPage:
    tenant_id: str
    conversation_id: str
    page: Page


class PlatformHandler:
    def __init__(self, db: Database, trail: AuditTrail, tickets: Tickets) -> None:
        self._db = db
        self._trail = trail
        self._tickets = tickets

    async def list_tickets(
        self, staff: Caller, *, include_closed: bool, page_token: str, limit: int
    ) -> TicketPage:
        platformaccess.require_platform_staff(staff)
        limit = page_limit(limit)
        after = _decode(staff, include_closed, page_token) if page_token else None
        found = await self._db.escalations().page(
            open_only=not include_closed, after=after, limit=limit + 1
        )
        more = len(found) > limit
        found = found[:limit]
        views: list[tuple[Escalation, spb.Ticket]] = []
        for esc in found:
            ticket = await self._view(staff, esc)
            if ticket is not None:
                views.append((esc, ticket))
        await self._audit_reads(staff, views)
        token = _encode(staff, include_closed, found[-1]) if more and found else ""
        return TicketPage([t for _, t in views], token)

    async def get(self, staff: Caller, ticket_id: str) -> spb.Ticket:
        esc, ticket = await self._escalated(staff, ticket_id)
        await self._audit_reads(staff, [(esc, ticket)])
        return ticket

    async def messages(
        self, staff: Caller, ticket_id: str, *, after_seq: int, before_seq: int, limit: int
    ) -> MessagesPage:
        esc, _ = await self._escalated(staff, ticket_id)
        scoped = platformaccess.in_tenant(staff, esc.tenant_id)
        page = await self._tickets.page_messages(
            scoped, esc.conversation_id, after_seq, before_seq, limit
        )
        await self._trail.record(
            scoped,
            MESSAGES_READ,
            Target("ticket", esc.ticket_id),
            after={"messages": str(len(page.messages))},
            conversation_id=esc.conversation_id,
        )
        return MessagesPage(esc.tenant_id, esc.conversation_id, page)

    async def reply(self, staff: Caller, ticket_id: str, text: str, client_msg_id: str) -> Sent:
        esc, _ = await self._escalated(staff, ticket_id)
        scoped = platformaccess.in_tenant(staff, esc.tenant_id)
        sent = await self._tickets.staff_reply(scoped, esc.conversation_id, text, client_msg_id)
        if sent.created:
            await self._trail.record(
                scoped,
                MESSAGE_SENT,
                Target("message", sent.message.id),
                after={"ticket_id": esc.ticket_id},
                conversation_id=esc.conversation_id,
            )
        return sent

    async def transition(
        self, staff: Caller, ticket_id: str, action: int, note: str
    ) -> spb.Ticket:
        esc, before = await self._escalated(staff, ticket_id)
        scoped = platformaccess.in_tenant(staff, esc.tenant_id)
        after = await self._tickets.transition(scoped, esc.ticket_id, action, note)
        after.tenant_id = esc.tenant_id
        await self._trail.record(
            scoped,
            TICKET_TRANSITION,
            Target("ticket", esc.ticket_id),
            before={"status": spb.TicketStatus.Name(before.status)},
            after={
                "status": spb.TicketStatus.Name(after.status),
                "action": spb.TicketAction.Name(action),  # type: ignore[arg-type]
            },
            conversation_id=esc.conversation_id,
        )
        return after

    async def _escalated(self, staff: Caller, ticket_id: str) -> tuple[Escalation, spb.Ticket]:
        platformaccess.require_platform_staff(staff)
        if not ticket_id or len(ticket_id) > MAX_ID_CHARS:
            raise InvalidArgument("ticket_id is required", "invalid_ticket_id")
        esc = await self._db.escalations().get(ticket_id)
        ticket = await self._view(staff, esc) if esc is not None else None
        if esc is None or ticket is None:
            raise ticket_not_found()
        return esc, ticket

    async def _view(self, staff: Caller, esc: Escalation) -> spb.Ticket | None:
        """The ticket as its tenant stores it now; None unless it is still escalated
        (the index is only where to look, the ticket is the truth)."""
        scoped = platformaccess.in_tenant(staff, esc.tenant_id)
        ticket = await self._tickets.view_ticket(scoped, esc.ticket_id)
        if ticket is None or not ticket.escalated:
            return None
        ticket.tenant_id = esc.tenant_id
        return ticket

    async def _audit_reads(self, staff: Caller, views: list[tuple[Escalation, spb.Ticket]]) -> None:
        """One record per ticket shown, in its tenant's chain; one transaction per tenant."""
        by_tenant: dict[str, list[Escalation]] = {}
        for esc, _ in views:
            by_tenant.setdefault(esc.tenant_id, []).append(esc)
        for tenant_id, escs in by_tenant.items():
            scoped = platformaccess.in_tenant(staff, tenant_id)
            entries = [
                entry(
                    scoped,
                    TICKET_READ,
                    Target("ticket", e.ticket_id),
                    conversation_id=e.conversation_id,
                )
                for e in escs
            ]

            async def body(tx: Transaction, tenant: str = tenant_id) -> None:
                for audited in entries:
                    await self._trail.append(tx.for_tenant(tenant), audited)

            await self._trail.transaction(tenant_id, body)


def _invalid() -> InvalidArgument:
    return InvalidArgument("page token is not valid for this list", "invalid_cursor")


def _encode(staff: Caller, include_closed: bool, last: Escalation) -> str:
    body = {
        "v": _TOKEN_VERSION,
        "u": staff.user_id,
        "c": include_closed,
        "p": last.priority,
        "a": last.escalated_at.isoformat(),
        "i": last.ticket_id,
    }
    raw = json.dumps(body, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(staff: Caller, include_closed: bool, token: str) -> EscalationCursor:
    """A token is bound to the staff member and the list it came from."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw)
        if not isinstance(body, dict) or body.get("v") != _TOKEN_VERSION:
            raise _invalid()
        if body.get("u") != staff.user_id or body.get("c") is not include_closed:
            raise _invalid()
        cursor = EscalationCursor(
            int(body["p"]), datetime.fromisoformat(str(body["a"])), str(body["i"])
        )
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise _invalid() from exc
    if cursor.escalated_at.tzinfo is None or not cursor.ticket_id:
        raise _invalid()
    return cursor
