"""The auto-assigner on real SecantusDB, real tickets and the real presence
service: online agents only, capacity never exceeded, a freed slot takes the
oldest waiting ticket, fairness in both modes, a durable round-robin pointer,
and two runners that never double-assign or overfill an agent."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
import pytest_asyncio

from confab.conversation.v1 import support_pb2 as spb
from confab_core.clock import FakeClock
from confab_core.identity import ROLE_AGENT, ROLE_MEMBER, ROLE_TENANT_ADMIN, Caller
from conversation.autoassign import AutoAssigner, PresenceWatcher, Wakeups
from conversation.handlers import ticketflow
from conversation.handlers.assignment import AssignmentHandler, SettingsPatch
from conversation.handlers.audit import AuditTrail
from conversation.handlers.base import HandlerBase
from conversation.handlers.support import SupportHandler
from conversation.handlers.unit import UnitOfWork
from conversation.storage.db import Database
from conversation.support_assign import AssignmentObserver, SystemAssign, TicketView

from . import presence_peer as peer
from .conftest import TENANT_A, user
from .presence_peer import PresencePeer

redis_server = peer.redis_server
presence_peer = peer.presence_peer

ADMIN = user("root", TENANT_A, ROLE_TENANT_ADMIN)
MEMBER = user("mia", TENANT_A, ROLE_MEMBER)
AGENTS = [user(name, TENANT_A, ROLE_MEMBER, ROLE_AGENT) for name in ("ann", "bob", "cid")]

pytestmark = pytest.mark.asyncio


class Desk:
    def __init__(
        self, unit: UnitOfWork, db: Database, clock: FakeClock, presence: PresencePeer
    ) -> None:
        self.db = db
        self.clock = clock
        self.presence = presence
        self.wakeups = Wakeups()
        self.support = SupportHandler(unit, observers=[AssignmentObserver(self.wakeups.wake)])
        self.settings = AssignmentHandler(
            db,
            clock,
            AuditTrail(db, clock, unit.locks),
            presence.client,
            TicketView(),
            self.wakeups.wake,
        )
        self.base = HandlerBase(unit)

    def assigner(self, wakeups: Wakeups | None = None) -> AutoAssigner:
        return AutoAssigner(
            self.db,
            self.clock,
            self.presence.client,
            TicketView(),
            SystemAssign(self.support),
            sweep_seconds=30.0,
            lease_seconds=15.0,
            wakeups=wakeups or self.wakeups,
        )

    async def staff(self, *agents: Caller, online: bool = True) -> None:
        for agent in agents:
            await self.base.remember_profile(agent)
            if online:
                await self.presence.online(TENANT_A, agent.user_id)

    async def enable(self, mode: str = "round_robin", capacity: int = 5) -> None:
        await self.settings.update(
            ADMIN, SettingsPatch(enabled=True, mode=mode, default_capacity=capacity)
        )

    async def open(self, n: int) -> list[str]:
        ids = []
        for i in range(n):
            opened = await self.support.open(MEMBER, subject=f"ticket {i}")
            ids.append(opened.ticket.id)
            # Each ticket waits a little less than the one before it.
            self.clock.advance(1)
        return ids

    async def assignees(self, ids: list[str]) -> dict[str, str]:
        store = self.db.for_tenant(TENANT_A)
        found = {i: await store.tickets.get(i) for i in ids}
        return {i: t.assignee_id for i, t in found.items() if t is not None}


@pytest_asyncio.fixture
async def desk(
    unit: UnitOfWork, db: Database, clock: FakeClock, presence_peer: PresencePeer
) -> Desk:
    return Desk(unit, db, clock, presence_peer)


async def test_only_online_agents_get_tickets(desk: Desk) -> None:
    ann, bob, cid = AGENTS
    await desk.staff(ann, bob)
    await desk.staff(cid, online=False)
    await desk.presence.away(TENANT_A, "bob")
    await desk.enable()
    ids = await desk.open(3)
    assert await desk.assigner().assign_tenant(TENANT_A) == 3
    assert set((await desk.assignees(ids)).values()) == {"ann"}


async def test_nobody_online_leaves_the_queue_as_it_is(desk: Desk) -> None:
    await desk.staff(*AGENTS, online=False)
    await desk.enable()
    ids = await desk.open(2)
    assert await desk.assigner().assign_tenant(TENANT_A) == 0
    assert set((await desk.assignees(ids)).values()) == {""}


async def test_off_means_nothing_is_assigned(desk: Desk) -> None:
    await desk.staff(AGENTS[0])
    ids = await desk.open(1)
    assert await desk.assigner().assign_tenant(TENANT_A) == 0
    assert (await desk.assignees(ids))[ids[0]] == ""


async def test_capacity_holds_and_a_freed_slot_takes_the_oldest_waiting(desk: Desk) -> None:
    ann = AGENTS[0]
    await desk.staff(ann)
    await desk.enable(capacity=2)
    ids = await desk.open(4)
    assigner = desk.assigner()
    assert await assigner.assign_tenant(TENANT_A) == 2
    assert await desk.assignees(ids) == {ids[0]: "ann", ids[1]: "ann", ids[2]: "", ids[3]: ""}
    # Waiting on the user still counts: nothing frees up.
    await desk.support.transition(ann, ids[0], ticketflow.WAIT_ON_USER)
    desk.wakeups.take()
    assert await assigner.assign_tenant(TENANT_A) == 0
    # A resolve frees a slot and wakes the assigner, which takes the oldest waiting.
    await desk.support.transition(ann, ids[1], ticketflow.RESOLVE)
    assert desk.wakeups.pending == {TENANT_A}
    assert await assigner.run_once(sweep=False) is False
    assert await desk.assignees(ids) == {ids[0]: "ann", ids[1]: "ann", ids[2]: "ann", ids[3]: ""}


async def test_a_raised_limit_wakes_the_assigner_and_fills_the_new_slot(desk: Desk) -> None:
    ann = AGENTS[0]
    await desk.staff(ann)
    await desk.enable(capacity=1)
    ids = await desk.open(2)
    assigner = desk.assigner()
    assert await assigner.assign_tenant(TENANT_A) == 1
    desk.wakeups.take()
    await desk.settings.set_capacity(ADMIN, "ann", 2)
    assert desk.wakeups.pending == {TENANT_A}
    await assigner.run_once(sweep=False)
    assert set((await desk.assignees(ids)).values()) == {"ann"}


@pytest.mark.parametrize("mode", ["round_robin", "least_busy"])
async def test_three_agents_share_the_queue_fairly(desk: Desk, mode: str) -> None:
    await desk.staff(*AGENTS)
    await desk.enable(mode, capacity=1000)
    ids = await desk.open(30)
    assert await desk.assigner().assign_tenant(TENANT_A) == 30
    got = Counter((await desk.assignees(ids)).values())
    assert max(got.values()) <= 30 // 3 + 1 and set(got) == {"ann", "bob", "cid"}


async def test_the_round_robin_pointer_survives_a_restart(desk: Desk) -> None:
    await desk.staff(*AGENTS[:2])
    await desk.enable()
    first = await desk.open(1)
    await desk.assigner().assign_tenant(TENANT_A)
    second = await desk.open(1)
    # The first process died; once its lease ran out, a new one goes on from
    # the stored pointer.
    desk.clock.advance(16)
    await desk.assigner(Wakeups()).assign_tenant(TENANT_A)
    assert await desk.assignees(first + second) == {first[0]: "ann", second[0]: "bob"}


async def test_least_busy_counts_manual_claims_too(desk: Desk) -> None:
    ann, bob, _ = AGENTS
    await desk.staff(ann, bob)
    await desk.enable("least_busy")
    ids = await desk.open(3)
    await desk.support.claim(ann, ids[0])
    await desk.assigner().assign_tenant(TENANT_A)
    assert await desk.assignees(ids) == {ids[0]: "ann", ids[1]: "bob", ids[2]: "ann"}


async def test_two_runners_never_double_assign_or_overfill(desk: Desk) -> None:
    await desk.staff(*AGENTS[:2])
    await desk.enable(capacity=3)
    ids = await desk.open(10)
    one, two = desk.assigner(Wakeups()), desk.assigner(Wakeups())
    swept = await asyncio.gather(one.run_once(sweep=True), two.run_once(sweep=True))
    # One held the lease and ran; the other stood by.
    assert sorted(swept) == [False, True]
    assignees = await desk.assignees(ids)
    assert Counter(assignees.values()) == {"ann": 3, "bob": 3, "": 4}
    # Each assignment happened once: one system message per assigned ticket.
    store = desk.db.for_tenant(TENANT_A)
    for ticket_id, agent in assignees.items():
        if not agent:
            continue
        ticket = await store.tickets.get(ticket_id)
        assert ticket is not None
        messages = await store.messages.page_after(ticket.conversation_id, 0, 100, 100)
        assigned = [m for m in messages if m.sender_id == "confab-system" and "assigned" in m.text]
        assert len(assigned) == 1


async def test_a_claim_that_came_first_wins_and_the_assigner_moves_on(desk: Desk) -> None:
    ann, bob, _ = AGENTS
    await desk.staff(ann)
    await desk.enable()
    ids = await desk.open(2)
    assign = SystemAssign(desk.support)
    await desk.support.claim(bob, ids[0])
    assert await assign(TENANT_A, ids[0], "ann", "") is False
    assert await assign(TENANT_A, ids[1], "ann", "") is True
    view = await desk.support.get(ADMIN, ids[1])
    assert view.status == spb.TICKET_STATUS_ASSIGNED and view.assignee_id == "ann"


async def test_a_non_holder_hands_its_wakeups_to_the_lease_holder(desk: Desk) -> None:
    await desk.staff(AGENTS[0])
    await desk.enable()
    holder_wakeups, other_wakeups = Wakeups(), Wakeups()
    holder, other = desk.assigner(holder_wakeups), desk.assigner(other_wakeups)
    assert await holder.run_once(sweep=True)
    ids = await desk.open(1)
    # The change was committed on the other replica: it marks the tenant.
    other_wakeups.wake(TENANT_A)
    assert await other.run_once(sweep=False) is False
    assert await desk.db.assignment_tenant_ids("", 10, dirty_only=True) == [TENANT_A]
    await holder.run_once(sweep=False)
    assert (await desk.assignees(ids))[ids[0]] == "ann"
    assert await desk.db.assignment_tenant_ids("", 10, dirty_only=True) == []


async def test_an_agent_coming_online_wakes_the_assigner() -> None:
    from aiokafka import ConsumerRecord

    from confab.presence.v1 import events_pb2 as pev
    from confab.presence.v1 import presence_pb2 as ppb

    woken: list[str] = []
    watcher = PresenceWatcher(woken.append)

    def record(status: int) -> ConsumerRecord[bytes, bytes]:
        event = pev.PresenceEvent(
            event_id="e", tenant_id="t1", presence=ppb.UserPresence(user_id="u", status=status)
        )
        return ConsumerRecord("t", 0, 0, 0, 0, b"k", event.SerializeToString(), None, 0, 0, [])

    await watcher.handle(record(ppb.PRESENCE_STATUS_AWAY))
    await watcher.handle(record(ppb.PRESENCE_STATUS_ONLINE))
    assert woken == ["t1"]


async def test_a_ticket_opened_to_the_platform_is_not_for_the_tenants_agents(desk: Desk) -> None:
    await desk.staff(AGENTS[0])
    await desk.enable()
    opened = await desk.support.open(ADMIN, subject="Billing is broken", to_platform=True)
    assert await desk.assigner().assign_tenant(TENANT_A) == 0
    assert (await desk.assignees([opened.ticket.id]))[opened.ticket.id] == ""
