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

from pymongo.errors import DuplicateKeyError

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import support_pb2 as spb
from confab_core.errors import FailedPrecondition, InvalidArgument, NotFound
from confab_core.identity import Caller
from confab_core.ids import new_id
from confab_core.limits import MAX_CLIENT_MSG_ID_CHARS, MAX_ID_CHARS
from conversation.handlers import access, platformaccess, ticketflow
from conversation.handlers import text as textutil
from conversation.handlers.audit import AuditTrail, entry
from conversation.handlers.history import Page
from conversation.handlers.paging import page_limit
from conversation.handlers.pii import PiiGuard
from conversation.handlers.sending import Sent, validate_text
from conversation.handlers.support import SupportHandler, ticket_not_found
from conversation.storage.audit import AuditEntry, Target
from conversation.storage.db import Database, Transaction
from conversation.storage.escalations import Escalation, EscalationCursor
from conversation.storage.messages import NewMessage

TICKET_READ = "platform.ticket_read"
MESSAGES_READ = "platform.messages_read"
MESSAGE_SENT = "platform.message_sent"
TICKET_TRANSITION = "platform.ticket_transition"

_TOKEN_VERSION = 1


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
    def __init__(self, support: SupportHandler) -> None:
        self._support = support
        self._db: Database = support.unit.database
        self._clock = support.clock
        self._trail: AuditTrail = support.audit
        self._pii: PiiGuard = support.pii

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
        if after_seq < 0 or before_seq < 0:
            raise InvalidArgument("seq cursors cannot be negative", "invalid_cursor")
        if after_seq and before_seq:
            raise InvalidArgument("give after_seq or before_seq, not both", "invalid_cursor")
        limit = page_limit(limit)
        esc, _ = await self._escalated(staff, ticket_id)
        scoped = platformaccess.in_tenant(staff, esc.tenant_id)
        store = self._db.for_tenant(esc.tenant_id)
        conv = await store.conversations.get(esc.conversation_id)
        if conv is None or conv.deleted:
            raise ticket_not_found()
        if before_seq:
            found = await store.messages.page_before(conv.id, before_seq, limit + 1, conv.last_seq)
        else:
            found = await store.messages.page_after(conv.id, after_seq, limit + 1, conv.last_seq)
        page = Page(found[:limit], has_more=len(found) > limit)
        await self._trail.record(
            scoped,
            MESSAGES_READ,
            Target("ticket", esc.ticket_id),
            after={"messages": str(len(page.messages))},
            conversation_id=esc.conversation_id,
        )
        return MessagesPage(esc.tenant_id, esc.conversation_id, page)

    async def reply(self, staff: Caller, ticket_id: str, text: str, client_msg_id: str) -> Sent:
        validate_text(text)
        if not client_msg_id or len(client_msg_id) > MAX_CLIENT_MSG_ID_CHARS:
            raise InvalidArgument(
                f"client_msg_id is required (at most {MAX_CLIENT_MSG_ID_CHARS} characters)",
                "invalid_client_msg_id",
            )
        esc, _ = await self._escalated(staff, ticket_id)
        scoped = platformaccess.in_tenant(staff, esc.tenant_id)
        sent = await self._send(scoped, esc, text, client_msg_id)
        if sent.created:
            await self._trail.record(
                scoped,
                MESSAGE_SENT,
                Target("message", sent.message.id),
                after={"ticket_id": esc.ticket_id},
                conversation_id=esc.conversation_id,
            )
        return sent

    async def transition(self, staff: Caller, ticket_id: str, action: int, note: str) -> spb.Ticket:
        esc, before = await self._escalated(staff, ticket_id)
        scoped = platformaccess.in_tenant(staff, esc.tenant_id)
        after = await self._support.transition(
            scoped, esc.ticket_id, ticketflow.BY_PROTO.get(action, ""), note
        )
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

    async def escalated_conversation(self, staff: Caller, ticket_id: str) -> tuple[str, str]:
        """The tenant and conversation of a ticket still escalated (files.py lets
        staff read its files through it); ``ticket_not_found`` otherwise."""
        esc, _ = await self._escalated(staff, ticket_id)
        return esc.tenant_id, esc.conversation_id

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
        try:
            found = await self._support.visible(scoped, esc.ticket_id)
        except NotFound:
            return None
        ticket = await self._support.view(scoped, found)
        if not ticket.escalated:
            return None
        ticket.tenant_id = esc.tenant_id
        return ticket

    async def _send(self, scoped: Caller, esc: Escalation, text: str, client_msg_id: str) -> Sent:
        """A reply through the support desk's send (the ticket's share of the work in
        the same unit), without a membership: the escalation is the permission."""
        store = self._db.for_tenant(esc.tenant_id)
        conv = await store.conversations.get(esc.conversation_id)
        if conv is None or conv.deleted:
            raise ticket_not_found()
        if conv.archived:
            raise FailedPrecondition("conversation is archived", "conversation_archived")
        screened = await self._pii.screen(scoped, text, None)
        new = NewMessage(
            id=new_id(),
            conversation_id=conv.id,
            sender_id=scoped.user_id,
            sender_name=scoped.display_name,
            kind=pb.MESSAGE_KIND_TEXT,
            text=screened.text,
            client_msg_id=client_msg_id,
            created_at=self._clock.now(),
            thread_root_id="",
            mentions=(),
            mentions_all=False,
            file=None,
            search_terms=textutil.terms(screened.text),
            pii_kinds=screened.flagged,
            sender_role=access.sender_role(scoped),
        )
        try:
            stored = await self._support.send(scoped, new)
        except DuplicateKeyError:
            again = await store.messages.by_client_id(conv.id, scoped.user_id, client_msg_id)
            if again is None:
                raise
            return Sent(again, created=False)
        if stored is None:
            raise ticket_not_found()
        return Sent(stored, created=True)

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

            async def body(
                tx: Transaction, tenant: str = tenant_id, batch: list[AuditEntry] = entries
            ) -> None:
                for audited in batch:
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
