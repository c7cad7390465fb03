"""The ticket state machine over its whole table: every status x every action.

The expected table is written out here on its own (docs/support.md's table),
not derived from the module, so a change of either shows up as a failure.
"""

from __future__ import annotations

import pytest

from confab_core.errors import FailedPrecondition
from conversation.handlers import ticketflow as tf

STATUSES = ("new", "bot", "queued", "assigned", "waiting_on_user", "resolved", "closed")
_ = None  # illegal

# action: (new, bot, queued, assigned, waiting_on_user, resolved, closed)
EXPECTED: dict[str, tuple[str | None, ...]] = {
    "submit": ("queued", _, _, _, _, _, _),
    "handoff": (_, "queued", _, _, _, _, _),
    "claim": (_, "assigned", "assigned", _, _, _, _),
    "assign": (_, "assigned", "assigned", "assigned", "waiting_on_user", _, _),
    "assign_team": (_, "queued", "queued", "queued", "queued", _, _),
    "auto_assign": (_, _, "assigned", _, _, _, _),
    "release": (_, _, _, "queued", "queued", _, _),
    "wait_on_user": (_, _, _, "waiting_on_user", _, _, _),
    "resume": (_, _, _, _, "assigned", _, _),
    "resolve": (_, "resolved", "resolved", "resolved", "resolved", _, _),
    "close": (_, "closed", "closed", "closed", "closed", "closed", _),
    "reopen": (_, _, _, _, _, "queued", "queued"),
    "escalate": (_, "bot", "queued", "assigned", "waiting_on_user", "resolved", _),
    "fields": ("new", "bot", "queued", "assigned", "waiting_on_user", "resolved", _),
}

CELLS = [
    (action, status, row[i])
    for action, row in EXPECTED.items()
    for i, status in enumerate(STATUSES)
]


def test_the_table_names_every_action_and_status() -> None:
    assert set(tf.ACTIONS) == set(EXPECTED)
    assert set(tf.STATUS_TO_PROTO) == set(STATUSES)


@pytest.mark.parametrize(("action", "status", "expected"), CELLS)
def test_every_cell(action: str, status: str, expected: str | None) -> None:
    assert tf.allowed(status, action) is (expected is not None)
    if expected is None:
        with pytest.raises(FailedPrecondition) as err:
            tf.next_status(status, action)
        assert err.value.code == "invalid_transition"
    else:
        assert tf.next_status(status, action) == expected


def test_submit_goes_to_the_bot_when_it_takes_new_tickets() -> None:
    assert tf.next_status("new", "submit", to_bot=True) == "bot"
    with pytest.raises(FailedPrecondition):
        tf.next_status("queued", "submit", to_bot=True)


def test_an_unknown_action_is_an_invalid_transition() -> None:
    with pytest.raises(FailedPrecondition) as err:
        tf.next_status("queued", "explode")
    assert err.value.code == "invalid_transition"


@pytest.mark.parametrize(
    ("status", "assignee", "shown"),
    [
        ("new", "", True),
        ("bot", "", True),
        ("queued", "", True),
        ("queued", "a1", False),
        ("assigned", "a1", False),
        ("waiting_on_user", "a1", False),
        ("resolved", "", False),
        ("closed", "", False),
    ],
)
def test_what_the_default_queue_shows(status: str, assignee: str, shown: bool) -> None:
    assert tf.in_queue(status, assignee) is shown
