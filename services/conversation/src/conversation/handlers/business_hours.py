"""Business-hours arithmetic for SLA clocks: pure, no I/O.

A calendar is a tenant's timezone, its weekly opening intervals (wall-clock
minutes of a weekday, several per day) and its holidays (dates in that
timezone). An instant is business time when its wall-clock time in the zone
lies inside an interval of its local weekday and its local date is no holiday.
That definition is what DST-correctness means here: on the night the clocks
jump forward a 00:00-06:00 interval is five real hours long, on the night they
fall back it is seven, and a wall time that occurs twice counts twice.

``None`` in place of a calendar means clocks run around the clock (plain
seconds).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MINUTES_PER_DAY = 24 * 60
# Instants of one local date lie within these bounds of its naive midnight
# (offsets range from -12:00 to +14:00); a margin on both sides.
_WINDOW = timedelta(hours=15)
# How far an addition looks ahead before it gives up: a calendar with a
# business minute somewhere finds it within a year and a week.
_MAX_DAYS = 380
_SECOND = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Interval:
    """Open on ``weekday`` (0 Monday .. 6 Sunday) from ``start`` to ``end``,
    minutes since local midnight, 0 <= start < end <= 1440."""

    weekday: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Calendar:
    timezone: str
    intervals: tuple[Interval, ...]
    holidays: frozenset[date]

    @property
    def zone(self) -> ZoneInfo:
        return _zone(self.timezone)


@functools.lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


Span = tuple[datetime, datetime]


def _offset(zone: ZoneInfo, at: datetime) -> timedelta:
    offset = at.astimezone(zone).utcoffset()
    assert offset is not None
    return offset


def _pieces(
    zone: ZoneInfo, lo: datetime, hi: datetime
) -> list[tuple[datetime, datetime, timedelta]]:
    """[lo, hi) cut where the zone's UTC offset changes, with each piece's offset.

    Transitions fall on whole seconds; a binary search over seconds finds them.
    """
    first = _offset(zone, lo)
    if first == _offset(zone, hi - _SECOND):
        return [(lo, hi, first)]
    low, high = 0, int((hi - lo).total_seconds()) - 1
    # Invariant: the offset at lo + low seconds is `first`, at lo + high it is not.
    while high - low > 1:
        mid = (low + high) // 2
        if _offset(zone, lo + timedelta(seconds=mid)) == first:
            low = mid
        else:
            high = mid
    cut = lo + timedelta(seconds=high)
    return [(lo, cut, first), *_pieces(zone, cut, hi)]


@functools.lru_cache(maxsize=4096)
def day_spans(calendar: Calendar, day: date) -> tuple[Span, ...]:
    """The business time of one local date, as sorted, disjoint UTC spans."""
    if day in calendar.holidays:
        return ()
    wanted = [i for i in calendar.intervals if i.weekday == day.weekday()]
    if not wanted:
        return ()
    midnight = datetime.combine(day, time(), tzinfo=UTC)
    pieces = _pieces(calendar.zone, midnight - _WINDOW, midnight + timedelta(days=1) + _WINDOW)
    spans: list[Span] = []
    for interval in wanted:
        wall_start = midnight + timedelta(minutes=interval.start)
        wall_end = midnight + timedelta(minutes=interval.end)
        for lo, hi, offset in pieces:
            # In this piece, the instant u shows wall time u + offset.
            start = max(lo, wall_start - offset)
            end = min(hi, wall_end - offset)
            if start < end:
                spans.append((start, end))
    return tuple(_merge(spans))


def _merge(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _local_date(calendar: Calendar, at: datetime) -> date:
    return at.astimezone(calendar.zone).date()


def add(calendar: Calendar | None, start: datetime, amount: timedelta) -> datetime:
    """The instant at which ``amount`` of business time has passed since ``start``.

    A zero amount is ``start`` itself. Raises ValueError when the calendar has
    no business time within a year (validation keeps policies from that).
    """
    if calendar is None or amount <= timedelta(0):
        return start + max(amount, timedelta(0))
    left = amount
    # The day before: its spans can reach past midnight UTC into `start`'s day.
    day = _local_date(calendar, start) - timedelta(days=1)
    for _ in range(_MAX_DAYS):
        for lo, hi in day_spans(calendar, day):
            lo = max(lo, start)
            if lo >= hi:
                continue
            if hi - lo >= left:
                return lo + left
            left -= hi - lo
        day += timedelta(days=1)
    raise ValueError("the calendar has no business hours")


def between(calendar: Calendar | None, start: datetime, end: datetime) -> timedelta:
    """Business time in [start, end); zero when end is not after start."""
    if end <= start:
        return timedelta(0)
    if calendar is None:
        return end - start
    total = timedelta(0)
    day = _local_date(calendar, start) - timedelta(days=1)
    last = _local_date(calendar, end) + timedelta(days=1)
    while day <= last:
        for lo, hi in day_spans(calendar, day):
            lo, hi = max(lo, start), min(hi, end)
            if lo < hi:
                total += hi - lo
        day += timedelta(days=1)
    return total


def is_business(calendar: Calendar | None, at: datetime) -> bool:
    """Whether ``at`` is business time, straight from the definition (wall clock)."""
    if calendar is None:
        return True
    local = at.astimezone(calendar.zone)
    if local.date() in calendar.holidays:
        return False
    minute = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
    return any(
        i.weekday == local.weekday() and i.start <= minute < i.end for i in calendar.intervals
    )
