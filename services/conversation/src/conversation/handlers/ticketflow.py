"""The ticket state machine: docs/support.md's table as data. Pure: no I/O.

Statuses: new, bot, queued, assigned, waiting_on_user, resolved, closed.
An action is legal from the statuses its row names, and leads to one status.
``escalate`` and ``fields`` keep the status (they change flags and fields).
"""

from __future__ import annotations

from confab.conversation.v1 import support_pb2 as spb
from confab_core.errors import FailedPrecondition
from conversation.storage.tickets import (
    ASSIGNED,
    BOT,
    CLOSED,
    NEW,
    QUEUED,
    RESOLVED,
    WAITING_ON_USER,
)

SUBMIT = "submit"
HANDOFF = "handoff"
CLAIM = "claim"
ASSIGN = "assign"
# An admin's assignment to a team only: back to the queue, for that team.
ASSIGN_TEAM = "assign_team"
AUTO_ASSIGN = "auto_assign"
RELEASE = "release"
WAIT_ON_USER = "wait_on_user"
RESUME = "resume"
RESOLVE = "resolve"
CLOSE = "close"
REOPEN = "reopen"
ESCALATE = "escalate"
# Subject, category, priority, tags, context.
FIELDS = "fields"

_LIVE = (BOT, QUEUED, ASSIGNED, WAITING_ON_USER)

# action -> {from status: to status}. ``submit`` goes to ``bot`` instead of
# ``queued`` when the tenant has an enabled support agent (see ``next_status``).
TABLE: dict[str, dict[str, str]] = {
    SUBMIT: {NEW: QUEUED},
    HANDOFF: {BOT: QUEUED},
    CLAIM: {BOT: ASSIGNED, QUEUED: ASSIGNED},
    ASSIGN: {
        BOT: ASSIGNED,
        QUEUED: ASSIGNED,
        ASSIGNED: ASSIGNED,
        # A transfer does not wake a ticket that waits on its requester.
        WAITING_ON_USER: WAITING_ON_USER,
    },
    ASSIGN_TEAM: {BOT: QUEUED, QUEUED: QUEUED, ASSIGNED: QUEUED, WAITING_ON_USER: QUEUED},
    AUTO_ASSIGN: {QUEUED: ASSIGNED},
    RELEASE: {ASSIGNED: QUEUED, WAITING_ON_USER: QUEUED},
    WAIT_ON_USER: {ASSIGNED: WAITING_ON_USER},
    RESUME: {WAITING_ON_USER: ASSIGNED},
    RESOLVE: {s: RESOLVED for s in _LIVE},
    CLOSE: {**{s: CLOSED for s in _LIVE}, RESOLVED: CLOSED},
    REOPEN: {RESOLVED: QUEUED, CLOSED: QUEUED},
    ESCALATE: {s: s for s in (*_LIVE, RESOLVED)},
    FIELDS: {s: s for s in (NEW, *_LIVE, RESOLVED)},
}
ACTIONS = tuple(TABLE)

# TransitionTicket's actions; the others have RPCs of their own.
BY_PROTO: dict[int, str] = {
    spb.TICKET_ACTION_SUBMIT: SUBMIT,
    spb.TICKET_ACTION_HANDOFF: HANDOFF,
    spb.TICKET_ACTION_RELEASE: RELEASE,
    spb.TICKET_ACTION_WAIT_ON_USER: WAIT_ON_USER,
    spb.TICKET_ACTION_RESUME: RESUME,
    spb.TICKET_ACTION_RESOLVE: RESOLVE,
    spb.TICKET_ACTION_CLOSE: CLOSE,
    spb.TICKET_ACTION_REOPEN: REOPEN,
}


STATUS_TO_PROTO: dict[str, int] = {
    NEW: spb.TICKET_STATUS_NEW,
    BOT: spb.TICKET_STATUS_BOT,
    QUEUED: spb.TICKET_STATUS_QUEUED,
    ASSIGNED: spb.TICKET_STATUS_ASSIGNED,
    WAITING_ON_USER: spb.TICKET_STATUS_WAITING_ON_USER,
    RESOLVED: spb.TICKET_STATUS_RESOLVED,
    CLOSED: spb.TICKET_STATUS_CLOSED,
}
STATUS_FROM_PROTO = {v: k for k, v in STATUS_TO_PROTO.items()}
# What the queue shows when no status is asked for: the unassigned open ones.
QUEUE_STATUSES = (NEW, BOT, QUEUED)


def invalid(status: str, action: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"a {status} ticket cannot take the action {action}", "invalid_transition"
    )


def allowed(status: str, action: str) -> bool:
    return status in TABLE.get(action, {})


def next_status(status: str, action: str, *, to_bot: bool = False) -> str:
    """The status ``action`` leads to from ``status``, or invalid_transition.
    ``to_bot``: the tenant's support agent takes the submitted ticket first."""
    row = TABLE.get(action)
    if row is None or status not in row:
        raise invalid(status, action)
    if action == SUBMIT and to_bot:
        return BOT
    return row[status]


def in_queue(status: str, assignee_id: str) -> bool:
    """Whether a ticket in this state is one the queue shows by default."""
    return status in (NEW, BOT, QUEUED) and not assignee_id
