"""Tickets on real SecantusDB: open, transitions and their system messages in
one transaction, claim races, the queue's order and paging, visibility."""

from __future__ import annotations

import asyncio

import pytest

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import support_pb2 as spb
from confab_core.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from confab_core.identity import ROLE_AGENT, ROLE_MEMBER, ROLE_TENANT_ADMIN, SYSTEM_USER_ID
from conversation import convert
from conversation.handlers import ticketflow
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.messages import MessageHandler
from conversation.handlers.support import SupportHandler
from conversation.handlers.unit import UnitOfWork
from conversation.storage.db import Database

from .conftest import TENANT_A, TENANT_B, create, decode, outbox, send, user

MEMBER = user("mia")
OTHER = user("otto")
AGENT = user("ada", TENANT_A, ROLE_MEMBER, ROLE_AGENT)
AGENT2 = user("abe", TENANT_A, ROLE_MEMBER, ROLE_AGENT)
ADMIN = user("root", TENANT_A, ROLE_MEMBER, ROLE_TENANT_ADMIN)
STRANGER = user("mia", TENANT_B, ROLE_MEMBER, ROLE_AGENT)

pytestmark = pytest.mark.asyncio


@pytest.fixture
def support(unit: UnitOfWork) -> SupportHandler:
    return SupportHandler(unit)


async def _messages(db: Database, conversation_id: str) -> list[pb.Message]:
    found = await db.for_tenant(TENANT_A).messages.page_after(conversation_id, 0, 100, 100)
    return [convert.message(m) for m in found]


async def test_open_queues_the_ticket_with_a_system_message(
    support: SupportHandler, db: Database
) -> None:
    opened = await support.open(MEMBER, subject="Printer on fire", text="help!")
    ticket = opened.ticket
    assert ticket.status == spb.TICKET_STATUS_QUEUED
    assert ticket.requester_id == "mia"
    assert ticket.priority == spb.TICKET_PRIORITY_MEDIUM
    assert opened.conversation.kind == pb.CONVERSATION_KIND_SUPPORT
    events = [decode(d) for d in await outbox(db, ticket.conversation_id)]
    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds == [
        "conversation_created",
        "message_created",
        "message_created",
        "ticket_updated",
        "queue_updated",
    ]
    assert [e.event_seq for e in events] == [1, 2, 3, 4, 5]
    system = events[1].message_created.message
    assert system.kind == pb.MESSAGE_KIND_SYSTEM
    assert system.sender_id == SYSTEM_USER_ID
    assert system.sender_role == "system"
    assert "Mia opened the ticket" in system.text
    assert events[2].message_created.message.sender_role == "member"


async def test_claim_race_has_one_winner(support: SupportHandler) -> None:
    opened = await support.open(MEMBER, subject="Race")
    results = await asyncio.gather(
        support.claim(AGENT, opened.ticket.id),
        support.claim(AGENT2, opened.ticket.id),
        return_exceptions=True,
    )
    wins = [r for r in results if isinstance(r, spb.Ticket)]
    losses = [r for r in results if isinstance(r, FailedPrecondition)]
    assert len(wins) == 1 and len(losses) == 1
    assert losses[0].code == "already_assigned"
    assert wins[0].status == spb.TICKET_STATUS_ASSIGNED


async def test_visibility(support: SupportHandler) -> None:
    opened = await support.open(MEMBER, subject="Mine")
    tid = opened.ticket.id
    assert (await support.get(AGENT, tid)).id == tid
    for caller in (OTHER, STRANGER):
        with pytest.raises(NotFound) as err:
            await support.get(caller, tid)
        assert err.value.code == "ticket_not_found"


async def test_illegal_transition_is_refused(support: SupportHandler) -> None:
    opened = await support.open(MEMBER, subject="x")
    with pytest.raises(FailedPrecondition) as err:
        await support.transition(AGENT, opened.ticket.id, ticketflow.RESUME)
    assert err.value.code == "invalid_transition"
    with pytest.raises(PermissionDenied):
        await support.assign(AGENT, opened.ticket.id, "ada", "")
    with pytest.raises(InvalidArgument):
        await support.open(MEMBER, subject="")


@pytest.fixture
def wired(unit: UnitOfWork, support: SupportHandler) -> tuple[MessageHandler, ConversationHandler]:
    conversations = ConversationHandler(unit)
    conversations.tickets = support
    return MessageHandler(unit, tickets=support), conversations


async def test_staff_answer_sets_first_response_and_requester_resumes(
    support: SupportHandler, wired: tuple[MessageHandler, ConversationHandler], db: Database
) -> None:
    messages, _ = wired
    opened = await support.open(MEMBER, subject="Slow")
    tid, cid = opened.ticket.id, opened.ticket.conversation_id
    # Any agent answers without being added; the answer is marked as staff.
    sent = await send(messages, AGENT2, cid, "looking")
    assert sent.message.sender_role == "agent"
    ticket = await support.get(AGENT, tid)
    assert ticket.HasField("first_response_at")
    await support.claim(AGENT, tid)
    await support.transition(AGENT, tid, ticketflow.WAIT_ON_USER)
    await send(messages, MEMBER, cid, "here you go")
    ticket = await support.get(AGENT, tid)
    assert ticket.status == spb.TICKET_STATUS_ASSIGNED
    events = [decode(d) for d in await outbox(db, cid)]
    updates = [e.ticket_updated.change for e in events if e.HasField("ticket_updated")]
    assert updates == ["opened", "first_response", "assigned", "status", "status"]
    texts = [m.text for m in await _messages(db, cid) if m.kind == pb.MESSAGE_KIND_SYSTEM]
    assert texts[-1] == "Mia replied; the ticket is active again"
    assert texts[-2] == "Ada is waiting on the requester"
    # Event seqs stay gapless through the extra work of support sends.
    assert [e.event_seq for e in events] == list(range(1, len(events) + 1))


async def test_create_conversation_of_kind_support_opens_a_ticket(
    support: SupportHandler, wired: tuple[MessageHandler, ConversationHandler]
) -> None:
    _, conversations = wired
    created = await create(conversations, MEMBER, pb.CONVERSATION_KIND_SUPPORT, title="Login")
    ticket = await support.of_conversation(MEMBER, created.conversation.id)
    assert ticket.subject == "Login"
    assert ticket.status == spb.TICKET_STATUS_QUEUED
    with pytest.raises(NotFound):
        await support.of_conversation(OTHER, created.conversation.id)
