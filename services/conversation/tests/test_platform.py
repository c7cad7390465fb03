"""Platform staff on real SecantusDB: escalated tickets of every tenant and only
those, replies with sender_role super_admin, transitions, and an audit record in
the ticket's tenant for every read and write."""

from __future__ import annotations

import pytest

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import support_pb2 as spb
from confab_core.clock import FakeClock
from confab_core.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from confab_core.identity import (
    PLATFORM_TENANT_ID,
    ROLE_AGENT,
    ROLE_MEMBER,
    ROLE_SUPER_ADMIN,
    ROLE_TENANT_ADMIN,
)
from conversation.handlers.platform import PlatformHandler
from conversation.handlers.support import SupportHandler
from conversation.handlers.unit import UnitOfWork
from conversation.storage.db import Database

from .conftest import TENANT_A, TENANT_B, decode, outbox, user

STAFF = user("pf", PLATFORM_TENANT_ID, ROLE_SUPER_ADMIN)
# Inside a tenant, platform staff act under a reserved id.
STAFF_IN_TENANT = "confab-platform:pf"
MEMBER_A = user("mia", TENANT_A, ROLE_MEMBER)
ADMIN_A = user("root", TENANT_A, ROLE_MEMBER, ROLE_TENANT_ADMIN)
AGENT_A = user("ada", TENANT_A, ROLE_MEMBER, ROLE_AGENT)
MEMBER_B = user("bo", TENANT_B, ROLE_MEMBER)
ADMIN_B = user("root", TENANT_B, ROLE_MEMBER, ROLE_TENANT_ADMIN)

pytestmark = pytest.mark.asyncio


@pytest.fixture
def support(unit: UnitOfWork) -> SupportHandler:
    return SupportHandler(unit)


@pytest.fixture
def platform(support: SupportHandler) -> PlatformHandler:
    return PlatformHandler(support)


async def _audit(db: Database, tenant: str, action: str) -> list[dict[str, object]]:
    cursor = db.db["audit"].find({"tenant_id": tenant, "action": action}).sort("seq", 1)
    return [d async for d in cursor]


async def _escalated(
    support: SupportHandler, requester: object, admin: object, subject: str, priority: int = 0
) -> spb.Ticket:
    opened = await support.open(requester, subject=subject, priority=priority)  # type: ignore[arg-type]
    return await support.escalate(admin, opened.ticket.id, "needs the platform")  # type: ignore[arg-type]


async def test_staff_list_escalated_tickets_of_every_tenant_and_only_those(
    support: SupportHandler, platform: PlatformHandler, db: Database, clock: FakeClock
) -> None:
    quiet = await support.open(MEMBER_A, subject="Not escalated")
    a1 = await _escalated(support, MEMBER_A, ADMIN_A, "A medium")
    clock.advance(60)
    b1 = await _escalated(support, MEMBER_B, ADMIN_B, "B urgent", spb.TICKET_PRIORITY_URGENT)
    clock.advance(60)
    a2 = await _escalated(support, MEMBER_A, ADMIN_A, "A urgent later", spb.TICKET_PRIORITY_URGENT)

    page = await platform.list_tickets(STAFF, include_closed=False, page_token="", limit=0)
    # Urgent first, then the oldest escalation; each names its tenant.
    assert [(t.id, t.tenant_id) for t in page.tickets] == [
        (b1.id, TENANT_B),
        (a2.id, TENANT_A),
        (a1.id, TENANT_A),
    ]
    assert quiet.ticket.id not in {t.id for t in page.tickets}
    assert all(t.escalated and t.subject for t in page.tickets)
    assert page.next_page_token == ""

    first = await platform.list_tickets(STAFF, include_closed=False, page_token="", limit=2)
    assert [t.id for t in first.tickets] == [b1.id, a2.id] and first.next_page_token
    rest = await platform.list_tickets(
        STAFF, include_closed=False, page_token=first.next_page_token, limit=2
    )
    assert [t.id for t in rest.tickets] == [a1.id] and rest.next_page_token == ""
    with pytest.raises(InvalidArgument):
        # A token is bound to the list it came from.
        await platform.list_tickets(
            STAFF, include_closed=True, page_token=first.next_page_token, limit=2
        )
    with pytest.raises(InvalidArgument):
        await platform.list_tickets(STAFF, include_closed=False, page_token="garbage", limit=2)

    # Every ticket shown was audited in its own tenant's chain, as the staff member.
    read_a = await _audit(db, TENANT_A, "platform.ticket_read")
    read_b = await _audit(db, TENANT_B, "platform.ticket_read")
    assert {r["target_id"] for r in read_a} == {a1.id, a2.id}
    assert {r["target_id"] for r in read_b} == {b1.id}
    assert {r["actor_id"] for r in read_a + read_b} == {STAFF_IN_TENANT}
    assert len(read_a) == 2 + 1 + 1 and len(read_b) == 1 + 1


async def test_only_platform_staff_and_only_escalated_tickets(
    support: SupportHandler, platform: PlatformHandler, db: Database
) -> None:
    quiet = await support.open(MEMBER_A, subject="Not escalated")
    loud = await _escalated(support, MEMBER_B, ADMIN_B, "Escalated")
    events_before = len(await outbox(db, quiet.ticket.conversation_id))
    outsiders = [
        ADMIN_A,
        AGENT_A,
        # super_admin inside a tenant is not platform staff.
        user("pf", TENANT_A, ROLE_SUPER_ADMIN),
        user("pf", PLATFORM_TENANT_ID, ROLE_TENANT_ADMIN),
    ]
    for outsider in outsiders:
        with pytest.raises(PermissionDenied):
            await platform.list_tickets(outsider, include_closed=False, page_token="", limit=0)
        with pytest.raises(PermissionDenied):
            await platform.get(outsider, loud.id)
        with pytest.raises(PermissionDenied):
            await platform.reply(outsider, loud.id, "hi", "c1")
    for missing in (quiet.ticket.id, "no-such-ticket"):
        with pytest.raises(NotFound) as err:
            await platform.get(STAFF, missing)
        assert err.value.code == "ticket_not_found"
        with pytest.raises(NotFound):
            await platform.messages(STAFF, missing, after_seq=0, before_seq=0, limit=0)
        with pytest.raises(NotFound):
            await platform.reply(STAFF, missing, "hello", "c1")
        with pytest.raises(NotFound):
            await platform.transition(STAFF, missing, spb.TICKET_ACTION_RESOLVE, "")
    # Nothing was written in tenant A: not a message, not an audit record.
    assert await _audit(db, TENANT_A, "platform.ticket_read") == []
    assert len(await outbox(db, quiet.ticket.conversation_id)) == events_before
    # The re-scoped caller sees no other ticket through the support desk either.
    with pytest.raises(NotFound):
        await support.get(user(STAFF_IN_TENANT, TENANT_A, ROLE_SUPER_ADMIN), quiet.ticket.id)


async def test_staff_read_and_reply_in_the_ticket_conversation(
    support: SupportHandler, platform: PlatformHandler, db: Database
) -> None:
    ticket = await _escalated(support, MEMBER_A, ADMIN_A, "Payout stuck")
    got = await platform.get(STAFF, ticket.id)
    assert got.tenant_id == TENANT_A and got.escalated

    sent = await platform.reply(STAFF, ticket.id, "We are on it", "r1")
    assert sent.created
    message = sent.message
    assert (message.sender_id, message.sender_role) == (STAFF_IN_TENANT, ROLE_SUPER_ADMIN)
    assert message.conversation_id == ticket.conversation_id
    again = await platform.reply(STAFF, ticket.id, "We are on it", "r1")
    assert not again.created and again.message.id == message.id

    # The tenant sees it in the conversation, live and in its history.
    events = [decode(d) for d in await outbox(db, ticket.conversation_id)]
    created = [e.message_created.message for e in events if e.HasField("message_created")]
    assert created[-1].id == message.id and created[-1].sender_role == "super_admin"
    history = await platform.messages(STAFF, ticket.id, after_seq=0, before_seq=0, limit=0)
    assert history.tenant_id == TENANT_A
    assert history.page.messages[-1].text == "We are on it"
    newest = await platform.messages(STAFF, ticket.id, after_seq=0, before_seq=1_000, limit=1)
    assert [m.id for m in newest.page.messages] == [message.id] and newest.page.has_more
    # The first staff answer counts as the ticket's first response.
    after = await platform.get(STAFF, ticket.id)
    assert after.HasField("first_response_at")

    for bad_text, bad_id in (("", "r2"), ("   ", "r2"), ("x" * 20_000, "r2"), ("ok", "")):
        with pytest.raises(InvalidArgument):
            await platform.reply(STAFF, ticket.id, bad_text, bad_id)
    with pytest.raises(InvalidArgument):
        await platform.messages(STAFF, ticket.id, after_seq=1, before_seq=2, limit=0)

    sent_records = await _audit(db, TENANT_A, "platform.message_sent")
    assert [(r["target_id"], r["actor_id"]) for r in sent_records] == [
        (message.id, STAFF_IN_TENANT)
    ]
    assert len(await _audit(db, TENANT_A, "platform.messages_read")) == 2


async def test_staff_transition_an_escalated_ticket(
    support: SupportHandler, platform: PlatformHandler, db: Database
) -> None:
    ticket = await _escalated(support, MEMBER_A, ADMIN_A, "Refund")
    resolved = await platform.transition(STAFF, ticket.id, spb.TICKET_ACTION_RESOLVE, "fixed")
    assert resolved.status == spb.TICKET_STATUS_RESOLVED and resolved.tenant_id == TENANT_A
    with pytest.raises(FailedPrecondition) as err:
        await platform.transition(STAFF, ticket.id, spb.TICKET_ACTION_RESOLVE, "")
    assert err.value.code == "invalid_transition"
    with pytest.raises(InvalidArgument):
        await platform.transition(STAFF, ticket.id, 99, "")
    [record] = await _audit(db, TENANT_A, "platform.ticket_transition")
    assert record["actor_id"] == STAFF_IN_TENANT and record["target_id"] == ticket.id
    # Resolved escalations leave the default list, not the full one.
    open_only = await platform.list_tickets(STAFF, include_closed=False, page_token="", limit=0)
    assert ticket.id not in {t.id for t in open_only.tickets}
    everything = await platform.list_tickets(STAFF, include_closed=True, page_token="", limit=0)
    assert ticket.id in {t.id for t in everything.tickets}
    # The system message names the staff member's change in the tenant's conversation.
    events = [decode(d) for d in await outbox(db, ticket.conversation_id)]
    systems = [
        e.message_created.message
        for e in events
        if e.HasField("message_created")
        and e.message_created.message.kind == pb.MESSAGE_KIND_SYSTEM
    ]
    assert systems[-1].text


async def test_a_ticket_opened_straight_to_the_platform_reaches_staff(
    support: SupportHandler, platform: PlatformHandler
) -> None:
    opened = await support.open(ADMIN_A, subject="Billing API down", to_platform=True)
    assert opened.ticket.escalated and opened.ticket.platform
    page = await platform.list_tickets(STAFF, include_closed=False, page_token="", limit=0)
    [seen] = [t for t in page.tickets if t.id == opened.ticket.id]
    assert seen.platform and seen.tenant_id == TENANT_A
