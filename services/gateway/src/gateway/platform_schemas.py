"""JSON shapes of platform staff's routes: escalated tickets of many tenants."""

from __future__ import annotations

from pydantic import BaseModel

from gateway.schemas import Id, MessageOut, Strict, Text
from gateway.support_schemas import TicketOut


class EscalatedTicketOut(TicketOut):
    # Platform staff see tickets of many tenants: each names its own.
    tenant_id: str


class EscalatedTicketPageOut(BaseModel):
    tickets: list[EscalatedTicketOut]
    # Pass as ?cursor= for the next page; null on the last page.
    next_cursor: str | None = None


class EscalatedTicketEnvelopeOut(BaseModel):
    ticket: EscalatedTicketOut


class EscalatedMessagesOut(BaseModel):
    tenant_id: str
    conversation_id: str
    messages: list[MessageOut]
    has_more: bool


class PlatformReplyIn(Strict):
    text: Text
    client_msg_id: Id
