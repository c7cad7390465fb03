"""The auto-assigner: gives queued tickets to online agents with free capacity.

One runner at a time across replicas holds a lease (like the outbox relay), so
two replicas never count the same agent's free slots at once. It runs a tenant
when woken for it (a ticket queued, released, reopened, resolved or closed; an
agent coming online; settings or a limit changed) and sweeps every tenant with
auto-assignment on periodically, so a restart or a lost wake-up loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Protocol

from aiokafka import ConsumerRecord
from prometheus_client import Counter
from pymongo.errors import PyMongoError

from confab.presence.v1 import events_pb2 as pev
from confab.presence.v1 import presence_pb2 as ppb
from confab_core.clock import Clock
from confab_core.errors import ConfabError
from confab_core.ids import new_id
from confab_core.kafka import decode
from conversation.clients.presence import OnlineAgents
from conversation.handlers.assignment import (
    AGENT_ROLES,
    DEFAULT_SETTINGS,
    MAX_AGENTS,
    TicketLoad,
)
from conversation.handlers.autoassign import Candidate, Waiting, pick, took
from conversation.storage.db import Database, TenantStore

log = logging.getLogger(__name__)

LEASE_ID = "auto-assigner"

ASSIGNED = Counter(
    "confab_conversation_auto_assigned_total",
    "Tickets the auto-assigner gave an agent, and attempts that lost to another change",
    ["outcome"],
)


class TicketSource(TicketLoad, Protocol):
    async def queue(self, store: TenantStore, limit: int) -> list[Waiting]:
        """Unassigned queued tickets in queue order (priority, then oldest waiting)."""
        ...


# (tenant_id, ticket_id, agent_id, team_id) -> whether this assignment happened.
Assign = Callable[[str, str, str, str], Awaitable[bool]]


class Wakeups:
    """Tenants whose queue or agents changed since the assigner last looked.

    Its own object, so the ticket observer and the settings API can be built
    before the assigner (which needs the support handler they are part of)."""

    def __init__(self) -> None:
        self.pending: set[str] = set()
        self.event = asyncio.Event()

    def wake(self, tenant_id: str) -> None:
        self.pending.add(tenant_id)
        self.event.set()

    def take(self) -> set[str]:
        tenants, self.pending = self.pending, set()
        return tenants


class AutoAssigner:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        presence: OnlineAgents,
        tickets: TicketSource,
        assign: Assign,
        *,
        sweep_seconds: float,
        lease_seconds: float,
        poll_seconds: float = 1.0,
        batch_size: int = 500,
        wakeups: Wakeups | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._presence = presence
        self._tickets = tickets
        self._assign = assign
        self._sweep = sweep_seconds
        self._poll = poll_seconds
        self._lease = lease_seconds
        self._batch = batch_size
        self._owner = new_id()
        self._renew_at = float("-inf")
        self._wakeups = wakeups or Wakeups()

    def wake(self, tenant_id: str) -> None:
        self._wakeups.wake(tenant_id)

    async def run(self) -> None:
        next_sweep = float("-inf")
        while True:
            wait = self._poll
            try:
                if await self.run_once(sweep=self._clock.monotonic() >= next_sweep):
                    next_sweep = self._clock.monotonic() + self._sweep
            except (PyMongoError, ConfabError, OSError) as exc:
                log.warning("auto-assigner paused: %s", exc)
                wait = min(self._sweep, 5.0)
            # asyncio.timeout, not wait_for: see the outbox relay.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wakeups.event.wait()
            self._wakeups.event.clear()

    async def run_once(self, *, sweep: bool) -> bool:
        """One pass: the woken tenants (and, with ``sweep``, every tenant with
        auto-assignment on) when this replica holds the lease; otherwise hands
        its wake-ups to the replica that does. True when it swept."""
        if not await self.hold_lease():
            # The holder polls these marks, so a change committed here is not
            # left waiting for its sweep.
            for tenant_id in sorted(self._wakeups.take()):
                await self._db.for_tenant(tenant_id).assignment.mark_dirty()
            return False
        tenants = self._wakeups.take() | await self._tenants(dirty_only=not sweep)
        for tenant_id in sorted(tenants):
            await self.assign_tenant(tenant_id)
        return sweep

    async def _tenants(self, *, dirty_only: bool) -> set[str]:
        out: set[str] = set()
        after = ""
        while True:
            page = await self._db.assignment_tenant_ids(after, 500, dirty_only=dirty_only)
            out.update(page)
            if len(page) < 500:
                return out
            after = page[-1]

    async def hold_lease(self) -> bool:
        # Renewed at a third of its length: two thirds of margin before another
        # replica may take over, and no write per ticket.
        if self._clock.monotonic() < self._renew_at:
            return True
        held = await self._db.leases().take(
            LEASE_ID, self._owner, self._clock.now(), timedelta(seconds=self._lease)
        )
        self._renew_at = self._clock.monotonic() + self._lease / 3 if held else float("-inf")
        return held

    async def assign_tenant(self, tenant_id: str) -> int:
        """One pass over a tenant's queue, under the lease; how many it assigned."""
        store = self._db.for_tenant(tenant_id)
        # Cleared first: a mark set while this pass runs asks for another pass.
        await store.assignment.clear_dirty()
        settings = await store.assignment.settings() or DEFAULT_SETTINGS
        if not settings.enabled:
            return 0
        queue = await self._tickets.queue(store, self._batch)
        if not queue:
            return 0
        roster = [p.user_id for p in await store.users.with_roles(AGENT_ROLES, MAX_AGENTS)]
        online = sorted(await self._presence.online(tenant_id, roster))
        if not online:
            return 0
        states = await store.assignment.agents(online)
        counts = await self._tickets.open_counts(store, online)
        teams = await self._tickets.teams(store, online)
        agents: dict[str, Candidate] = {}
        for user_id in online:
            state = states.get(user_id)
            own = None if state is None else state.capacity
            agents[user_id] = Candidate(
                user_id=user_id,
                capacity=settings.default_capacity if own is None else own,
                open_tickets=counts.get(user_id, 0),
                teams=teams.get(user_id, frozenset()),
                last_assigned_at=None if state is None else state.last_assigned_at,
            )
        pointer = await store.assignment.pointer()
        assigned = 0
        for ticket in queue:
            if not any(c.free for c in agents.values()):
                break
            chosen = pick(list(agents.values()), settings.mode, pointer, ticket.team_id)
            if chosen is None:
                continue
            # The lease is what keeps two replicas from filling one agent's
            # last slot each: without it, stop before assigning anything more.
            if not await self.hold_lease():
                break
            if await self._assign(tenant_id, ticket.ticket_id, chosen.user_id, ticket.team_id):
                ASSIGNED.labels("assigned").inc()
                agents[chosen.user_id] = took(chosen, self._clock.now())
                pointer = chosen.user_id
                assigned += 1
            else:
                ASSIGNED.labels("lost").inc()
        return assigned


class PresenceWatcher:
    """Wakes the assigner for an agent's tenant when someone comes online (the
    presence events topic): a new free slot for that tenant's queue."""

    def __init__(self, wake: Callable[[str], None]) -> None:
        self._wake = wake

    async def handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        event = decode(record, pev.PresenceEvent)
        if event is None or not event.HasField("presence"):
            return
        if event.presence.status == ppb.PRESENCE_STATUS_ONLINE:
            self._wake(event.tenant_id)
