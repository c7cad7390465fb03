"""Auto-assignment routes over ASGI: bad input is a 422 that never reaches the
service, every route spends its rate-limit budget first, and the service's
answers translate field by field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest
import pytest_asyncio

from confab.conversation.v1 import assignment_pb2 as apb
from confab_core.auth import JwtVerifier
from confab_core.identity import Caller
from gateway.clients.assignment import AssignmentClient
from gateway.context import GatewayContext
from gateway.ratelimit import Action, RateLimited

from .conftest import SECRET, shared_api, token

pytestmark = pytest.mark.asyncio


class FakeAssignment:
    """Records each AssignmentService request and answers with fixed values."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        async def rpc(request: Any, timeout: float | None = None) -> Any:
            self.calls.append((name, request))
            settings = apb.AssignmentSettings(
                enabled=True, mode=apb.ASSIGNMENT_MODE_LEAST_BUSY, default_capacity=4, version=3
            )
            agent = apb.Agent(
                user_id="ann",
                name="Ann",
                online=True,
                capacity=2,
                custom_capacity=True,
                open_tickets=1,
                team_ids=["billing"],
                roles=["agent"],
            )
            return {
                "GetAssignmentSettings": apb.GetAssignmentSettingsResponse(settings=settings),
                "UpdateAssignmentSettings": apb.UpdateAssignmentSettingsResponse(settings=settings),
                "ListAgents": apb.ListAgentsResponse(agents=[agent]),
                "SetAgentCapacity": apb.SetAgentCapacityResponse(agent=agent),
            }[name]

        return rpc


class Limiter:
    def __init__(self, refuse: bool) -> None:
        self.refuse = refuse
        self.checked: list[Action] = []

    async def check(self, caller: Caller, action: Action) -> None:
        self.checked.append(action)
        if self.refuse:
            raise RateLimited("slow down", "rate_limited", 3)


class Ops:
    def __init__(self, limiter: Any) -> None:
        self.limiter = limiter


World = tuple[httpx.AsyncClient, FakeAssignment, Limiter]


async def _world(refuse: bool) -> AsyncIterator[World]:
    stub, limiter = FakeAssignment(), Limiter(refuse)
    backends = type("B", (), {"assignment": AssignmentClient(cast(Any, stub), 5.0)})()
    api = shared_api()
    api.state.gateway = GatewayContext(
        settings=cast(Any, None),
        verifier=JwtVerifier(hs256_secret=SECRET),
        backends=cast(Any, backends),
        ops=cast(Any, Ops(limiter)),
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api),
        base_url="http://gateway/api/v1",
        headers={"Authorization": f"Bearer {token(roles=['tenant_admin'])}"},
    ) as http:
        yield http, stub, limiter


@pytest_asyncio.fixture
async def world() -> AsyncIterator[World]:
    async for w in _world(refuse=False):
        yield w


@pytest_asyncio.fixture
async def limited() -> AsyncIterator[World]:
    async for w in _world(refuse=True):
        yield w


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/support/assignment", {"mode": "random"}),
        ("/support/assignment", {"default_capacity": 0}),
        ("/support/assignment", {"default_capacity": 1001}),
        ("/support/assignment", {"enabled": "maybe"}),
        ("/support/assignment", {"expected_version": -1}),
        ("/support/assignment", {"surprise": 1}),
        ("/support/agents/ann", {}),
        ("/support/agents/ann", {"capacity": -1}),
        ("/support/agents/ann", {"capacity": 1001}),
        ("/support/agents/ann", {"capacity": "two"}),
        ("/support/agents/" + "x" * 129, {"capacity": 1}),
    ],
)
async def test_bad_input_is_422_and_reaches_no_service(
    world: World, path: str, body: dict[str, Any]
) -> None:
    http, stub, limiter = world
    resp = await http.put(path, json=body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "invalid_request"
    assert stub.calls == [] and limiter.checked == []


@pytest.mark.parametrize(
    ("method", "path", "body", "action"),
    [
        ("get", "/support/assignment", None, Action.TICKET_READ),
        ("put", "/support/assignment", {"enabled": True}, Action.SUPPORT_ADMIN),
        ("get", "/support/agents", None, Action.TICKET_READ),
        ("put", "/support/agents/ann", {"capacity": 2}, Action.SUPPORT_ADMIN),
    ],
)
async def test_every_route_spends_its_budget_first(
    limited: World, method: str, path: str, body: dict[str, Any] | None, action: Action
) -> None:
    http, stub, limiter = limited
    resp = await (http.put(path, json=body) if method == "put" else http.get(path))
    assert resp.status_code == 429, resp.text
    assert resp.headers["Retry-After"] == "3"
    assert limiter.checked == [action] and stub.calls == []


async def test_settings_translate_both_ways(world: World) -> None:
    http, stub, _ = world
    resp = await http.put(
        "/support/assignment",
        json={
            "enabled": False,
            "mode": "round_robin",
            "default_capacity": 7,
            "expected_version": 3,
        },
    )
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "enabled": True,
        "mode": "least_busy",
        "default_capacity": 4,
        "updated_at": None,
        "version": 3,
    }
    [(name, request)] = stub.calls
    assert name == "UpdateAssignmentSettings"
    assert request.HasField("enabled") and not request.enabled
    assert request.mode == apb.ASSIGNMENT_MODE_ROUND_ROBIN
    assert (request.default_capacity, request.expected_version) == (7, 3)


async def test_a_partial_update_sends_only_what_is_present(world: World) -> None:
    http, stub, _ = world
    assert (await http.put("/support/assignment", json={"enabled": True})).status_code == 200
    [(_, request)] = stub.calls
    assert request.HasField("enabled")
    for absent in ("mode", "default_capacity", "expected_version"):
        assert not request.HasField(absent)


async def test_capacity_null_clears_it_and_agents_translate(world: World) -> None:
    http, stub, _ = world
    resp = await http.put("/support/agents/ann", json={"capacity": None})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "user_id": "ann",
        "name": "Ann",
        "roles": ["agent"],
        "online": True,
        "capacity": 2,
        "custom_capacity": True,
        "open_tickets": 1,
        "team_ids": ["billing"],
        "last_assigned_at": None,
    }
    await http.put("/support/agents/ann", json={"capacity": 0})
    cleared, zero = (request for _, request in stub.calls)
    assert cleared.clear and cleared.user_id == "ann"
    assert not zero.clear and zero.capacity == 0
    listed = (await http.get("/support/agents")).json()
    assert [a["user_id"] for a in listed["agents"]] == ["ann"]
