"""The SLA clock model of one ticket: pure functions from a state and a ticket
happening to the next state. Storage keeps the state (``ticket_sla``); the
observer feeds it ticket changes and messages; the scheduler feeds it fired
timers. docs/support.md#sla states the semantics in prose.

Clocks count business time (see business_hours) towards a target taken from
the tenant's policy for the ticket's priority:

- first_response starts when the ticket opens and is met by the first staff
  message (agent, tenant admin, platform staff);
- next_response starts at a requester's message once no response clock runs,
  and is met by the next staff message;
- resolution starts when the ticket opens (and again, afresh, at a reopen) and
  is met when it is resolved (or closed without being resolved).

Every clock pauses while the ticket is waiting_on_user or with the bot, and
keeps the business time it had used. A clock is missed when it is met after its
due instant, or its breach timer fired, or it was paused after its due instant;
a miss stays a miss. Resolving stops the response clocks without a verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from conversation.handlers import business_hours
from conversation.handlers.business_hours import Calendar
from conversation.storage.sla import Clock, SlaState

FIRST_RESPONSE = "first_response"
NEXT_RESPONSE = "next_response"
RESOLUTION = "resolution"
METRICS = (FIRST_RESPONSE, NEXT_RESPONSE, RESOLUTION)
RESPONSE_METRICS = (FIRST_RESPONSE, NEXT_RESPONSE)

PAUSED_STATUSES = frozenset({"waiting_on_user", "bot"})
DONE_STATUSES = frozenset({"resolved", "closed"})
STAFF_ROLES = frozenset({"agent", "tenant_admin", "super_admin"})

ACTIVE = "active"
HIT = "hit"
MISSED = "missed"
ACTIVE_WITH_MISSES = "active_with_misses"

WARNING = "warning"
BREACH = "breach"


@dataclass(frozen=True, slots=True)
class Rules:
    """What the model needs of a tenant's policy."""

    # Business seconds per metric for a priority; 0 means no target.
    target: Callable[[str, str], int]
    calendar: Calendar | None
    warning: timedelta


def paused(state: SlaState) -> bool:
    return state.ticket_status in PAUSED_STATUSES


def remaining(clock: Clock, calendar: Calendar | None, at: datetime) -> timedelta:
    """Business time left to the target at ``at`` (zero once it is reached)."""
    used = clock.used
    if clock.running_since is not None:
        used += business_hours.between(calendar, clock.running_since, at)
    return max(timedelta(seconds=clock.target) - used, timedelta(0))


@dataclass(frozen=True, slots=True)
class Timer:
    index: int
    metric: str
    kind: str
    due_at: datetime


def _run(clock: Clock, rules: Rules, at: datetime) -> Clock:
    left = max(timedelta(seconds=clock.target) - clock.used, timedelta(0))
    due = business_hours.add(rules.calendar, at, left)
    warn_at = None
    if not clock.warned and not clock.breached and rules.warning > timedelta(0):
        warn_at = business_hours.add(rules.calendar, at, max(left - rules.warning, timedelta(0)))
    return replace(clock, running_since=at, due_at=due, warn_at=warn_at)


def _halt(clock: Clock, rules: Rules, at: datetime) -> Clock:
    """Stops the running part of a clock at ``at``, keeping what it used."""
    if clock.running_since is None:
        return clock
    used = clock.used + business_hours.between(rules.calendar, clock.running_since, at)
    late = clock.due_at is not None and at > clock.due_at
    return replace(
        clock,
        used=used,
        running_since=None,
        due_at=None,
        warn_at=None,
        breached=clock.breached or late,
    )


def _new_clock(metric: str, state: SlaState, rules: Rules, at: datetime) -> Clock | None:
    target = rules.target(state.priority, metric)
    if target <= 0:
        return None
    clock = Clock(metric, target, at, timedelta(0), None, None, None)
    return clock if paused(state) else _run(clock, rules, at)


def _with(state: SlaState, *new: Clock | None) -> SlaState:
    return replace(state, clocks=state.clocks + tuple(c for c in new if c is not None))


def _map_open(state: SlaState, fn: Callable[[Clock], Clock], metrics: tuple[str, ...]) -> SlaState:
    return replace(
        state,
        clocks=tuple(fn(c) if c.open and c.metric in metrics else c for c in state.clocks),
    )


def opened(rules: Rules, priority: str, ticket_status: str, at: datetime) -> SlaState:
    state = SlaState(priority=priority, ticket_status=ticket_status)
    if ticket_status in DONE_STATUSES:
        return state
    return _with(
        state,
        _new_clock(FIRST_RESPONSE, state, rules, at),
        _new_clock(RESOLUTION, state, rules, at),
    )


def status_changed(state: SlaState, rules: Rules, new_status: str, at: datetime) -> SlaState:
    old = state.ticket_status
    if new_status == old:
        return state
    moved = replace(state, ticket_status=new_status)
    if new_status in DONE_STATUSES:
        if old in DONE_STATUSES:
            return moved
        met = _map_open(moved, lambda c: replace(_halt(c, rules, at), met_at=at), (RESOLUTION,))
        return _map_open(
            met, lambda c: replace(_halt(c, rules, at), stopped=True), RESPONSE_METRICS
        )
    if old in DONE_STATUSES:
        # A reopen: a new resolution clock with the whole target.
        return _with(moved, _new_clock(RESOLUTION, moved, rules, at))
    if new_status in PAUSED_STATUSES and old not in PAUSED_STATUSES:
        return _map_open(moved, lambda c: _halt(c, rules, at), METRICS)
    if old in PAUSED_STATUSES and new_status not in PAUSED_STATUSES:
        return _map_open(moved, lambda c: _run(c, rules, at), METRICS)
    return moved


def message(
    state: SlaState, rules: Rules, *, staff: bool, requester: bool, at: datetime
) -> SlaState:
    """A message in the ticket's conversation: a staff answer meets the open
    response clocks; a requester's message starts next_response when none runs."""
    if state.ticket_status in DONE_STATUSES:
        return state
    if staff:
        return _map_open(state, lambda c: replace(_halt(c, rules, at), met_at=at), RESPONSE_METRICS)
    if requester and not any(c.open and c.metric in RESPONSE_METRICS for c in state.clocks):
        return _with(state, _new_clock(NEXT_RESPONSE, state, rules, at))
    return state


def priority_changed(state: SlaState, rules: Rules, priority: str, at: datetime) -> SlaState:
    """Open clocks take the new priority's targets, keeping the time they used;
    a metric the new priority has no target for stops without a verdict."""
    moved = replace(state, priority=priority)

    def retarget(clock: Clock) -> Clock:
        target = rules.target(priority, clock.metric)
        if target <= 0:
            return replace(_halt(clock, rules, at), stopped=True)
        running = clock.running_since is not None
        halted = replace(_halt(clock, rules, at), target=target)
        return _run(halted, rules, at) if running else halted

    return _map_open(moved, retarget, METRICS)


def warned(state: SlaState, index: int) -> SlaState:
    clocks = list(state.clocks)
    clocks[index] = replace(clocks[index], warned=True, warn_at=None)
    return replace(state, clocks=tuple(clocks))


def breached(state: SlaState, index: int) -> SlaState:
    clocks = list(state.clocks)
    clocks[index] = replace(clocks[index], breached=True, warn_at=None)
    return replace(state, clocks=tuple(clocks))


def timers(state: SlaState) -> list[Timer]:
    """The timers the state wants armed: a warning and a breach per running clock."""
    out = []
    for index, clock in enumerate(state.clocks):
        if not clock.open or clock.running_since is None or clock.due_at is None:
            continue
        if clock.warn_at is not None and not clock.warned and not clock.breached:
            out.append(Timer(index, clock.metric, WARNING, clock.warn_at))
        if not clock.breached:
            out.append(Timer(index, clock.metric, BREACH, clock.due_at))
    return out


def due_timer(state: SlaState, timer: Timer) -> bool:
    """Whether a stored timer still stands for the state (not re-armed, met or fired)."""
    if timer.index >= len(state.clocks):
        return False
    return any(t == timer for t in timers(state))


def sla_status(state: SlaState, now: datetime) -> str:
    """active, hit, missed, active_with_misses; "" when no clock ever ran."""
    if not state.clocks:
        return ""
    missed = any(c.missed(now) for c in state.clocks)
    active = any(c.open for c in state.clocks)
    if active:
        return ACTIVE_WITH_MISSES if missed else ACTIVE
    return MISSED if missed else HIT
