"""Who gets a queued ticket: the pure rules of auto-assignment (no I/O)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from conversation.handlers.autoassign import (
    LEAST_BUSY,
    MODES,
    ROUND_ROBIN,
    Candidate,
    Waiting,
    pick,
    plan,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def agents(*ids: str, capacity: int = 1000) -> list[Candidate]:
    return [Candidate(user_id=i, capacity=capacity, open_tickets=0) for i in ids]


@pytest.mark.parametrize("mode", MODES)
def test_three_agents_and_300_tickets_get_their_share_plus_one_at_most(mode: str) -> None:
    queue = [Waiting(f"t{i:03}") for i in range(300)]
    # Uneven starting loads and histories, as a real shift would have them.
    start = [
        Candidate("ann", 1000, 2, last_assigned_at=NOW - timedelta(minutes=5)),
        Candidate("bob", 1000, 0),
        Candidate("cid", 1000, 1, last_assigned_at=NOW - timedelta(minutes=9)),
    ]
    result = plan(queue, start, mode, pointer="bob", now=NOW)
    got = Counter(agent for _, agent in result.assignments)
    assert sum(got.values()) == 300
    assert max(got.values()) <= 300 // 3 + 1
    if mode == LEAST_BUSY:
        # Least busy also evens out what they held before: totals differ by one at most.
        totals = [got[c.user_id] + c.open_tickets for c in start]
        assert max(totals) - min(totals) <= 1


@pytest.mark.parametrize("mode", MODES)
def test_fairness_holds_for_every_prefix_of_the_queue(mode: str) -> None:
    result = plan([Waiting(f"t{i}") for i in range(300)], agents("a", "b", "c"), mode, "", NOW)
    seen: Counter[str] = Counter()
    for n, (_, agent) in enumerate(result.assignments, start=1):
        seen[agent] += 1
        assert max(seen.values()) <= -(-n // 3)


def test_round_robin_goes_on_after_the_pointer_and_wraps() -> None:
    assert [
        a
        for _, a in plan(
            [Waiting("1"), Waiting("2")], agents("a", "b", "c"), ROUND_ROBIN, "b", NOW
        ).assignments
    ] == ["c", "a"]
    assert plan([Waiting("1")], agents("a", "b"), ROUND_ROBIN, "b", NOW).pointer == "a"
    # The pointer names someone who left: the next one after them in id order.
    assert pick(agents("a", "c"), ROUND_ROBIN, "b").user_id == "c"  # type: ignore[union-attr]


def test_least_busy_ties_go_to_who_waited_longest() -> None:
    recent = Candidate("a", 5, 1, last_assigned_at=NOW)
    waited = Candidate("b", 5, 1, last_assigned_at=NOW - timedelta(hours=1))
    busier = Candidate("c", 5, 2, last_assigned_at=NOW - timedelta(days=1))
    never = Candidate("d", 5, 1)
    assert pick([recent, waited, busier], LEAST_BUSY, "") == waited
    assert pick([recent, waited, never], LEAST_BUSY, "") == never


@pytest.mark.parametrize("mode", MODES)
def test_nobody_goes_over_capacity(mode: str) -> None:
    start = [Candidate("a", 2, 1), Candidate("b", 3, 0), Candidate("c", 0, 0)]
    result = plan([Waiting(f"t{i}") for i in range(10)], start, mode, "", NOW)
    got = Counter(agent for _, agent in result.assignments)
    assert got == {"a": 1, "b": 3}
    # The oldest tickets are the ones assigned; the rest wait.
    assert [t for t, _ in result.assignments] == ["t0", "t1", "t2", "t3"]


@pytest.mark.parametrize("mode", MODES)
def test_a_team_ticket_goes_only_to_that_teams_agents(mode: str) -> None:
    start = [
        Candidate("a", 5, 0, teams=frozenset({"billing"})),
        Candidate("b", 5, 0),
    ]
    result = plan(
        [Waiting("t1", "billing"), Waiting("t2", "billing"), Waiting("t3", "legal")],
        start,
        mode,
        "",
        NOW,
    )
    assert result.assignments == [("t1", "a"), ("t2", "a")]


def test_no_free_agent_picks_nobody() -> None:
    assert pick([Candidate("a", 1, 1)], ROUND_ROBIN, "") is None
    assert pick([], LEAST_BUSY, "") is None
