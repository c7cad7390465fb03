"""Tickets on real SecantusDB: open, transitions and their system messages in
one transaction, claim races, the queue's order and paging, visibility."""

from __future__ import annotations

import asyncio

import pytest

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import support_pb2 as spb
from confab_core.clock import FakeClock
from confab_core.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from confab_core.identity import ROLE_AGENT, ROLE_MEMBER, ROLE_TENANT_ADMIN, SYSTEM_USER_ID
from conversation import convert
from conversation.handlers import ticketflow
from conversation.handlers.audit import AuditTrail
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.messages import MessageHandler
from conversation.handlers.support import SupportHandler, system_caller
from conversation.handlers.support_admin import SupportAdminHandler
from conversation.handlers.support_hooks import TicketChange, TicketMessage
from conversation.handlers.tenant_settings import SettingsHandler
from conversation.handlers.unit import UnitOfWork
from conversation.storage.audit import AuditRecord
from conversation.storage.db import Database, TenantStore
from conversation.storage.settings import SettingsRecord

from .conftest import TENANT_A, TENANT_B, create, decode, outbox, send, snapshot, user

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
    assert "The requester opened the ticket" in system.text
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
    _, added = await messages.react(
        AGENT2, conversation_id=cid, message_id=sent.message.id, emoji="eyes"
    )
    assert added
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
    assert texts[-1] == "The requester replied; the ticket is active again"
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


class Exploding:
    """An observer whose write fails: the whole change must roll back with it."""

    async def on_change(self, store: TenantStore, change: TicketChange) -> None:
        raise RuntimeError("observer failed")

    async def on_message(self, store: TenantStore, message: TicketMessage) -> None:
        return None

    async def decorate(self, store: TenantStore, tickets: list[spb.Ticket]) -> None:
        return None

    def after_commit(self, tenant_id: str, changes: list[TicketChange]) -> None:
        raise AssertionError("nothing was committed")


class Recording:
    def __init__(self) -> None:
        self.changes: list[str] = []
        self.messages: list[str] = []
        self.committed: list[str] = []

    async def on_change(self, store: TenantStore, change: TicketChange) -> None:
        self.changes.append(change.action)

    async def on_message(self, store: TenantStore, message: TicketMessage) -> None:
        self.messages.append(message.sender_role)

    async def decorate(self, store: TenantStore, tickets: list[spb.Ticket]) -> None:
        for t in tickets:
            t.sla.status = spb.SLA_STATUS_ACTIVE

    def after_commit(self, tenant_id: str, changes: list[TicketChange]) -> None:
        self.committed += [c.action for c in changes]


async def test_a_change_its_system_message_and_events_commit_together(
    unit: UnitOfWork, db: Database
) -> None:
    opened = await SupportHandler(unit).open(MEMBER, subject="Atomic")
    before = await snapshot(db, tenant=TENANT_A)
    tickets_before = [d async for d in db.db["tickets"].find({})]
    failing = SupportHandler(unit, observers=[Exploding()])
    with pytest.raises(RuntimeError):
        await failing.claim(AGENT, opened.ticket.id)
    assert await snapshot(db, tenant=TENANT_A) == before
    assert [d async for d in db.db["tickets"].find({})] == tickets_before


async def test_observers_see_changes_and_messages_and_decorate_views(
    unit: UnitOfWork,
) -> None:
    seen = Recording()
    support = SupportHandler(unit, observers=[seen])
    messages = MessageHandler(unit, tickets=support)
    opened = await support.open(MEMBER, subject="Watched", text="hi")
    assert opened.ticket.sla.status == spb.SLA_STATUS_ACTIVE
    await send(messages, AGENT, opened.ticket.conversation_id, "hello")
    await support.claim(AGENT, opened.ticket.id)
    assert seen.changes == ["opened", "submit", "claim"]
    assert seen.committed == ["opened", "submit", "claim"]
    assert seen.messages == ["system", "member", "agent", "system"]


async def test_the_queue_orders_by_priority_then_waiting_time_and_pages(
    support: SupportHandler, clock: FakeClock
) -> None:
    order = []
    for subject, priority in [
        ("low-old", spb.TICKET_PRIORITY_LOW),
        ("urgent-new", spb.TICKET_PRIORITY_URGENT),
        ("medium", spb.TICKET_PRIORITY_MEDIUM),
        ("urgent-old", spb.TICKET_PRIORITY_URGENT),
        ("high", spb.TICKET_PRIORITY_HIGH),
    ]:
        clock.advance(60)
        order.append((await support.open(MEMBER, subject=subject, priority=priority)).ticket)
    # urgent-old waited longest among the urgent ones: it entered the queue again.
    clock.advance(60)
    await support.claim(AGENT, order[1].id)
    await support.transition(AGENT, order[1].id, ticketflow.RELEASE)
    seen, token = [], ""
    while True:
        page = await support.queue(AGENT, limit=2, page_token=token)
        seen += [t.subject for t in page.tickets]
        if not page.next_page_token:
            break
        token = page.next_page_token
    assert seen == ["urgent-old", "urgent-new", "high", "medium", "low-old"]
    with pytest.raises(InvalidArgument) as err:
        await support.queue(AGENT2, limit=2, page_token=token or "bm90LWEtdG9rZW4")
    assert err.value.code == "invalid_cursor"
    with pytest.raises(PermissionDenied):
        await support.queue(MEMBER)
    mine = await support.queue(AGENT, assignee="me", statuses=[spb.TICKET_STATUS_ASSIGNED])
    assert mine.tickets == []
    urgent = await support.queue(AGENT, priority=spb.TICKET_PRIORITY_URGENT)
    assert [t.subject for t in urgent.tickets] == ["urgent-old", "urgent-new"]
    page = await support.mine(MEMBER, limit=3)
    assert [t.subject for t in page.tickets] == ["high", "urgent-old", "medium"]
    rest = await support.mine(MEMBER, limit=3, page_token=page.next_page_token)
    assert [t.subject for t in rest.tickets] == ["urgent-new", "low-old"]
    assert (await support.mine(OTHER)).tickets == []


async def test_admins_assign_and_transfer_to_agents_and_teams(
    support: SupportHandler, unit: UnitOfWork, db: Database
) -> None:
    trail = AuditTrail(db, unit.clock, unit.locks)
    admin = SupportAdminHandler(db, unit.clock, trail, SettingsHandler(db, unit.clock, trail))
    team = await admin.create_team(ADMIN, "Tier 1", ["ada", "abe"])
    opened = await support.open(MEMBER, subject="Route me")
    tid, cid = opened.ticket.id, opened.ticket.conversation_id
    with pytest.raises(PermissionDenied):
        await support.assign(AGENT, tid, "ada", "")
    with pytest.raises(NotFound) as nf:
        await support.assign(ADMIN, tid, "ada", "no-such-team")
    assert nf.value.code == "team_not_found"
    with pytest.raises(InvalidArgument) as bad:
        await support.assign(ADMIN, tid, "zed", team.id)
    assert bad.value.code == "assignee_not_in_team"
    assigned = await support.assign(ADMIN, tid, "ada", team.id)
    assert assigned is not None and assigned.assignee_id == "ada"
    assert assigned.team_id == team.id and assigned.status == spb.TICKET_STATUS_ASSIGNED
    # The assignee became a member; a transfer to a team puts it back in the queue.
    assert await db.for_tenant(TENANT_A).members.get(cid, "ada") is not None
    moved = await support.assign(ADMIN, tid, "", team.id)
    assert moved is not None and moved.status == spb.TICKET_STATUS_QUEUED
    assert moved.assignee_id == ""
    # The auto-assigner only takes a still unassigned, queued ticket.
    system = system_caller(TENANT_A)
    assert (await support.assign(system, tid, "abe", "", auto=True)) is not None
    assert (await support.assign(system, tid, "ada", "", auto=True)) is None
    events = [decode(d) for d in await outbox(db, cid)]
    assigned_events = [e.ticket_assigned for e in events if e.HasField("ticket_assigned")]
    assert [(a.ticket.assignee_id, a.previous_assignee_id) for a in assigned_events] == [
        ("ada", ""),
        ("abe", ""),
    ]
    texts = [m.text for m in await _messages(db, cid) if m.kind == pb.MESSAGE_KIND_SYSTEM]
    assert "Root assigned the ticket to ada" in texts
    assert texts[-1] == "The ticket was assigned to abe"
    page = await admin_audit(db, unit)
    assert [r.entry.action for r in page].count("ticket.assign") == 2
    with pytest.raises(NotFound):
        await support.assign(user("root", TENANT_B, ROLE_TENANT_ADMIN), tid, "ada", "")


async def admin_audit(db: Database, unit: UnitOfWork) -> list[AuditRecord]:
    trail = AuditTrail(db, unit.clock, unit.locks)
    return await trail.query(ADMIN, limit=100)


async def test_escalation_flags_the_ticket_and_writes_the_index(
    support: SupportHandler, db: Database
) -> None:
    opened = await support.open(MEMBER, subject="Help from above")
    tid, cid = opened.ticket.id, opened.ticket.conversation_id
    with pytest.raises(PermissionDenied):
        await support.escalate(AGENT, tid, "please")
    escalated = await support.escalate(ADMIN, tid, "needs the platform")
    assert escalated.escalated and escalated.HasField("escalated_at")
    with pytest.raises(FailedPrecondition) as err:
        await support.escalate(ADMIN, tid, "")
    assert err.value.code == "already_escalated"
    index = await db.db["ticket_escalations"].find_one({"_id": tid})
    assert index is not None and index["tenant_id"] == TENANT_A
    assert index["open"] is True and index["conversation_id"] == cid
    await support.transition(AGENT, tid, ticketflow.RESOLVE)
    index = await db.db["ticket_escalations"].find_one({"_id": tid})
    assert index is not None and index["open"] is False
    events = [decode(d) for d in await outbox(db, cid)]
    (esc,) = [e.ticket_escalated for e in events if e.HasField("ticket_escalated")]
    assert esc.reason == "needs the platform"
    texts = [m.text for m in await _messages(db, cid) if m.kind == pb.MESSAGE_KIND_SYSTEM]
    assert "Root escalated the ticket to platform staff: needs the platform" in texts
    # Straight to the platform: tenant admins only.
    with pytest.raises(PermissionDenied):
        await support.open(MEMBER, subject="x", to_platform=True)
    direct = await support.open(ADMIN, subject="Billing", to_platform=True)
    assert direct.ticket.platform and direct.ticket.escalated


async def test_a_quick_ticket_links_the_message_both_ways(
    support: SupportHandler,
    wired: tuple[MessageHandler, ConversationHandler],
    db: Database,
) -> None:
    messages, conversations = wired
    group = (await create(conversations, MEMBER, members=["ada"])).conversation.id
    said = (await send(messages, MEMBER, group, "my invoice is wrong")).message
    with pytest.raises(PermissionDenied):
        await support.from_message(
            MEMBER, conversation_id=group, message_id=said.id, subject="Invoice"
        )
    with pytest.raises(NotFound):
        await support.from_message(
            AGENT2, conversation_id=group, message_id=said.id, subject="Invoice"
        )
    made = await support.from_message(
        AGENT, conversation_id=group, message_id=said.id, subject="Invoice"
    )
    assert made.ticket.requester_id == "mia"
    assert made.ticket.source.conversation_id == group
    assert made.ticket.source.message_id == said.id
    events = [decode(d) for d in await outbox(db, group)]
    assert events[-1].message_updated.message.ticket_id == made.ticket.id
    with pytest.raises(FailedPrecondition) as err:
        await support.from_message(
            AGENT, conversation_id=group, message_id=said.id, subject="Again"
        )
    assert err.value.code == "already_a_ticket"
    # The requester sees it among their tickets, in its own conversation.
    assert [t.id for t in (await support.mine(MEMBER)).tickets] == [made.ticket.id]
    assert (await conversations.get(MEMBER, made.ticket.conversation_id)).id


async def test_updates_check_the_version_and_the_category(
    support: SupportHandler, db: Database
) -> None:
    settings = SettingsHandler(db, FakeClock(), AuditTrail(db, FakeClock()))
    await settings.update(ADMIN, SettingsRecord(ticket_categories=("billing",)), [], 0)
    opened = await support.open(MEMBER, subject="Fields", category="billing")
    tid = opened.ticket.id
    with pytest.raises(InvalidArgument) as err:
        await support.open(MEMBER, subject="x", category="nope")
    assert err.value.code == "unknown_category"
    with pytest.raises(PermissionDenied):
        await support.update(MEMBER, tid, priority=spb.TICKET_PRIORITY_URGENT)
    renamed = await support.update(MEMBER, tid, subject="Fields, renamed")
    assert renamed.subject == "Fields, renamed" and renamed.version == opened.ticket.version + 1
    with pytest.raises(FailedPrecondition) as stale:
        await support.update(AGENT, tid, tags=["x"], expected_version=opened.ticket.version)
    assert stale.value.code == "version_mismatch"
    raised = await support.raise_priority(system_caller(TENANT_A), tid)
    assert raised.priority == spb.TICKET_PRIORITY_HIGH


async def test_the_subject_is_sealed_at_rest(support: SupportHandler, db: Database) -> None:
    opened = await support.open(MEMBER, subject="my secret printer")
    raw = await db.db["tickets"].find_one({"_id": opened.ticket.id})
    assert raw is not None
    assert isinstance(raw["subject"], bytes) and b"secret" not in raw["subject"]
    assert (await support.get(AGENT, opened.ticket.id)).subject == "my secret printer"


async def test_another_tenants_ticket_is_not_found_for_every_call(
    support: SupportHandler,
) -> None:
    opened = await support.open(MEMBER, subject="Ours")
    tid, cid = opened.ticket.id, opened.ticket.conversation_id
    admin_b = user("root", TENANT_B, ROLE_MEMBER, ROLE_TENANT_ADMIN)
    calls = [
        support.get(admin_b, tid),
        support.of_conversation(admin_b, cid),
        support.claim(STRANGER, tid),
        support.transition(admin_b, tid, ticketflow.RESOLVE),
        support.assign(admin_b, tid, "ada", ""),
        support.escalate(admin_b, tid, ""),
        support.update(admin_b, tid, subject="theirs"),
        support.raise_priority(admin_b, tid),
    ]
    for call in calls:
        with pytest.raises(NotFound) as err:
            await call
        assert err.value.code in ("ticket_not_found", "conversation_not_found")
    assert (await support.queue(admin_b)).tickets == []
    assert (await support.get(AGENT, tid)).subject == "Ours"


async def test_bad_input_writes_nothing(support: SupportHandler, db: Database) -> None:
    opened = await support.open(MEMBER, subject="Keep")
    before = await snapshot(db, tenant=TENANT_A)
    bad_opens = [
        {"subject": ""},
        {"subject": "x" * 201},
        {"subject": "ok", "priority": 9},
        {"subject": "ok", "tags": [""]},
        {"subject": "ok", "tags": [str(i) for i in range(21)]},
        {"subject": "ok", "context": ("", "x")},
        {"subject": "ok", "text": " "},
        {"subject": "ok", "category": "unknown"},
    ]
    for kwargs in bad_opens:
        with pytest.raises(InvalidArgument):
            await support.open(MEMBER, **kwargs)  # type: ignore[arg-type]
    tid = opened.ticket.id
    with pytest.raises(InvalidArgument):
        await support.transition(AGENT, tid, "explode")
    with pytest.raises(InvalidArgument):
        await support.transition(AGENT, tid, ticketflow.RESOLVE, "n" * 501)
    with pytest.raises(InvalidArgument):
        await support.assign(ADMIN, tid, "", "")
    with pytest.raises(InvalidArgument):
        await support.escalate(ADMIN, tid, "r" * 501)
    with pytest.raises(InvalidArgument):
        await support.update(AGENT, tid, priority=7)
    with pytest.raises(FailedPrecondition):
        await support.transition(AGENT, tid, ticketflow.REOPEN)
    assert await snapshot(db, tenant=TENANT_A) == before


async def test_the_bot_takes_new_tickets_when_the_tenant_has_a_support_agent(
    support: SupportHandler, db: Database
) -> None:
    agent = {"id": "helper", "display_name": "Helper", "role": "support", "enabled": True}
    await db.db["tenant_settings"].insert_one({"tenant_id": TENANT_A, "agents": [agent]})
    opened = await support.open(MEMBER, subject="Bot first")
    assert opened.ticket.status == spb.TICKET_STATUS_BOT
    # Still in the default queue, so agents can take over from the bot.
    assert [t.id for t in (await support.queue(AGENT)).tickets] == [opened.ticket.id]
    bot = user("confab-bot:helper", TENANT_A, "service")
    handed = await support.transition(
        bot,
        opened.ticket.id,
        ticketflow.HANDOFF,
        handoff_reason=spb.HANDOFF_REASON_USER_ASKED,
    )
    assert handed.status == spb.TICKET_STATUS_QUEUED
    resolved = await support.transition(MEMBER, opened.ticket.id, ticketflow.RESOLVE)
    assert resolved.status == spb.TICKET_STATUS_RESOLVED
    reopened = await support.transition(MEMBER, opened.ticket.id, ticketflow.REOPEN)
    assert reopened.status == spb.TICKET_STATUS_QUEUED and not reopened.HasField("resolved_at")
    # Someone else neither closes it nor learns it exists.
    with pytest.raises(NotFound):
        await support.transition(OTHER, opened.ticket.id, ticketflow.CLOSE)
    with pytest.raises(PermissionDenied):
        await support.transition(MEMBER, opened.ticket.id, ticketflow.WAIT_ON_USER)


async def test_claims_from_two_processes_have_one_winner(db: Database, clock: FakeClock) -> None:
    """Two units of work with their own writer locks (two replicas): the database's
    conditional write decides, not a lock of one process."""
    here = SupportHandler(UnitOfWork(db, clock, asyncio.Event()))
    there = SupportHandler(UnitOfWork(db, clock, asyncio.Event()))
    for round_ in range(3):
        opened = await here.open(MEMBER, subject=f"Race {round_}")
        results = await asyncio.gather(
            here.claim(AGENT, opened.ticket.id),
            there.claim(AGENT2, opened.ticket.id),
            return_exceptions=True,
        )
        wins = [r for r in results if isinstance(r, spb.Ticket)]
        losses = [r for r in results if isinstance(r, FailedPrecondition)]
        assert len(wins) == 1 and len(losses) == 1, results
        assert losses[0].code == "already_assigned"
        final = await here.get(ADMIN, opened.ticket.id)
        assert final.assignee_id == wins[0].assignee_id and final.version == 2
        events = [decode(d) for d in await outbox(db, opened.ticket.conversation_id)]
        assert sum(e.HasField("ticket_assigned") for e in events) == 1
