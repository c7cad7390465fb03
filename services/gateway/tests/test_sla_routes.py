"""GET/PUT /api/v1/support/sla: translation both ways, the rate limit, and
bad input (the gateway's own checks and the service's stable codes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import grpc
import httpx
import pytest
import pytest_asyncio

from confab.conversation.v1 import sla_pb2 as pb
from confab.conversation.v1 import support_pb2 as spb
from confab_core.auth import JwtVerifier
from confab_core.identity import Caller
from gateway.clients.sla import SlaClient
from gateway.context import GatewayContext
from gateway.ratelimit import Action, RateLimited

from .conftest import SECRET, FakeConversation, NoLimit, RpcError, make_ops, shared_api, token

pytestmark = pytest.mark.asyncio

POLICY = pb.SlaPolicy(
    targets=[
        pb.SlaTargets(
            priority=spb.TICKET_PRIORITY_HIGH,
            first_response_seconds=900,
            next_response_seconds=1800,
            resolution_seconds=14400,
        )
    ],
    business_hours_only=True,
    business_hours=pb.BusinessHours(
        timezone="Europe/Berlin",
        intervals=[pb.BusinessInterval(weekday=1, start="09:00", end="17:00")],
        holidays=["2026-12-25"],
    ),
    warning_seconds=300,
    breach_actions=[pb.SLA_BREACH_ACTION_ESCALATE, pb.SLA_BREACH_ACTION_RAISE_PRIORITY],
    version=3,
)


class Limiter(NoLimit):
    def __init__(self) -> None:
        super().__init__()
        self.refuse = False

    async def check(self, caller: Caller, action: Action) -> None:
        await super().check(caller, action)
        if self.refuse:
            raise RateLimited("too many SLA policy calls, slow down", "rate_limited", 7)


@pytest.fixture
def stub() -> FakeConversation:
    return FakeConversation()


@pytest.fixture
def limiter() -> Limiter:
    return Limiter()


@pytest_asyncio.fixture
async def http(stub: FakeConversation, limiter: Limiter) -> AsyncIterator[httpx.AsyncClient]:
    api = shared_api()
    ops = make_ops(stub)
    ops._limiter = limiter  # type: ignore[assignment]
    backends = type("Backends", (), {"sla": SlaClient(cast(Any, stub), 5.0)})()
    api.state.gateway = GatewayContext(
        settings=cast(Any, None),
        verifier=JwtVerifier(hs256_secret=SECRET),
        backends=cast(Any, backends),
        ops=ops,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api),
        base_url="http://gateway/api/v1",
        headers={"Authorization": f"Bearer {token(roles=['tenant_admin'])}"},
    ) as client:
        yield client


async def test_get_translates_the_policy(
    http: httpx.AsyncClient, stub: FakeConversation, limiter: Limiter
) -> None:
    stub.responses["GetSlaPolicy"] = pb.GetSlaPolicyResponse(policy=POLICY)
    resp = await http.get("/support/sla")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["targets"] == [
        {
            "priority": "high",
            "first_response_seconds": 900,
            "next_response_seconds": 1800,
            "resolution_seconds": 14400,
        }
    ]
    assert body["business_hours"]["intervals"] == [{"weekday": 1, "start": "09:00", "end": "17:00"}]
    assert body["breach_actions"] == ["escalate", "raise_priority"]
    assert body["version"] == 3 and body["updated_at"] is None
    assert limiter.checked == [Action.SLA_POLICY]


async def test_put_sends_the_whole_policy(http: httpx.AsyncClient, stub: FakeConversation) -> None:
    stub.responses["PutSlaPolicy"] = pb.PutSlaPolicyResponse(policy=POLICY)
    resp = await http.put(
        "/support/sla",
        json={
            "targets": [{"priority": "urgent", "first_response_seconds": 60}],
            "business_hours_only": True,
            "business_hours": {
                "timezone": "Asia/Tokyo",
                "intervals": [{"weekday": 7, "start": "10:00", "end": "24:00"}],
            },
            "breach_actions": ["reassign", "nonsense"],
            "expected_version": 2,
        },
    )
    assert resp.status_code == 200, resp.text
    sent = stub.last("PutSlaPolicy")
    assert sent.expected_version == 2
    assert sent.policy.targets[0].priority == spb.TICKET_PRIORITY_URGENT
    assert sent.policy.business_hours.intervals[0].end == "24:00"
    # An unknown name goes as UNSPECIFIED: the service names it (invalid_breach_action).
    assert list(sent.policy.breach_actions) == [pb.SLA_BREACH_ACTION_REASSIGN, 0]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"expected_version": -1},
        {"expected_version": 0, "surprise": 1},
        {"expected_version": 0, "targets": "all"},
        {"expected_version": 0, "breach_actions": ["notify"] * 9},
        {"expected_version": 0, "business_hours": {"timezone": "x" * 65}},
    ],
)
async def test_malformed_bodies_are_422_before_any_call(
    http: httpx.AsyncClient, stub: FakeConversation, body: dict[str, Any]
) -> None:
    resp = await http.put("/support/sla", json=body)
    assert resp.status_code == 422
    assert resp.json()["error"]["code"] == "invalid_request"
    assert stub.calls == []


@pytest.mark.parametrize(
    ("status", "code", "http_status"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, "invalid_timezone", 422),
        (grpc.StatusCode.INVALID_ARGUMENT, "invalid_hours", 422),
        (grpc.StatusCode.FAILED_PRECONDITION, "version_conflict", 409),
        (grpc.StatusCode.PERMISSION_DENIED, "forbidden", 403),
    ],
)
async def test_service_refusals_keep_their_codes(
    http: httpx.AsyncClient,
    stub: FakeConversation,
    status: grpc.StatusCode,
    code: str,
    http_status: int,
) -> None:
    stub.responses["PutSlaPolicy"] = RpcError(status, "refused", code)
    resp = await http.put("/support/sla", json={"expected_version": 0})
    assert resp.status_code == http_status
    assert resp.json()["error"]["code"] == code


async def test_rate_limited(http: httpx.AsyncClient, limiter: Limiter) -> None:
    limiter.refuse = True
    resp = await http.get("/support/sla")
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "7"
