"""The SLA clock model against a brute-force one: random ticket histories (status
changes with pauses, messages, priority changes, fired timers) over random
business-hours calendars, replayed minute by minute with an injected clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from conversation.handlers import business_hours as bh
from conversation.handlers import sla_clocks as sla
from conversation.handlers.business_hours import Calendar

from .test_business_hours import ANCHORS, calendars

MINUTE = timedelta(minutes=1)
PRIORITIES = ("low", "medium", "high", "urgent")
STATUSES = ("queued", "assigned", "waiting_on_user", "bot", "resolved", "closed")


@dataclass
class Brute:
    """One clock, counted a minute at a time."""

    metric: str
    target: int  # minutes
    used: int = 0
    running: bool = False
    met: datetime | None = None
    stopped: bool = False
    breached: bool = False
    warned: bool = False
    due: datetime | None = None
    warn: datetime | None = None

    @property
    def open(self) -> bool:
        return self.met is None and not self.stopped


class BruteTicket:
    def __init__(self, targets: dict[tuple[str, str], int], lead: int, priority: str) -> None:
        self.targets = targets
        self.lead = lead
        self.priority = priority
        self.status = "queued"
        self.clocks: list[Brute] = []

    @property
    def paused(self) -> bool:
        return self.status in ("waiting_on_user", "bot")

    def _start_run(self, c: Brute, at: datetime) -> None:
        c.running, c.due, c.warn = True, None, None
        if c.used >= c.target:
            c.due = at
        if self.lead and not c.warned and not c.breached and c.used >= c.target - self.lead:
            c.warn = at

    def _halt(self, c: Brute, at: datetime) -> None:
        if c.running and c.due is not None and at > c.due:
            c.breached = True
        c.running, c.due, c.warn = False, None, None

    def new(self, metric: str, at: datetime) -> None:
        target = self.targets[(self.priority, metric)]
        if target <= 0:
            return
        c = Brute(metric, target)
        if not self.paused:
            self._start_run(c, at)
        self.clocks.append(c)

    def event(self, kind: str, arg: str, at: datetime) -> None:
        done = ("resolved", "closed")
        if kind == "status":
            old, self.status = self.status, arg
            if arg == old:
                return
            if arg in done:
                if old in done:
                    return
                for c in self.clocks:
                    if c.open:
                        self._halt(c, at)
                        if c.metric == "resolution":
                            c.met = at
                        else:
                            c.stopped = True
            elif old in done:
                self.new("resolution", at)
            elif self.paused and old not in ("waiting_on_user", "bot"):
                for c in self.clocks:
                    if c.open:
                        self._halt(c, at)
            elif not self.paused and old in ("waiting_on_user", "bot"):
                for c in self.clocks:
                    if c.open:
                        self._start_run(c, at)
        elif kind in ("staff", "requester"):
            if self.status in done:
                return
            responding = [c for c in self.clocks if c.open and c.metric != "resolution"]
            if kind == "staff":
                for c in responding:
                    self._halt(c, at)
                    c.met = at
            elif not responding:
                self.new("next_response", at)
        elif kind == "priority":
            self.priority = arg
            for c in self.clocks:
                if not c.open:
                    continue
                target = self.targets[(arg, c.metric)]
                was_running = c.running
                self._halt(c, at)
                if target <= 0:
                    c.stopped = True
                    continue
                c.target = target
                if was_running:
                    self._start_run(c, at)
        elif kind == "fire":
            for c in self.clocks:
                if not (c.open and c.running):
                    continue
                if c.warn is not None and c.warn <= at and not c.warned and not c.breached:
                    c.warned, c.warn = True, None
                if c.due is not None and c.due <= at and not c.breached:
                    c.breached, c.warn = True, None

    def tick(self, cal: Calendar | None, at: datetime) -> None:
        """The minute [at, at + 1 min) passes."""
        if self.paused or not bh.is_business(cal, at):
            return
        for c in self.clocks:
            if c.open and c.running:
                c.used += 1
                if c.used == c.target and c.due is None:
                    c.due = at + MINUTE
                if (
                    self.lead
                    and c.used == c.target - self.lead
                    and c.warn is None
                    and not c.warned
                    and not c.breached
                ):
                    c.warn = at + MINUTE

    def missed(self, c: Brute, now: datetime) -> bool:
        return c.breached or (c.open and c.due is not None and now > c.due)


EVENTS = st.one_of(
    st.tuples(st.just("status"), st.sampled_from(STATUSES)),
    st.tuples(st.just("staff"), st.just("")),
    st.tuples(st.just("requester"), st.just("")),
    st.tuples(st.just("priority"), st.sampled_from(PRIORITIES)),
    st.tuples(st.just("fire"), st.just("")),
)


@st.composite
def histories(draw: st.DrawFn) -> tuple[Calendar | None, datetime, list[tuple[int, str, str]]]:
    cal = draw(st.none() | calendars())
    start = draw(st.sampled_from(ANCHORS)) + MINUTE * draw(st.integers(-2 * 1440, 2 * 1440))
    steps = draw(st.lists(st.tuples(st.integers(0, 300), EVENTS), min_size=1, max_size=14))
    return cal, start, [(delay, kind, arg) for delay, (kind, arg) in steps]


@settings(max_examples=150, deadline=None)
@given(
    histories(),
    st.dictionaries(
        st.tuples(st.sampled_from(PRIORITIES), st.sampled_from(sla.METRICS)),
        st.integers(0, 240),
    ),
    st.integers(0, 60),
    st.sampled_from(PRIORITIES),
)
def test_clocks_match_a_minute_by_minute_model(
    history: tuple[Calendar | None, datetime, list[tuple[int, str, str]]],
    drawn_targets: dict[tuple[str, str], int],
    lead: int,
    priority: str,
) -> None:
    cal, start, steps = history
    targets = {(p, m): drawn_targets.get((p, m), 30) for p in PRIORITIES for m in sla.METRICS}
    rules = sla.Rules(target=lambda p, m: targets[(p, m)] * 60, calendar=cal, warning=MINUTE * lead)
    state = sla.opened(rules, priority, "queued", start)
    brute = BruteTicket(targets, lead, priority)
    brute.new("first_response", start)
    brute.new("resolution", start)

    now = start
    for delay, kind, arg in steps:
        for _ in range(delay):
            brute.tick(cal, now)
            now += MINUTE
        brute.event(kind, arg, now)
        if kind == "status":
            state = sla.status_changed(state, rules, arg, now)
        elif kind in ("staff", "requester"):
            state = sla.message(
                state, rules, staff=kind == "staff", requester=kind == "requester", at=now
            )
        elif kind == "priority":
            state = sla.priority_changed(state, rules, arg, now)
        else:
            for timer in sla.timers(state):
                if timer.due_at <= now:
                    fire = sla.warned if timer.kind == sla.WARNING else sla.breached
                    state = fire(state, timer.index)

    assert [c.metric for c in state.clocks] == [c.metric for c in brute.clocks]
    for mine, theirs in zip(state.clocks, brute.clocks, strict=True):
        assert mine.met_at == theirs.met
        assert mine.stopped == theirs.stopped
        assert mine.missed(now) == brute.missed(theirs, now)
        assert (mine.running_since is not None) == (theirs.running and mine.open)
        if mine.open and not theirs.running:
            assert sla.remaining(mine, cal, now) == MINUTE * max(theirs.target - theirs.used, 0)
    _run_on(cal, brute, state, now)


def _run_on(cal: Calendar | None, brute: BruteTicket, state: sla.SlaState, now: datetime) -> None:
    """With no more events, the due and warning instants the model announced are
    the ones the brute force reaches."""
    running = [
        (mine, theirs)
        for mine, theirs in zip(state.clocks, brute.clocks, strict=True)
        if mine.open and mine.running_since is not None
    ]
    at = now
    limit = now + timedelta(days=120)
    while any(t.due is None for _, t in running) and at < limit:
        brute.tick(cal, at)
        at += MINUTE
    for mine, theirs in running:
        assert mine.due_at == theirs.due
        assert mine.warn_at == theirs.warn
    assert sla.sla_status(state, now) in (
        "",
        sla.ACTIVE,
        sla.HIT,
        sla.MISSED,
        sla.ACTIVE_WITH_MISSES,
    )


def test_statuses() -> None:
    at = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    rules = sla.Rules(target=lambda p, m: 3600, calendar=None, warning=timedelta(0))
    state = sla.opened(rules, "high", "queued", at)
    assert sla.sla_status(state, at) == sla.ACTIVE
    state = sla.message(state, rules, staff=True, requester=False, at=at + MINUTE)
    assert sla.sla_status(state, at + timedelta(hours=2)) == sla.ACTIVE_WITH_MISSES
    state = sla.status_changed(state, rules, "resolved", at + timedelta(hours=2))
    assert sla.sla_status(state, at + timedelta(hours=3)) == sla.MISSED
    quick = sla.status_changed(
        sla.message(
            sla.opened(rules, "high", "queued", at), rules, staff=True, requester=False, at=at
        ),
        rules,
        "resolved",
        at + MINUTE,
    )
    assert sla.sla_status(quick, at + timedelta(days=1)) == sla.HIT
    assert (
        sla.sla_status(
            sla.opened(sla.Rules(lambda p, m: 0, None, timedelta(0)), "low", "queued", at), at
        )
        == ""
    )


def test_a_pause_keeps_the_remaining_business_time() -> None:
    at = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    rules = sla.Rules(target=lambda p, m: 3600, calendar=None, warning=timedelta(minutes=10))
    state = sla.opened(rules, "high", "queued", at)
    state = sla.status_changed(state, rules, "waiting_on_user", at + timedelta(minutes=20))
    resolution = state.clocks[1]
    assert resolution.running_since is None
    assert sla.remaining(resolution, None, at + timedelta(days=3)) == timedelta(minutes=40)
    assert sla.timers(state) == []
    resumed = sla.status_changed(state, rules, "assigned", at + timedelta(days=3))
    assert resumed.clocks[1].due_at == at + timedelta(days=3, minutes=40)
    assert resumed.clocks[1].warn_at == at + timedelta(days=3, minutes=30)
