"""Business-hours arithmetic: worked DST examples, and a property test of
``add``/``between`` against the definition checked minute by minute."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conversation.handlers import business_hours as bh
from conversation.handlers.business_hours import Calendar, Interval

NEW_YORK_9_TO_5 = Calendar(
    "America/New_York", tuple(Interval(d, 9 * 60, 17 * 60) for d in range(5)), frozenset()
)
MINUTE = timedelta(minutes=1)


def test_24_7_is_plain_seconds() -> None:
    start = datetime(2026, 3, 8, 6, 0, tzinfo=UTC)
    assert bh.add(None, start, timedelta(hours=30)) == start + timedelta(hours=30)
    assert bh.between(None, start, start + timedelta(hours=3)) == timedelta(hours=3)


def test_adds_across_a_weekend() -> None:
    # Friday 16:00 New York (EST) plus two business hours: Monday 10:00.
    friday = datetime(2026, 1, 9, 21, 0, tzinfo=UTC)
    assert bh.add(NEW_YORK_9_TO_5, friday, timedelta(hours=2)) == datetime(
        2026, 1, 12, 15, 0, tzinfo=UTC
    )


def test_spring_forward_night_is_an_hour_shorter() -> None:
    night = Calendar("America/New_York", (Interval(6, 0, 6 * 60),), frozenset())
    sunday = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # 00:00 EST
    assert bh.between(night, sunday, sunday + timedelta(days=1)) == timedelta(hours=5)
    # 06:00 EDT is 10:00 UTC.
    assert bh.add(night, sunday, timedelta(hours=5)) == datetime(2026, 3, 8, 10, 0, tzinfo=UTC)


def test_fall_back_night_counts_the_repeated_hour() -> None:
    night = Calendar("America/New_York", (Interval(6, 0, 6 * 60),), frozenset())
    sunday = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # 00:00 EDT
    assert bh.between(night, sunday, sunday + timedelta(days=1)) == timedelta(hours=7)


def test_a_boundary_inside_the_repeated_hour_opens_twice() -> None:
    # 00:00-01:30 on the night 01:00-02:00 happens twice: open 00:00-01:30 EDT,
    # closed 01:30-02:00 EDT, open again 01:00-01:30 EST.
    night = Calendar("America/New_York", (Interval(6, 0, 90),), frozenset())
    spans = bh.day_spans(night, date(2026, 11, 1))
    assert spans == (
        (datetime(2026, 11, 1, 4, 0, tzinfo=UTC), datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),
        (datetime(2026, 11, 1, 6, 0, tzinfo=UTC), datetime(2026, 11, 1, 6, 30, tzinfo=UTC)),
    )


def test_a_start_inside_the_skipped_hour_opens_at_the_jump() -> None:
    night = Calendar("America/New_York", (Interval(6, 2 * 60 + 30, 5 * 60),), frozenset())
    # 02:30 does not exist that night; the first instant past it is 03:00 EDT.
    assert bh.day_spans(night, date(2026, 3, 8)) == (
        (datetime(2026, 3, 8, 7, 0, tzinfo=UTC), datetime(2026, 3, 8, 9, 0, tzinfo=UTC)),
    )


def test_holidays_are_closed() -> None:
    cal = Calendar(
        NEW_YORK_9_TO_5.timezone, NEW_YORK_9_TO_5.intervals, frozenset({date(2026, 1, 12)})
    )
    friday = datetime(2026, 1, 9, 21, 0, tzinfo=UTC)
    assert bh.add(cal, friday, timedelta(hours=2)) == datetime(2026, 1, 13, 15, 0, tzinfo=UTC)


def test_a_calendar_without_hours_refuses_to_add() -> None:
    with pytest.raises(ValueError):
        bh.add(Calendar("UTC", (), frozenset()), datetime(2026, 1, 1, tzinfo=UTC), MINUTE)


ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kathmandu"]
# Near DST changes of those zones.
ANCHORS = [
    datetime(2026, 3, 8, tzinfo=UTC),
    datetime(2026, 3, 29, tzinfo=UTC),
    datetime(2026, 4, 5, tzinfo=UTC),
    datetime(2026, 10, 4, tzinfo=UTC),
    datetime(2026, 10, 25, tzinfo=UTC),
    datetime(2026, 11, 1, tzinfo=UTC),
]


@st.composite
def calendars(draw: st.DrawFn) -> Calendar:
    intervals = []
    for weekday in range(7):
        for _ in range(draw(st.integers(0, 2))):
            start = draw(st.integers(0, 95)) * 15
            length = draw(st.integers(4, 40)) * 15
            intervals.append(Interval(weekday, start, min(start + length, bh.MINUTES_PER_DAY)))
    if not intervals:
        intervals.append(Interval(draw(st.integers(0, 6)), 0, 8 * 60))
    anchor = draw(st.sampled_from(ANCHORS)).date()
    holidays = draw(st.frozensets(st.integers(-3, 10), max_size=2))
    return Calendar(
        draw(st.sampled_from(ZONES)),
        tuple(intervals),
        frozenset(anchor + timedelta(days=d) for d in holidays),
    )


@st.composite
def instants(draw: st.DrawFn) -> datetime:
    anchor = draw(st.sampled_from(ANCHORS))
    return anchor + timedelta(minutes=draw(st.integers(-3 * 1440, 3 * 1440)))


@settings(max_examples=60, deadline=None)
@given(calendars(), instants(), st.integers(0, 2 * 1440))
def test_between_counts_business_minutes(cal: Calendar, start: datetime, minutes: int) -> None:
    expected = sum(bh.is_business(cal, start + MINUTE * m) for m in range(minutes))
    assert bh.between(cal, start, start + MINUTE * minutes) == MINUTE * expected


@settings(max_examples=60, deadline=None)
@given(calendars(), instants(), st.integers(1, 600))
def test_add_lands_after_the_nth_business_minute(
    cal: Calendar, start: datetime, minutes: int
) -> None:
    at, counted = start, 0
    while counted < minutes:
        counted += bh.is_business(cal, at)
        at += MINUTE
    # The end of the last business minute it needs.
    assert bh.add(cal, start, MINUTE * minutes) == at
