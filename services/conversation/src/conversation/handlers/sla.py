"""SLA of tickets: the ticket observer that keeps each ticket's clocks and timers
(inside the ticket change's transaction), the view it decorates tickets with,
and the firing of a due timer (one unit of work on the ticket's conversation,
then the breach actions through the support desk's intent methods)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime

from confab.conversation.v1 import events_pb2
from confab.conversation.v1 import support_pb2 as spb
from confab_core.errors import ConfabError
from conversation import convert
from conversation.convert import ts
from conversation.handlers import sla_clocks, ticketflow
from conversation.handlers.sla_clocks import BREACH, WARNING
from conversation.handlers.sla_policy import rules
from conversation.handlers.support import SupportHandler, system_caller
from conversation.handlers.support_hooks import TicketChange, TicketMessage
from conversation.handlers.unit import Change, Taken, UnitOfWork
from conversation.storage.conversations import Claim
from conversation.storage.db import TenantStore
from conversation.storage.sla import SlaState, TicketSlaRecord, TimerRecord

log = logging.getLogger(__name__)

_STATUS = {
    sla_clocks.ACTIVE: spb.SLA_STATUS_ACTIVE,
    sla_clocks.HIT: spb.SLA_STATUS_HIT,
    sla_clocks.MISSED: spb.SLA_STATUS_MISSED,
    sla_clocks.ACTIVE_WITH_MISSES: spb.SLA_STATUS_ACTIVE_WITH_MISSES,
}
_METRIC = {
    sla_clocks.FIRST_RESPONSE: spb.SLA_METRIC_FIRST_RESPONSE,
    sla_clocks.NEXT_RESPONSE: spb.SLA_METRIC_NEXT_RESPONSE,
    sla_clocks.RESOLUTION: spb.SLA_METRIC_RESOLUTION,
}
PRIORITY_NAMES: dict[int, str] = {
    spb.TICKET_PRIORITY_LOW: "low",
    spb.TICKET_PRIORITY_MEDIUM: "medium",
    spb.TICKET_PRIORITY_HIGH: "high",
    spb.TICKET_PRIORITY_URGENT: "urgent",
}


def ticket_sla(state: SlaState, now: datetime) -> spb.TicketSla:
    """The view of a ticket's clocks at ``now``: per metric, its open clock,
    else its latest finished one, in start order."""
    status = sla_clocks.sla_status(state, now)
    if not status:
        return spb.TicketSla()
    latest: dict[str, int] = {}
    for index, clock in enumerate(state.clocks):
        if clock.open or clock.metric not in latest or not state.clocks[latest[clock.metric]].open:
            latest[clock.metric] = index
    clocks = []
    for index in sorted(latest.values()):
        c = state.clocks[index]
        paused = c.open and c.running_since is None
        # A paused clock's remaining time needs no calendar: it is not counting.
        clocks.append(
            spb.SlaClock(
                metric=_METRIC[c.metric],
                due_at=ts(c.due_at if c.open else None),
                warn_at=ts(c.warn_at if c.open else None),
                met_at=ts(c.met_at),
                breached=c.missed(now),
                paused=paused,
                remaining_seconds=int(sla_clocks.remaining(c, None, now).total_seconds())
                if paused
                else 0,
            )
        )
    return spb.TicketSla(status=_STATUS[status], clocks=clocks)


def timer_records(tenant_id: str, record: TicketSlaRecord) -> list[TimerRecord]:
    return [
        TimerRecord(
            id=f"{record.ticket_id}:{t.index}:{t.kind}:{int(t.due_at.timestamp())}",
            tenant_id=tenant_id,
            ticket_id=record.ticket_id,
            conversation_id=record.conversation_id,
            index=t.index,
            metric=t.metric,
            kind=t.kind,
            due_at=t.due_at,
        )
        for t in sla_clocks.timers(record.state)
    ]


class _Stale(Exception):
    """The timer no longer stands: roll the unit back and drop the timer."""


class SlaEngine:
    """The support desk's SLA observer (a TicketObserver): keeps SLA state in
    step with tickets, decorates their views, and fires due timers."""

    def __init__(self, unit: UnitOfWork, wakeup: asyncio.Event | None = None) -> None:
        self._unit = unit
        self._db = unit.database
        self._clock = unit.clock
        self._support: SupportHandler | None = None
        # Set after each ticket change commits: a timer armed for soon is not
        # left waiting for the scheduler's next poll.
        self.wakeup = wakeup or asyncio.Event()

    def attach(self, support: SupportHandler) -> None:
        """The desk whose intent methods apply breach actions (it is built
        after the engine, taking the engine as one of its observers)."""
        self._support = support

    @property
    def support(self) -> SupportHandler:
        if self._support is None:
            raise RuntimeError("SlaEngine.attach(support) was not called")
        return self._support

    # ---- TicketObserver

    async def on_change(self, store: TenantStore, change: TicketChange) -> None:
        t = change.after
        priority = PRIORITY_NAMES.get(t.priority, "")
        if change.before is None:
            await self.ticket_opened(
                store,
                ticket_id=t.id,
                conversation_id=t.conversation_id,
                priority=priority,
                status=t.status,
                at=change.at,
            )
        else:
            await self.ticket_changed(
                store, ticket_id=t.id, priority=priority, status=t.status, at=change.at
            )

    async def on_message(self, store: TenantStore, message: TicketMessage) -> None:
        await self.ticket_message(
            store,
            ticket_id=message.ticket.id,
            staff=message.sender_role in sla_clocks.STAFF_ROLES,
            requester=message.sender_id == message.ticket.requester_id,
            at=message.at,
        )

    def after_commit(self, tenant_id: str, changes: list[TicketChange]) -> None:
        self.wakeup.set()

    async def _save(self, store: TenantStore, record: TicketSlaRecord) -> None:
        await store.sla.put(record)
        await store.sla.arm(record, timer_records(store.sla.tenant_id, record))

    async def ticket_opened(
        self,
        store: TenantStore,
        *,
        ticket_id: str,
        conversation_id: str,
        priority: str,
        status: str,
        at: datetime,
    ) -> None:
        policy = await store.sla_policy.get()
        if policy is None or not policy.targets:
            return
        state = sla_clocks.opened(rules(policy), priority, status, at)
        if state.clocks:
            await self._save(store, TicketSlaRecord(ticket_id, conversation_id, state, at))

    async def ticket_changed(
        self,
        store: TenantStore,
        *,
        ticket_id: str,
        priority: str,
        status: str,
        at: datetime,
    ) -> None:
        record = await store.sla.get(ticket_id)
        if record is None:
            # Opened while the tenant had no SLA policy: it never gets one.
            return
        policy = await store.sla_policy.get()
        if policy is None:
            return
        r = rules(policy)
        state = record.state
        if priority != state.priority:
            state = sla_clocks.priority_changed(state, r, priority, at)
        if status != state.ticket_status:
            state = sla_clocks.status_changed(state, r, status, at)
        if state != record.state:
            await self._save(store, replace(record, state=state, updated_at=at))

    async def ticket_message(
        self, store: TenantStore, *, ticket_id: str, staff: bool, requester: bool, at: datetime
    ) -> None:
        record = await store.sla.get(ticket_id)
        policy = await store.sla_policy.get()
        if record is None or policy is None:
            return
        state = sla_clocks.message(
            record.state, rules(policy), staff=staff, requester=requester, at=at
        )
        if state != record.state:
            await self._save(store, replace(record, state=state, updated_at=at))

    async def decorate(self, store: TenantStore, tickets: list[spb.Ticket]) -> None:
        if not tickets:
            return
        records = await store.sla.many([t.id for t in tickets])
        now = self._clock.now()
        for ticket in tickets:
            record = records.get(ticket.id)
            if record is not None:
                ticket.sla.CopyFrom(ticket_sla(record.state, now))

    async def fire(self, timer: TimerRecord) -> bool:
        """Fires one due timer, exactly once: True when this call fired it."""
        caller = system_caller(timer.tenant_id)
        model_timer = sla_clocks.Timer(timer.index, timer.metric, timer.kind, timer.due_at)

        async def body(t: Taken) -> tuple[str, ...]:
            now = self._clock.now()
            record = await t.store.sla.get(timer.ticket_id)
            if record is None or not sla_clocks.due_timer(record.state, model_timer):
                raise _Stale
            policy = await t.store.sla_policy.get()
            actions = policy.breach_actions if policy is not None and timer.kind == BREACH else ()
            if not await t.store.sla.fire(timer, now, actions):
                raise _Stale
            mark = sla_clocks.warned if timer.kind == WARNING else sla_clocks.breached
            updated = replace(record, state=mark(record.state, timer.index), updated_at=now)
            await self._save(t.store, updated)
            ticket = await _view(t.store, timer.ticket_id)
            if ticket is None:
                raise _Stale
            ticket.sla.CopyFrom(ticket_sla(updated.state, now))
            alert = events_pb2.SlaAlert(
                ticket=ticket, metric=_METRIC[timer.metric], due_at=ts(timer.due_at)
            )
            if timer.kind == WARNING:
                t.emit(events_pb2.ConversationEvent(sla_warning=alert))
            else:
                t.emit(events_pb2.ConversationEvent(sla_breached=alert))
            t.emit(
                events_pb2.ConversationEvent(
                    ticket_updated=events_pb2.TicketUpdated(
                        ticket=ticket, change="sla", previous_status=ticket.status
                    )
                )
            )
            return actions

        try:
            actions, _ = await self._unit.one(
                Change(caller, timer.conversation_id, Claim(events=2)), body
            )
        except _Stale:
            await self._db.transaction(lambda tx: tx.for_tenant(timer.tenant_id).sla.discard(timer))
            return False
        except ConfabError as exc:
            # The conversation is gone (a deleted ticket): the timer goes with it.
            log.info("sla timer %s dropped: %s", timer.id, exc)
            await self._db.transaction(lambda tx: tx.for_tenant(timer.tenant_id).sla.discard(timer))
            return False
        if actions:
            await self.apply(replace(timer, actions_pending=actions))
        return True

    async def apply(self, timer: TimerRecord) -> None:
        """Applies a fired breach timer's actions, then forgets them. A crash
        before the forgetting applies them again on the next pass, so each
        action must be harmless twice (an escalated ticket stays escalated)."""
        desk = self.support
        caller = system_caller(timer.tenant_id)
        note = f"SLA {timer.metric.replace('_', ' ')} breached"
        steps: dict[str, Callable[[], Awaitable[object]]] = {
            "escalate": lambda: desk.escalate(caller, timer.ticket_id, note),
            "raise_priority": lambda: desk.raise_priority(caller, timer.ticket_id),
            # Back to the queue, where the auto-assigner (or a claim) picks the next agent.
            "reassign": lambda: desk.transition(caller, timer.ticket_id, ticketflow.RELEASE, note),
        }
        for action in timer.actions_pending:
            step = steps.get(action)
            if step is None:
                continue
            try:
                await step()
            except ConfabError as exc:
                # Refused by the desk's rules (already escalated, resolved
                # meanwhile, no assignee to take it from): nothing to do.
                log.info("sla breach action %s on %s skipped: %s", action, timer.ticket_id, exc)
        await self._db.transaction(
            lambda tx: tx.for_tenant(timer.tenant_id).sla.actions_done(timer.id)
        )


async def _view(store: TenantStore, ticket_id: str) -> spb.Ticket | None:
    """The ticket as the alert carries it, read inside the firing transaction."""
    found = await store.tickets.get(ticket_id)
    if found is None:
        return None
    view = convert.ticket(found)
    ids = [u for u in (found.requester_id, found.assignee_id) if u]
    names = await store.users.get_many(ids) if ids else {}
    if found.requester_id in names:
        view.requester_name = names[found.requester_id].display_name
    if found.assignee_id in names:
        view.assignee_name = names[found.assignee_id].display_name
    return view
