"""The conversation service's SlaService, as the gateway calls it, and the
translation between its messages and the public JSON shapes."""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING, cast

from confab.conversation.v1 import sla_pb2 as pb
from confab.conversation.v1 import support_pb2 as spb
from confab_core.identity import Caller
from gateway import sla_schemas as s
from gateway.clients.peer import PeerClient

if TYPE_CHECKING:
    from confab.conversation.v1.sla_pb2_grpc import SlaServiceAsyncStub

_INT32 = (-(2**31), 2**31 - 1)


class SlaClient(PeerClient):
    def __init__(self, stub: SlaServiceAsyncStub, timeout: float) -> None:
        super().__init__(timeout)
        self._stub = stub

    async def get_policy(self, caller: Caller) -> pb.GetSlaPolicyResponse:
        return await self._call(self._stub.GetSlaPolicy, pb.GetSlaPolicyRequest(), caller)

    async def put_policy(
        self, caller: Caller, request: pb.PutSlaPolicyRequest
    ) -> pb.PutSlaPolicyResponse:
        return await self._call(self._stub.PutSlaPolicy, request, caller)


def _name(enum: type, prefix: str, value: int) -> str:
    return str(enum.Name(value))[len(prefix) :].lower()  # type: ignore[attr-defined]


def _value(enum: type, prefix: str, name: str) -> int:
    # An unknown name becomes UNSPECIFIED, which the service refuses with the
    # field's stable code (invalid_priority, invalid_breach_action).
    values: dict[str, int] = dict(enum.items())  # type: ignore[attr-defined]
    return values.get(f"{prefix}{name.upper()}", 0)


def policy_out(p: pb.SlaPolicy) -> s.SlaPolicyOut:
    return s.SlaPolicyOut(
        targets=[
            s.SlaTargets(
                priority=_name(spb.TicketPriority, "TICKET_PRIORITY_", t.priority),
                first_response_seconds=t.first_response_seconds,
                next_response_seconds=t.next_response_seconds,
                resolution_seconds=t.resolution_seconds,
            )
            for t in p.targets
        ],
        business_hours_only=p.business_hours_only,
        business_hours=s.BusinessHours(
            timezone=p.business_hours.timezone,
            intervals=[
                s.BusinessInterval(weekday=i.weekday, start=i.start, end=i.end)
                for i in p.business_hours.intervals
            ],
            holidays=list(p.business_hours.holidays),
        ),
        warning_seconds=p.warning_seconds,
        breach_actions=[
            _name(pb.SlaBreachAction, "SLA_BREACH_ACTION_", a) for a in p.breach_actions
        ],
        updated_at=p.updated_at.ToDatetime(tzinfo=UTC) if p.HasField("updated_at") else None,
        version=p.version,
    )


def put_request(body: s.SlaPolicyIn) -> pb.PutSlaPolicyRequest:
    hours = body.business_hours
    return pb.PutSlaPolicyRequest(
        policy=pb.SlaPolicy(
            targets=[
                pb.SlaTargets(
                    priority=cast(
                        spb.TicketPriority.ValueType,
                        _value(spb.TicketPriority, "TICKET_PRIORITY_", t.priority),
                    ),
                    first_response_seconds=t.first_response_seconds,
                    next_response_seconds=t.next_response_seconds,
                    resolution_seconds=t.resolution_seconds,
                )
                for t in body.targets
            ],
            business_hours_only=body.business_hours_only,
            business_hours=pb.BusinessHours(
                timezone=hours.timezone,
                intervals=[
                    pb.BusinessInterval(weekday=i.weekday, start=i.start, end=i.end)
                    for i in hours.intervals
                ],
                holidays=hours.holidays,
            ),
            warning_seconds=body.warning_seconds,
            breach_actions=[
                cast(
                    pb.SlaBreachAction.ValueType,
                    _value(pb.SlaBreachAction, "SLA_BREACH_ACTION_", a),
                )
                for a in body.breach_actions
            ],
        ),
        expected_version=body.expected_version,
    )
