"""gRPC servicer of SlaService: translation only."""

from __future__ import annotations

from confab.conversation.v1 import sla_pb2 as pb
from confab.conversation.v1 import sla_pb2_grpc as pb_grpc
from confab.conversation.v1 import support_pb2 as spb
from confab_core.errors import InvalidArgument
from confab_core.grpcx import Ctx
from confab_core.identity import current_caller
from conversation.convert import ts
from conversation.handlers.sla_policy import SlaPolicyDraft, SlaPolicyHandler
from conversation.storage.sla import SlaPolicyRecord, SlaTargetsRecord

_PRIORITIES = {
    spb.TICKET_PRIORITY_LOW: "low",
    spb.TICKET_PRIORITY_MEDIUM: "medium",
    spb.TICKET_PRIORITY_HIGH: "high",
    spb.TICKET_PRIORITY_URGENT: "urgent",
}
_PRIORITY_VALUES = {name: value for value, name in _PRIORITIES.items()}
_ACTIONS = {
    pb.SLA_BREACH_ACTION_NOTIFY: "notify",
    pb.SLA_BREACH_ACTION_ESCALATE: "escalate",
    pb.SLA_BREACH_ACTION_REASSIGN: "reassign",
    pb.SLA_BREACH_ACTION_RAISE_PRIORITY: "raise_priority",
}
_ACTION_VALUES = {name: value for value, name in _ACTIONS.items()}


def _wall(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _minute(text: str) -> int:
    """ "HH:MM" (00:00 .. 24:00) as minutes since midnight."""
    hours, sep, minutes = text.partition(":")
    if not (sep and len(hours) == 2 and len(minutes) == 2 and (hours + minutes).isdigit()):
        raise InvalidArgument("intervals: times as HH:MM", "invalid_hours")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) >= 60 or value > 24 * 60:
        raise InvalidArgument("intervals: times as HH:MM, 00:00 to 24:00", "invalid_hours")
    return value


def policy_message(p: SlaPolicyRecord) -> pb.SlaPolicy:
    return pb.SlaPolicy(
        targets=[
            pb.SlaTargets(
                priority=_PRIORITY_VALUES[t.priority],
                first_response_seconds=t.first_response,
                next_response_seconds=t.next_response,
                resolution_seconds=t.resolution,
            )
            for t in p.targets
        ],
        business_hours_only=p.business_hours_only,
        business_hours=pb.BusinessHours(
            timezone=p.timezone,
            intervals=[
                pb.BusinessInterval(weekday=w + 1, start=_wall(s), end=_wall(e))
                for w, s, e in p.intervals
            ],
            holidays=list(p.holidays),
        ),
        warning_seconds=p.warning_seconds,
        breach_actions=[_ACTION_VALUES[a] for a in p.breach_actions],
        updated_at=ts(p.updated_at),
        version=p.version,
    )


def draft(p: pb.SlaPolicy) -> SlaPolicyDraft:
    # Unknown or unspecified enum values become "", which validation names.
    return SlaPolicyDraft(
        targets=tuple(
            SlaTargetsRecord(
                _PRIORITIES.get(t.priority, ""),
                t.first_response_seconds,
                t.next_response_seconds,
                t.resolution_seconds,
            )
            for t in p.targets
        ),
        business_hours_only=p.business_hours_only,
        timezone=p.business_hours.timezone or "UTC",
        intervals=tuple(
            (i.weekday - 1, _minute(i.start), _minute(i.end)) for i in p.business_hours.intervals
        ),
        holidays=tuple(p.business_hours.holidays),
        warning_seconds=p.warning_seconds,
        breach_actions=tuple(_ACTIONS.get(a, "") for a in p.breach_actions),
    )


class SlaServicer(pb_grpc.SlaServiceServicer):
    def __init__(self, policies: SlaPolicyHandler) -> None:
        self._p = policies

    async def GetSlaPolicy(
        self, request: pb.GetSlaPolicyRequest, context: Ctx
    ) -> pb.GetSlaPolicyResponse:
        return pb.GetSlaPolicyResponse(policy=policy_message(await self._p.get(current_caller())))

    async def PutSlaPolicy(
        self, request: pb.PutSlaPolicyRequest, context: Ctx
    ) -> pb.PutSlaPolicyResponse:
        caller = current_caller()
        stored = await self._p.put(caller, draft(request.policy), request.expected_version)
        return pb.PutSlaPolicyResponse(policy=policy_message(stored))
