"""SLA on real SecantusDB: the policy (validation, compare-and-set, audit,
tenancy), clocks kept by the ticket observer, and timers that fire exactly once
(two schedulers at once; a scheduler dying before its commit)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from datetime import timedelta

import pytest

from confab.conversation.v1 import sla_pb2
from confab.conversation.v1 import support_pb2 as spb
from confab_core.clock import FakeClock
from confab_core.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from confab_core.identity import ROLE_AGENT, ROLE_MEMBER, ROLE_TENANT_ADMIN
from conversation.handlers import ticketflow
from conversation.handlers.audit import AuditTrail
from conversation.handlers.messages import MessageHandler
from conversation.handlers.sla import SlaEngine
from conversation.handlers.sla_policy import (
    EMPTY_POLICY,
    SLA_POLICY_UPDATED,
    SlaPolicyDraft,
    SlaPolicyHandler,
)
from conversation.handlers.support import SupportHandler
from conversation.handlers.unit import UnitOfWork
from conversation.sla_scheduler import LEASE_ID, SlaScheduler
from conversation.sla_servicer import draft, policy_message
from conversation.storage.db import TENANT_COLLECTIONS, Database
from conversation.storage.sla import SlaTargetsRecord, TicketSlaRecord, TimerRecord

from .conftest import TENANT_A, TENANT_B, decode, outbox, send, user

pytestmark = pytest.mark.asyncio

MEMBER = user("mia")
AGENT = user("ada", TENANT_A, ROLE_MEMBER, ROLE_AGENT)
ADMIN = user("root", TENANT_A, ROLE_MEMBER, ROLE_TENANT_ADMIN)
ADMIN_B = user("root", TENANT_B, ROLE_MEMBER, ROLE_TENANT_ADMIN)

HOUR = 3600


def policy(**changes: object) -> SlaPolicyDraft:
    base: dict[str, object] = {
        "targets": (
            SlaTargetsRecord("medium", HOUR, 2 * HOUR, 8 * HOUR),
            SlaTargetsRecord("urgent", 600, 600, HOUR),
        ),
        "business_hours_only": False,
        "timezone": "Europe/Berlin",
        "intervals": ((0, 9 * 60, 17 * 60),),
        "holidays": ("2026-12-25",),
        "warning_seconds": 600,
        "breach_actions": ("notify",),
    }
    base.update(changes)
    return SlaPolicyDraft(**base)  # type: ignore[arg-type]


@pytest.fixture
def policies(db: Database, clock: FakeClock) -> SlaPolicyHandler:
    return SlaPolicyHandler(db, clock, AuditTrail(db, clock))


@pytest.fixture
def engine(unit: UnitOfWork) -> SlaEngine:
    return SlaEngine(unit)


@pytest.fixture
def support(unit: UnitOfWork, engine: SlaEngine) -> SupportHandler:
    handler = SupportHandler(unit, observers=[engine])
    engine.attach(handler)
    return handler


def scheduler(db: Database, engine: SlaEngine, clock: FakeClock) -> SlaScheduler:
    return SlaScheduler(db, engine, clock, batch_size=50, poll_seconds=0.05, lease_seconds=10)


async def alerts(db: Database, conversation_id: str) -> list[str]:
    kinds = [decode(d).WhichOneof("payload") for d in await outbox(db, conversation_id)]
    return [k for k in kinds if k in ("sla_warning", "sla_breached")]


# ---- the policy


async def test_a_tenant_without_a_policy_reads_version_0(policies: SlaPolicyHandler) -> None:
    got = await policies.get(ADMIN)
    assert got.version == 0 and got.targets == ()


async def test_put_stores_audits_and_compares_versions(
    policies: SlaPolicyHandler, db: Database
) -> None:
    stored = await policies.put(ADMIN, policy(), expected_version=0)
    assert stored.version == 1
    assert (await policies.get(ADMIN)).targets == policy().targets
    with pytest.raises(FailedPrecondition) as err:
        await policies.put(ADMIN, policy(warning_seconds=0), expected_version=0)
    assert err.value.code == "version_conflict"
    again = await policies.put(ADMIN, policy(warning_seconds=0), expected_version=1)
    assert again.version == 2 and again.warning_seconds == 0
    records = await AuditTrail(db, FakeClock()).query(ADMIN, action=SLA_POLICY_UPDATED)
    assert [r.entry.after["version"] for r in records] == [2, 1]


async def test_two_first_puts_race_and_one_wins(policies: SlaPolicyHandler) -> None:
    results = await asyncio.gather(
        policies.put(ADMIN, policy(), expected_version=0),
        policies.put(ADMIN, policy(warning_seconds=5), expected_version=0),
        return_exceptions=True,
    )
    assert sum(isinstance(r, FailedPrecondition) for r in results) == 1


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"timezone": "Mars/Olympus"}, "invalid_timezone"),
        ({"intervals": ((0, 600, 540),)}, "invalid_hours"),
        ({"intervals": ((7, 0, 60),)}, "invalid_hours"),
        ({"intervals": ((0, 0, 600), (0, 540, 700))}, "invalid_hours"),
        ({"intervals": (), "business_hours_only": True}, "invalid_hours"),
        ({"holidays": ("25.12.2026",)}, "invalid_holiday"),
        ({"targets": (SlaTargetsRecord("medium", -1, 0, 0),)}, "invalid_target"),
        ({"targets": (SlaTargetsRecord("meh", 1, 0, 0),)}, "invalid_priority"),
        (
            {"targets": (SlaTargetsRecord("low", 1, 0, 0), SlaTargetsRecord("low", 2, 0, 0))},
            "invalid_priority",
        ),
        ({"warning_seconds": -5}, "invalid_warning"),
        ({"breach_actions": ("explode",)}, "invalid_breach_action"),
        ({"breach_actions": ("escalate", "escalate")}, "invalid_breach_action"),
    ],
)
async def test_bad_policies_are_refused_without_a_write(
    policies: SlaPolicyHandler, changes: dict[str, object], code: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        await policies.put(ADMIN, policy(**changes), expected_version=0)
    assert err.value.code == code
    assert (await policies.get(ADMIN)).version == 0


async def test_bad_wall_times_are_invalid_hours() -> None:
    for start, end in (("9:00", "17:00"), ("09:60", "17:00"), ("09:00", "24:01")):
        message = sla_pb2.SlaPolicy(
            business_hours=sla_pb2.BusinessHours(
                intervals=[sla_pb2.BusinessInterval(weekday=1, start=start, end=end)]
            )
        )
        with pytest.raises(InvalidArgument) as err:
            draft(message)
        assert err.value.code == "invalid_hours"


async def test_only_tenant_admins_and_only_their_tenant(policies: SlaPolicyHandler) -> None:
    for caller in (MEMBER, AGENT):
        with pytest.raises(PermissionDenied):
            await policies.get(caller)
        with pytest.raises(PermissionDenied):
            await policies.put(caller, policy(), expected_version=0)
    await policies.put(ADMIN, policy(), expected_version=0)
    # Another tenant sees its own (absent) policy, never this one.
    assert (await policies.get(ADMIN_B)).version == 0
    assert (await policies.put(ADMIN_B, policy(), expected_version=0)).version == 1


# ---- clocks kept by the observer


async def test_opening_starts_clocks_and_the_view_shows_them(
    policies: SlaPolicyHandler, support: SupportHandler, clock: FakeClock
) -> None:
    await policies.put(ADMIN, policy(), expected_version=0)
    opened = await support.open(MEMBER, subject="Broken")
    sla = opened.ticket.sla
    assert sla.status == spb.SLA_STATUS_ACTIVE
    metrics = {c.metric: c for c in sla.clocks}
    assert set(metrics) == {spb.SLA_METRIC_FIRST_RESPONSE, spb.SLA_METRIC_RESOLUTION}
    first = metrics[spb.SLA_METRIC_FIRST_RESPONSE]
    assert first.due_at.ToDatetime().replace(tzinfo=clock.now().tzinfo) == clock.now() + timedelta(
        hours=1
    )


async def test_waiting_on_user_pauses_and_resume_continues(
    policies: SlaPolicyHandler, support: SupportHandler, clock: FakeClock
) -> None:
    await policies.put(ADMIN, policy(), expected_version=0)
    opened = await support.open(MEMBER, subject="Pause me")
    tid = opened.ticket.id
    await support.claim(AGENT, tid)
    clock.advance(20 * 60)
    paused = await support.transition(AGENT, tid, ticketflow.WAIT_ON_USER)
    clocks = {c.metric: c for c in paused.sla.clocks}
    assert clocks[spb.SLA_METRIC_FIRST_RESPONSE].paused
    assert clocks[spb.SLA_METRIC_FIRST_RESPONSE].remaining_seconds == 40 * 60
    clock.advance(5 * HOUR)
    resumed = await support.transition(AGENT, tid, ticketflow.RESUME)
    first = {c.metric: c for c in resumed.sla.clocks}[spb.SLA_METRIC_FIRST_RESPONSE]
    assert not first.paused
    assert first.due_at.ToDatetime().replace(tzinfo=clock.now().tzinfo) == clock.now() + timedelta(
        minutes=40
    )


async def test_a_bot_ticket_waits_paused_and_the_handoff_starts_its_clocks(
    policies: SlaPolicyHandler, support: SupportHandler, clock: FakeClock, db: Database
) -> None:
    await policies.put(ADMIN, policy(), expected_version=0)
    helper = {"id": "helper", "display_name": "Helper", "role": "support", "enabled": True}
    await db.db["tenant_settings"].insert_one({"tenant_id": TENANT_A, "agents": [helper]})
    opened = await support.open(MEMBER, subject="Bot first")
    assert opened.ticket.status == spb.TICKET_STATUS_BOT
    assert all(c.paused for c in opened.ticket.sla.clocks)
    # Hours with the bot cost the desk nothing.
    clock.advance(5 * HOUR)
    handed = await support.transition(
        user("confab-bot:helper", TENANT_A, "service"),
        opened.ticket.id,
        ticketflow.HANDOFF,
        handoff_reason=spb.HANDOFF_REASON_USER_ASKED,
    )
    first = {c.metric: c for c in handed.sla.clocks}[spb.SLA_METRIC_FIRST_RESPONSE]
    assert not first.paused and not first.breached
    assert first.due_at.ToDatetime().replace(tzinfo=clock.now().tzinfo) == clock.now() + timedelta(
        hours=1
    )


async def test_a_ticket_opened_without_a_policy_has_no_sla(support: SupportHandler) -> None:
    opened = await support.open(MEMBER, subject="No SLA")
    assert opened.ticket.sla.status == spb.SLA_STATUS_UNSPECIFIED


async def test_priority_change_recomputes_due_times(
    policies: SlaPolicyHandler, support: SupportHandler, clock: FakeClock
) -> None:
    await policies.put(ADMIN, policy(), expected_version=0)
    opened = await support.open(MEMBER, subject="Soon urgent")
    clock.advance(5 * 60)
    raised = await support.update(AGENT, opened.ticket.id, priority=spb.TICKET_PRIORITY_URGENT)
    first = {c.metric: c for c in raised.sla.clocks}[spb.SLA_METRIC_FIRST_RESPONSE]
    # 5 of urgent's 10 minutes are used.
    assert first.due_at.ToDatetime().replace(tzinfo=clock.now().tzinfo) == clock.now() + timedelta(
        minutes=5
    )


async def test_staff_answers_meet_response_clocks_and_requester_messages_start_next(
    policies: SlaPolicyHandler, support: SupportHandler, unit: UnitOfWork, clock: FakeClock
) -> None:
    await policies.put(ADMIN, policy(), expected_version=0)
    messages = MessageHandler(unit, tickets=support)
    opened = await support.open(MEMBER, subject="Talk to me", text="hello?")
    tid, cid = opened.ticket.id, opened.ticket.conversation_id
    clock.advance(30 * 60)
    await send(messages, AGENT, cid, "on it")
    ticket = await support.get(AGENT, tid)
    first = {c.metric: c for c in ticket.sla.clocks}[spb.SLA_METRIC_FIRST_RESPONSE]
    assert first.HasField("met_at") and not first.breached
    clock.advance(60)
    await send(messages, MEMBER, cid, "still broken")
    ticket = await support.get(AGENT, tid)
    nxt = {c.metric: c for c in ticket.sla.clocks}[spb.SLA_METRIC_NEXT_RESPONSE]
    assert nxt.due_at.ToDatetime().replace(tzinfo=clock.now().tzinfo) == clock.now() + timedelta(
        hours=2
    )
    clock.advance(3 * HOUR)
    await send(messages, AGENT, cid, "sorry, now fixed")
    ticket = await support.get(AGENT, tid)
    # The late answer is a miss; resolution still runs.
    assert ticket.sla.status == spb.SLA_STATUS_ACTIVE_WITH_MISSES


async def test_reopen_starts_a_new_resolution_clock(
    policies: SlaPolicyHandler, support: SupportHandler, clock: FakeClock
) -> None:
    await policies.put(ADMIN, policy(), expected_version=0)
    opened = await support.open(MEMBER, subject="Again")
    tid = opened.ticket.id
    await support.claim(AGENT, tid)
    await support.transition(AGENT, tid, ticketflow.RESOLVE)
    clock.advance(HOUR)
    reopened = await support.transition(MEMBER, tid, ticketflow.REOPEN)
    resolution = {c.metric: c for c in reopened.sla.clocks}[spb.SLA_METRIC_RESOLUTION]
    assert resolution.due_at.ToDatetime().replace(
        tzinfo=clock.now().tzinfo
    ) == clock.now() + timedelta(hours=8)
    assert reopened.sla.status == spb.SLA_STATUS_ACTIVE


# ---- timers


async def test_the_running_scheduler_fires_when_woken(
    policies: SlaPolicyHandler,
    support: SupportHandler,
    engine: SlaEngine,
    db: Database,
    clock: FakeClock,
    wakeup: asyncio.Event,
) -> None:
    await policies.put(ADMIN, policy(warning_seconds=0), expected_version=0)
    opened = await support.open(MEMBER, subject="Loop")
    loop = asyncio.create_task(scheduler(db, engine, clock).run())
    try:
        # The unit of work sets the relay's wakeup at each commit: the firing one.
        wakeup.clear()
        clock.advance(HOUR)
        engine.wakeup.set()
        async with asyncio.timeout(20):
            await wakeup.wait()
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    assert await alerts(db, opened.ticket.conversation_id) == ["sla_breached"]


async def test_warning_then_breach_fire_once_with_events(
    policies: SlaPolicyHandler,
    support: SupportHandler,
    engine: SlaEngine,
    db: Database,
    clock: FakeClock,
) -> None:
    await policies.put(ADMIN, policy(breach_actions=("escalate",)), expected_version=0)
    opened = await support.open(MEMBER, subject="Tick tock")
    conv = opened.ticket.conversation_id
    s = scheduler(db, engine, clock)
    assert await s.hold_lease()
    assert await s.fire_due() == 0
    clock.advance(50 * 60)
    assert await s.fire_due() == 1
    assert await alerts(db, conv) == ["sla_warning"]
    clock.advance(10 * 60)
    await s.fire_due()
    assert await alerts(db, conv) == ["sla_warning", "sla_breached"]
    assert await s.fire_due() == 0
    events = [decode(d) for d in await outbox(db, conv)]
    breached = next(e for e in events if e.WhichOneof("payload") == "sla_breached")
    assert breached.sla_breached.metric == spb.SLA_METRIC_FIRST_RESPONSE
    assert breached.sla_breached.ticket.sla.status == spb.SLA_STATUS_ACTIVE_WITH_MISSES
    # The breach action: escalated to platform staff by the system actor.
    ticket = await support.get(AGENT, opened.ticket.id)
    assert ticket.escalated
    assert ticket.sla.status == spb.SLA_STATUS_ACTIVE_WITH_MISSES
    assert await db.db["sla_timers"].count_documents({"actions_pending.0": {"$exists": True}}) == 0


async def test_breach_raises_the_priority_and_puts_the_ticket_back_in_the_queue(
    policies: SlaPolicyHandler,
    support: SupportHandler,
    engine: SlaEngine,
    db: Database,
    clock: FakeClock,
) -> None:
    actions = ("notify", "raise_priority", "reassign")
    await policies.put(ADMIN, policy(warning_seconds=0, breach_actions=actions), expected_version=0)
    opened = await support.open(MEMBER, subject="Stuck")
    tid = opened.ticket.id
    await support.claim(AGENT, tid)
    clock.advance(HOUR)
    await scheduler(db, engine, clock).fire_due()
    ticket = await support.get(AGENT, tid)
    assert ticket.priority == spb.TICKET_PRIORITY_HIGH
    assert ticket.status == spb.TICKET_STATUS_QUEUED and not ticket.assignee_id


class ForgetfulEngine(SlaEngine):
    """Dies right after a breach commits, before its actions ran."""

    async def apply(self, timer: TimerRecord) -> None:
        raise asyncio.CancelledError


async def test_breach_actions_left_by_a_crash_run_on_the_next_pass(
    policies: SlaPolicyHandler,
    support: SupportHandler,
    engine: SlaEngine,
    db: Database,
    clock: FakeClock,
) -> None:
    await policies.put(
        ADMIN, policy(warning_seconds=0, breach_actions=("escalate",)), expected_version=0
    )
    opened = await support.open(MEMBER, subject="Crash after commit")
    clock.advance(HOUR)
    forgetful = ForgetfulEngine(UnitOfWork(db, clock, asyncio.Event()))
    forgetful.attach(support)
    with pytest.raises(asyncio.CancelledError):
        await scheduler(db, forgetful, clock).fire_due()
    assert not (await support.get(AGENT, opened.ticket.id)).escalated
    await scheduler(db, engine, clock).fire_due()
    assert (await support.get(AGENT, opened.ticket.id)).escalated
    # The breach itself was announced once.
    assert await alerts(db, opened.ticket.conversation_id) == ["sla_breached"]


async def test_a_broken_timer_does_not_stop_the_others(
    policies: SlaPolicyHandler, support: SupportHandler, db: Database, clock: FakeClock
) -> None:
    await policies.put(ADMIN, policy(warning_seconds=0), expected_version=0)
    broken = await support.open(MEMBER, subject="Broken")
    fine = await support.open(MEMBER, subject="Fine")

    class Picky(SlaEngine):
        async def fire(self, timer: TimerRecord) -> bool:
            if timer.ticket_id == broken.ticket.id:
                raise RuntimeError("a bug")
            return await super().fire(timer)

    picky = Picky(UnitOfWork(db, clock, asyncio.Event()))
    picky.attach(support)
    clock.advance(HOUR)
    assert await scheduler(db, picky, clock).fire_due() == 1
    assert await alerts(db, fine.ticket.conversation_id) == ["sla_breached"]
    assert await alerts(db, broken.ticket.conversation_id) == []
    assert not await db.db["sla_timers"].count_documents(
        {"ticket_id": broken.ticket.id, "fired": True}
    )


async def test_two_schedulers_fire_a_timer_once(
    policies: SlaPolicyHandler, support: SupportHandler, db: Database, clock: FakeClock
) -> None:
    await policies.put(ADMIN, policy(warning_seconds=0), expected_version=0)
    tickets = [await support.open(MEMBER, subject=f"Race {i}") for i in range(3)]
    clock.advance(HOUR)
    # Two processes: their own units of work (lock tables) and engines.
    engines = []
    for _ in range(2):
        other = SlaEngine(UnitOfWork(db, clock, asyncio.Event()))
        other.attach(SupportHandler(UnitOfWork(db, clock, asyncio.Event()), observers=[other]))
        engines.append(other)
    first, second = (scheduler(db, e, clock) for e in engines)
    await asyncio.gather(first.fire_due(), second.fire_due())
    for opened in tickets:
        assert await alerts(db, opened.ticket.conversation_id) == ["sla_breached"]


class DyingEngine(SlaEngine):
    """Dies (as a killed process would) after taking the timer, before its commit."""

    async def _save(self, store, record: TicketSlaRecord) -> None:  # type: ignore[no-untyped-def]
        raise asyncio.CancelledError


async def test_a_scheduler_killed_before_its_commit_leaves_the_timer_to_the_next(
    policies: SlaPolicyHandler,
    support: SupportHandler,
    engine: SlaEngine,
    db: Database,
    clock: FakeClock,
) -> None:
    await policies.put(ADMIN, policy(warning_seconds=0), expected_version=0)
    opened = await support.open(MEMBER, subject="Crash")
    clock.advance(HOUR)
    dying = DyingEngine(UnitOfWork(db, clock, asyncio.Event()))
    dying.attach(support)
    doomed = scheduler(db, dying, clock)
    assert await doomed.hold_lease()
    with pytest.raises(asyncio.CancelledError):
        await doomed.fire_due()
    assert await alerts(db, opened.ticket.conversation_id) == []
    # The next scheduler takes over once the dead one's lease expires.
    heir = scheduler(db, engine, clock)
    assert not await heir.hold_lease()
    clock.advance(11)
    assert await heir.hold_lease()
    await heir.fire_due()
    await heir.fire_due()
    assert await alerts(db, opened.ticket.conversation_id) == ["sla_breached"]
    lease = await db.db["leases"].find_one({"_id": LEASE_ID})
    assert lease is not None and lease["owner"] == heir.owner


async def test_a_met_clock_drops_its_timers(
    policies: SlaPolicyHandler,
    support: SupportHandler,
    engine: SlaEngine,
    db: Database,
    clock: FakeClock,
) -> None:
    await policies.put(ADMIN, policy(), expected_version=0)
    opened = await support.open(MEMBER, subject="Quick")
    tid = opened.ticket.id
    await support.claim(AGENT, tid)
    await support.transition(AGENT, tid, ticketflow.RESOLVE)
    assert await db.db["sla_timers"].count_documents({"fired": False}) == 0
    clock.advance(10 * HOUR)
    assert await scheduler(db, engine, clock).fire_due() == 0
    ticket = await support.get(AGENT, tid)
    # Resolved in time; the first response clock stopped without a verdict.
    assert ticket.sla.status == spb.SLA_STATUS_HIT


async def test_retention_purges_a_tickets_sla_with_its_conversation(
    policies: SlaPolicyHandler, support: SupportHandler, db: Database
) -> None:
    await policies.put(ADMIN, policy(), expected_version=0)
    gone = await support.open(MEMBER, subject="Old")
    kept = await support.open(MEMBER, subject="New")
    await db.for_tenant(TENANT_A).sla.purge_conversation(gone.ticket.conversation_id)
    left = await db.db["ticket_sla"].distinct("_id")
    assert left == [kept.ticket.id]
    timers = await db.db["sla_timers"].distinct("ticket_id")
    assert timers == [kept.ticket.id]


async def test_policy_messages_round_trip() -> None:
    stored = replace(
        EMPTY_POLICY,
        **{f: getattr(policy(), f) for f in SlaPolicyDraft.__dataclass_fields__},
        version=4,
    )
    assert draft(policy_message(stored)) == policy()


async def test_tenant_erasure_deletes_sla_state_and_timers(
    policies: SlaPolicyHandler, support: SupportHandler, db: Database
) -> None:
    await policies.put(ADMIN, policy(), expected_version=0)
    await policies.put(ADMIN_B, policy(), expected_version=0)
    await support.open(MEMBER, subject="Erase me")
    purge = db.purge(TENANT_A)
    for name in TENANT_COLLECTIONS:
        while await purge.delete_batch(name, 500):
            pass
    for name in ("sla_policies", "ticket_sla", "sla_timers"):
        assert await db.db[name].count_documents({"tenant_id": TENANT_A}) == 0
    assert await db.db["sla_policies"].count_documents({"tenant_id": TENANT_B}) == 1
