"""The support bot's lifecycle on real SecantusDB: which agent serves a
conversation, tickets that start with the tenant's support agent, the audited
HANDOFF, and the bot's silence once humans have the ticket."""

from __future__ import annotations

import asyncio
from datetime import UTC
from typing import Any

import pytest

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import support_pb2 as spb
from confab_core.clock import FakeClock
from confab_core.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from confab_core.identity import (
    BOT_USER_ID,
    ROLE_AGENT,
    ROLE_MEMBER,
    ROLE_SERVICE,
    ROLE_TENANT_ADMIN,
    SYSTEM_USER_ID,
    Caller,
    agent_user_id,
)
from conversation import convert
from conversation.handlers import ticketflow
from conversation.handlers.audit import AuditTrail
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.messages import MessageHandler
from conversation.handlers.staff import StaffHandler
from conversation.handlers.support import HANDOFF_TEXT, SupportHandler
from conversation.handlers.support_admin import SupportAdminHandler
from conversation.handlers.tenant_settings import SettingsHandler
from conversation.handlers.unit import UnitOfWork
from conversation.storage.agents import TENANT_SETTINGS_COLLECTION
from conversation.storage.db import Database

from .conftest import TENANT_A, TENANT_B, create, decode, outbox, send, snapshot, user

MEMBER = user("mia")
AGENT = user("ada", TENANT_A, ROLE_MEMBER, ROLE_AGENT)
ADMIN = user("root", TENANT_A, ROLE_MEMBER, ROLE_TENANT_ADMIN)
STRANGER = user("sam", TENANT_B, ROLE_MEMBER, ROLE_AGENT)

pytestmark = pytest.mark.asyncio


def bot(agent_id: str, tenant: str = TENANT_A) -> Caller:
    """The bot service acting as one of the tenant's agents."""
    return Caller(tenant, agent_user_id(agent_id), frozenset({ROLE_SERVICE}), agent_id.title())


HELPER = bot("helper")

AGENTS: list[dict[str, Any]] = [
    {"id": "helper", "display_name": "Helper", "role": "support", "enabled": True},
    {"id": "sage", "display_name": "Sage", "role": "assistant", "enabled": True},
    {"id": "poet", "display_name": "Poet", "role": "pickable", "enabled": True},
    {"id": "ghost", "display_name": "Ghost", "role": "pickable", "enabled": False},
]


async def set_agents(db: Database, tenant: str, agents: list[dict[str, Any]]) -> None:
    """What the settings handler writes (its agents section, plain fields)."""
    await db.db[TENANT_SETTINGS_COLLECTION].update_one(
        {"tenant_id": tenant}, {"$set": {"agents": agents}}, upsert=True
    )


@pytest.fixture
def support(unit: UnitOfWork, conversations: ConversationHandler) -> SupportHandler:
    handler = SupportHandler(unit)
    conversations.tickets = handler
    return handler


@pytest.fixture
def messages(unit: UnitOfWork, support: SupportHandler) -> MessageHandler:
    return MessageHandler(unit, tickets=support)


async def texts(db: Database, conversation_id: str) -> list[str]:
    found = await db.for_tenant(TENANT_A).messages.page_after(conversation_id, 0, 100, 100)
    return [convert.message(m).text for m in found]


# ---- which agent serves


async def test_assistant_conversations_are_with_the_named_or_the_assistant_agent(
    db: Database, conversations: ConversationHandler
) -> None:
    await set_agents(db, TENANT_A, AGENTS)
    default = await create(conversations, MEMBER, pb.CONVERSATION_KIND_AI_ASSISTANT)
    assert default.conversation.agent_id == "sage"
    picked = await conversations.create(
        MEMBER,
        kind=pb.CONVERSATION_KIND_AI_ASSISTANT,
        title="",
        description="",
        member_ids=[],
        context=None,
        agent_id="poet",
    )
    assert picked.conversation.agent_id == "poet"
    members = await db.for_tenant(TENANT_A).members.list_for_conversation(picked.conversation.id)
    assert sorted(m.user_id for m in members) == sorted(["mia", agent_user_id("poet")])
    stored = await db.for_tenant(TENANT_A).conversations.get(picked.conversation.id)
    assert stored is not None and stored.agent_id == "poet"


async def test_a_tenant_without_agents_keeps_the_legacy_bot(
    db: Database, conversations: ConversationHandler
) -> None:
    # Tenant B has no settings: today's behaviour, and A's agents are not B's.
    await set_agents(db, TENANT_A, AGENTS)
    created = await create(conversations, user("bo", TENANT_B), pb.CONVERSATION_KIND_AI_ASSISTANT)
    assert created.conversation.agent_id == ""
    members = await db.for_tenant(TENANT_B).members.list_for_conversation(created.conversation.id)
    assert sorted(m.user_id for m in members) == sorted(["bo", BOT_USER_ID])


async def test_unknown_disabled_or_support_agents_are_refused(
    db: Database, conversations: ConversationHandler
) -> None:
    await set_agents(db, TENANT_A, AGENTS)
    before = await snapshot(db)
    for agent_id, kind, code in [
        ("nobody", pb.CONVERSATION_KIND_AI_ASSISTANT, "unknown_agent"),
        ("ghost", pb.CONVERSATION_KIND_AI_ASSISTANT, "unknown_agent"),
        ("helper", pb.CONVERSATION_KIND_AI_ASSISTANT, "unknown_agent"),
        ("poet", pb.CONVERSATION_KIND_GROUP, "agent_not_allowed"),
    ]:
        with pytest.raises(InvalidArgument) as err:
            await conversations.create(
                MEMBER,
                kind=kind,
                title="",
                description="",
                member_ids=[],
                context=None,
                agent_id=agent_id,
            )
        assert err.value.code == code
    # Another tenant cannot name this tenant's agents.
    with pytest.raises(InvalidArgument) as err:
        await conversations.create(
            user("bo", TENANT_B),
            kind=pb.CONVERSATION_KIND_AI_ASSISTANT,
            title="",
            description="",
            member_ids=[],
            context=None,
            agent_id="poet",
        )
    assert err.value.code == "unknown_agent"
    assert await snapshot(db) == before


async def test_only_the_conversations_own_agent_posts_in_it(
    db: Database, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    await set_agents(db, TENANT_A, AGENTS)
    created = await create(conversations, MEMBER, pb.CONVERSATION_KIND_AI_ASSISTANT)
    cid = created.conversation.id
    reply = await send(messages, bot("sage"), cid, "hi", kind=pb.MESSAGE_KIND_BOT)
    assert reply.message.sender_role == "bot"
    for other in (bot("poet"), Caller(TENANT_A, BOT_USER_ID, frozenset({ROLE_SERVICE}))):
        with pytest.raises(PermissionDenied):
            await send(messages, other, cid, "me too", kind=pb.MESSAGE_KIND_BOT)


# ---- tickets start with the bot


async def test_a_new_ticket_starts_with_the_support_agent(
    db: Database, support: SupportHandler
) -> None:
    await set_agents(db, TENANT_A, AGENTS)
    opened = await support.open(MEMBER, subject="Where is my parcel?")
    ticket = opened.ticket
    assert ticket.status == spb.TICKET_STATUS_BOT
    assert ticket.agent_id == "helper"
    assert opened.conversation.agent_id == "helper"
    members = await db.for_tenant(TENANT_A).members.list_for_conversation(ticket.conversation_id)
    assert sorted(m.user_id for m in members) == sorted(["mia", agent_user_id("helper")])
    assert "the support bot answers first" in (await texts(db, ticket.conversation_id))[0]


async def test_without_an_enabled_support_agent_tickets_queue(
    db: Database, support: SupportHandler
) -> None:
    await set_agents(
        db,
        TENANT_A,
        [{"id": "helper", "display_name": "Helper", "role": "support", "enabled": False}],
    )
    opened = await support.open(MEMBER, subject="Queue me")
    assert opened.ticket.status == spb.TICKET_STATUS_QUEUED
    assert opened.ticket.agent_id == ""


# ---- the handoff


async def test_handoff_queues_the_ticket_with_its_reason_and_summary(
    db: Database, support: SupportHandler, unit: UnitOfWork, clock: FakeClock
) -> None:
    await set_agents(db, TENANT_A, AGENTS)
    opened = await support.open(MEMBER, subject="Refund", text="I want my money back")
    tid, cid = opened.ticket.id, opened.ticket.conversation_id
    clock.advance(60)
    handed = await support.transition(
        HELPER,
        tid,
        ticketflow.HANDOFF,
        handoff_reason=spb.HANDOFF_REASON_FORBIDDEN_TOPIC,
        handoff_summary="Wants a refund for order 12.",
    )
    assert handed.status == spb.TICKET_STATUS_QUEUED
    assert handed.handoff_reason == spb.HANDOFF_REASON_FORBIDDEN_TOPIC
    assert handed.handoff_summary == "Wants a refund for order 12."
    # The SLA clocks start: it entered the queue now, not when it was opened.
    queued_at = handed.queued_at.ToDatetime(tzinfo=UTC)
    assert queued_at > opened.ticket.queued_at.ToDatetime(tzinfo=UTC)
    assert abs((queued_at - clock.now()).total_seconds()) < 0.001
    assert handed.handed_off_at == handed.queued_at
    assert (await texts(db, cid))[-1] == HANDOFF_TEXT
    events = [decode(d) for d in await outbox(db, cid)]
    tail = [e.WhichOneof("payload") for e in events[-3:]]
    assert tail == ["message_created", "ticket_updated", "queue_updated"]
    message = events[-3].message_created.message
    assert (message.sender_id, message.text) == (SYSTEM_USER_ID, HANDOFF_TEXT)
    assert events[-2].ticket_updated.change == "handoff"
    assert events[-2].ticket_updated.previous_status == spb.TICKET_STATUS_BOT
    assert events[-1].queue_updated.change == "added"
    trail = AuditTrail(db, unit.clock, unit.locks)
    (record,) = [
        r for r in await trail.query(ADMIN, limit=100) if r.entry.action == "ticket.handoff"
    ]
    assert record.entry.actor_id == agent_user_id("helper")
    assert record.entry.after == {"status": "queued", "reason": "forbidden_topic"}
    # The summary is the requester's story: sealed at rest like the subject.
    raw = await db.db["tickets"].find_one({"_id": tid})
    assert raw is not None and isinstance(raw["handoff_summary"], bytes)


async def test_a_second_handoff_is_a_quiet_success(db: Database, support: SupportHandler) -> None:
    await set_agents(db, TENANT_A, AGENTS)
    opened = await support.open(MEMBER, subject="Twice")
    tid, cid = opened.ticket.id, opened.ticket.conversation_id
    first = await support.transition(
        HELPER, tid, ticketflow.HANDOFF, handoff_reason=spb.HANDOFF_REASON_USER_ASKED
    )
    before = await snapshot(db)
    again = await support.transition(
        HELPER, tid, ticketflow.HANDOFF, handoff_reason=spb.HANDOFF_REASON_USER_ASKED
    )
    assert again.version == first.version
    assert await snapshot(db) == before
    assert (await texts(db, cid)).count(HANDOFF_TEXT) == 1
    # Even once an agent has it, a redelivered handoff changes nothing.
    await support.claim(AGENT, tid)
    claimed = await support.transition(
        HELPER, tid, ticketflow.HANDOFF, handoff_reason=spb.HANDOFF_REASON_USER_ASKED
    )
    assert claimed.status == spb.TICKET_STATUS_ASSIGNED


async def test_agents_hand_off_too_and_bad_handoffs_write_nothing(
    db: Database, support: SupportHandler
) -> None:
    await set_agents(db, TENANT_A, AGENTS)
    opened = await support.open(MEMBER, subject="Bad input")
    tid = opened.ticket.id
    before = await snapshot(db)
    reason = spb.HANDOFF_REASON_OFF_TOPIC
    for kwargs, code in [
        ({}, "handoff_reason_required"),
        ({"handoff_reason": 99}, "invalid_handoff_reason"),
        ({"handoff_reason": reason, "handoff_summary": "s" * 2001}, "handoff_summary_too_long"),
    ]:
        with pytest.raises(InvalidArgument) as err:
            await support.transition(HELPER, tid, ticketflow.HANDOFF, **kwargs)  # type: ignore[arg-type]
        assert err.value.code == code
    with pytest.raises(InvalidArgument) as err:
        await support.transition(AGENT, tid, ticketflow.RESOLVE, handoff_reason=reason)
    assert err.value.code == "handoff_only"
    for caller in (MEMBER, bot("sage"), Caller(TENANT_A, BOT_USER_ID, frozenset({ROLE_SERVICE}))):
        with pytest.raises(PermissionDenied):
            await support.transition(caller, tid, ticketflow.HANDOFF, handoff_reason=reason)
    with pytest.raises(NotFound):
        await support.transition(STRANGER, tid, ticketflow.HANDOFF, handoff_reason=reason)
    assert await snapshot(db) == before
    handed = await support.transition(AGENT, tid, ticketflow.HANDOFF, handoff_reason=reason)
    assert handed.status == spb.TICKET_STATUS_QUEUED
    # A ticket that never was with the bot cannot be handed off.
    await set_agents(db, TENANT_A, [])
    queued = await support.open(MEMBER, subject="Humans only")
    with pytest.raises(FailedPrecondition) as refused:
        await support.transition(AGENT, queued.ticket.id, ticketflow.HANDOFF, handoff_reason=reason)
    assert refused.value.code == "invalid_transition"


# ---- the bot's silence


async def test_the_bot_is_silent_after_the_handoff_but_redelivery_is_idempotent(
    db: Database, support: SupportHandler, messages: MessageHandler
) -> None:
    await set_agents(db, TENANT_A, AGENTS)
    opened = await support.open(MEMBER, subject="Silence", text="hello?")
    tid, cid = opened.ticket.id, opened.ticket.conversation_id
    answer = await send(messages, HELPER, cid, "Hi, I can help", "reply-1", pb.MESSAGE_KIND_BOT)
    assert answer.created and answer.message.sender_role == "bot"
    # Another agent's bot never speaks in this ticket.
    with pytest.raises(PermissionDenied):
        await send(messages, bot("sage"), cid, "me too", kind=pb.MESSAGE_KIND_BOT)
    await support.transition(
        HELPER, tid, ticketflow.HANDOFF, handoff_reason=spb.HANDOFF_REASON_USER_ASKED
    )
    # The member keeps writing; the bot's new replies are refused.
    await send(messages, MEMBER, cid, "are you there?")
    before = await snapshot(db)
    with pytest.raises(FailedPrecondition) as err:
        await send(messages, HELPER, cid, "still me", "reply-2", pb.MESSAGE_KIND_BOT)
    assert err.value.code == "ticket_not_with_bot"
    with pytest.raises(FailedPrecondition) as err:
        await send(
            messages,
            HELPER,
            cid,
            "in a thread",
            kind=pb.MESSAGE_KIND_BOT,
            thread_root_id=answer.message.id,
        )
    assert err.value.code == "ticket_not_with_bot"
    # A redelivered reply stored before the handoff is that reply, not a refusal.
    again = await send(messages, HELPER, cid, "Hi, I can help", "reply-1", pb.MESSAGE_KIND_BOT)
    assert not again.created and again.message.id == answer.message.id
    assert await snapshot(db) == before


# ---- who is told


async def test_ticket_staff_is_the_team_or_every_agent_for_services_only(
    db: Database, support: SupportHandler, unit: UnitOfWork, clock: FakeClock
) -> None:
    store = db.for_tenant(TENANT_A)
    for uid, roles in (
        ("ada", (ROLE_AGENT,)),
        ("abe", (ROLE_AGENT,)),
        ("root", (ROLE_TENANT_ADMIN,)),
    ):
        await store.users.upsert(uid, uid.title(), f"{uid}@a.example", clock.now(), roles)
    await store.users.upsert("mia", "Mia", "mia@a.example", clock.now(), (ROLE_MEMBER,))
    staff = StaffHandler(db)
    service = Caller(TENANT_A, "confab-notification", frozenset({ROLE_SERVICE}))
    opened = await support.open(MEMBER, subject="Who helps?")
    everyone = await staff.ticket_staff(service, opened.ticket.id)
    assert [(p.user_id, p.email) for p in everyone] == [
        ("abe", "abe@a.example"),
        ("ada", "ada@a.example"),
        ("root", "root@a.example"),
    ]
    trail = AuditTrail(db, unit.clock)
    desk = SupportAdminHandler(db, unit.clock, trail, SettingsHandler(db, unit.clock, trail))
    team = await desk.create_team(ADMIN, "Tier 1", ["ada"])
    await support.assign(ADMIN, opened.ticket.id, "", team.id)
    assert [p.user_id for p in await staff.ticket_staff(service, opened.ticket.id)] == ["ada"]
    with pytest.raises(PermissionDenied):
        await staff.ticket_staff(AGENT, opened.ticket.id)
    for tenant, ticket_id in (
        (TENANT_B, opened.ticket.id),
        (TENANT_A, "nope"),
        (TENANT_A, "x" * 500),
    ):
        with pytest.raises(NotFound) as err:
            await staff.ticket_staff(
                Caller(tenant, "confab-notification", frozenset({ROLE_SERVICE})), ticket_id
            )
        assert err.value.code == "ticket_not_found"


async def test_a_bot_send_racing_the_handoff_lands_before_it_or_not_at_all(
    db: Database, unit: UnitOfWork, support: SupportHandler, messages: MessageHandler
) -> None:
    """Two replicas: one hands off while the other stores the bot's reply."""
    await set_agents(db, TENANT_A, AGENTS)
    there = MessageHandler(UnitOfWork(db, unit.clock, asyncio.Event()), tickets=support)
    for round_ in range(4):
        opened = await support.open(MEMBER, subject=f"Race {round_}")
        tid, cid = opened.ticket.id, opened.ticket.conversation_id
        sent, handed = await asyncio.gather(
            send(there, HELPER, cid, "an answer", f"r{round_}", pb.MESSAGE_KIND_BOT),
            support.transition(
                HELPER, tid, ticketflow.HANDOFF, handoff_reason=spb.HANDOFF_REASON_USER_ASKED
            ),
            return_exceptions=True,
        )
        assert isinstance(handed, spb.Ticket), handed
        found = await db.for_tenant(TENANT_A).messages.page_after(cid, 0, 100, 100)
        order = [m.text for m in found]
        if isinstance(sent, BaseException):
            assert isinstance(sent, FailedPrecondition) and sent.code == "ticket_not_with_bot"
            assert "an answer" not in order
        else:
            assert order.index("an answer") < order.index(HANDOFF_TEXT)
