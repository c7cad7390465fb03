"""Which agent gets a queued ticket: pure rules, no I/O (the runner feeds them).

An agent can take a ticket when online, under their capacity (open tickets:
assigned + waiting_on_user), and in the ticket's team when it has one. Of those,
round robin takes the next one after the durable pointer (in user-id order,
wrapping), least busy the one with the fewest open tickets, ties going to
whoever waited longest since their last assignment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

ROUND_ROBIN = "round_robin"
LEAST_BUSY = "least_busy"
MODES = (ROUND_ROBIN, LEAST_BUSY)

_NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Candidate:
    """An online agent as the rules see them."""

    user_id: str
    capacity: int
    open_tickets: int
    teams: frozenset[str] = frozenset()
    last_assigned_at: datetime | None = None

    @property
    def free(self) -> bool:
        return self.open_tickets < self.capacity


@dataclass(frozen=True, slots=True)
class Waiting:
    """A queued ticket, in queue order."""

    ticket_id: str
    team_id: str = ""


def _waited_since(c: Candidate) -> datetime:
    last = c.last_assigned_at
    if last is None:
        return _NEVER
    return last if last.tzinfo is not None else last.replace(tzinfo=UTC)


def pick(
    candidates: Sequence[Candidate], mode: str, pointer: str, team_id: str = ""
) -> Candidate | None:
    """The agent for one ticket, or None when nobody can take it."""
    able = [c for c in candidates if c.free and (not team_id or team_id in c.teams)]
    if not able:
        return None
    if mode == LEAST_BUSY:
        return min(able, key=lambda c: (c.open_tickets, _waited_since(c), c.user_id))
    ordered = sorted(able, key=lambda c: c.user_id)
    return next((c for c in ordered if c.user_id > pointer), ordered[0])


@dataclass(frozen=True, slots=True)
class Plan:
    assignments: list[tuple[str, str]]
    pointer: str


def plan(
    queue: Sequence[Waiting],
    candidates: Sequence[Candidate],
    mode: str,
    pointer: str,
    now: datetime,
) -> Plan:
    """Assignments for a whole queue, in order, as if each one succeeded: what
    the runner does one ticket at a time (tests use it to check fairness)."""
    agents = {c.user_id: c for c in candidates}
    out: list[tuple[str, str]] = []
    for ticket in queue:
        chosen = pick(list(agents.values()), mode, pointer, ticket.team_id)
        if chosen is None:
            continue
        out.append((ticket.ticket_id, chosen.user_id))
        agents[chosen.user_id] = took(chosen, now)
        pointer = chosen.user_id
    return Plan(out, pointer)


def took(c: Candidate, now: datetime) -> Candidate:
    """The candidate after being given one more ticket."""
    return replace(c, open_tickets=c.open_tickets + 1, last_assigned_at=now)
