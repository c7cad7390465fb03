"""The AI routes over ASGI: the month's usage (tenant admins, a valid month, its
own rate limit, the caller's tenant only) and the summary (GET, the seed's
verb, and POST as an alias: members only, rate limited)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import grpc
import httpx
import pytest
import pytest_asyncio

from confab.bot.v1 import bot_pb2
from confab.conversation.v1 import botdata_pb2 as bpb
from confab_core.auth import JwtVerifier
from confab_core.identity import Caller, maybe_caller
from gateway.clients.bot import BotClient
from gateway.clients.botdata import BotDataClient
from gateway.clients.ops import ChatOps
from gateway.context import GatewayContext
from gateway.ratelimit import Action, RateLimited

from .conftest import SECRET, RpcError, shared_api, token

pytestmark = pytest.mark.asyncio

USAGE = bpb.TenantUsage(
    month="2026-11",
    tokens_in=120,
    tokens_out=80,
    quota_tokens=150,
    over_quota=True,
    agents=[bpb.AgentUsage(agent_id="helper", tokens_in=120, tokens_out=80, calls=4)],
)


class FakeServices:
    """BotDataService and BotService: records (rpc, request, caller's tenant and
    user), answers a canned response or raises ``error``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, tuple[str, str]]] = []
        self.error: Exception | None = None

    def _record(self, name: str, request: Any) -> None:
        caller = maybe_caller()
        assert caller is not None
        self.calls.append((name, request, (caller.tenant_id, caller.user_id)))
        if self.error:
            raise self.error

    async def GetUsage(self, request: Any, timeout: float | None = None) -> Any:
        self._record("GetUsage", request)
        return bpb.GetUsageResponse(usage=USAGE)

    async def SummarizeConversation(self, request: Any, timeout: float | None = None) -> Any:
        self._record("SummarizeConversation", request)
        return bot_pb2.SummarizeConversationResponse(summary="they agreed", model_available=True)


class Limiter:
    def __init__(self) -> None:
        self.checked: list[Action] = []
        self.refuse = False

    async def check(self, caller: Caller, action: Action) -> None:
        self.checked.append(action)
        if self.refuse:
            raise RateLimited("slow down", "rate_limited", 3)


World = tuple[httpx.AsyncClient, FakeServices, Limiter]


@pytest_asyncio.fixture
async def world() -> AsyncIterator[World]:
    stub, limiter = FakeServices(), Limiter()
    backends = type(
        "B",
        (),
        {
            "bot_data": BotDataClient(cast(Any, stub), 5.0),
            "bot": BotClient(cast(Any, stub), 5.0),
        },
    )()
    api = shared_api()
    api.state.gateway = GatewayContext(
        settings=cast(Any, None),
        verifier=JwtVerifier(hs256_secret=SECRET),
        backends=cast(Any, backends),
        # The real ChatOps: the summary route's call, over the fake bot.
        ops=ChatOps(cast(Any, backends), cast(Any, limiter)),
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api),
        base_url="http://gateway/api/v1",
        headers={"Authorization": f"Bearer {token(roles=['tenant_admin'])}"},
    ) as http:
        yield http, stub, limiter


async def test_usage_of_a_month(world: World) -> None:
    http, stub, limiter = world
    resp = await http.get("/ai/usage", params={"month": "2026-11"})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "month": "2026-11",
        "tokens_in": 120,
        "tokens_out": 80,
        "quota_tokens": 150,
        "over_quota": True,
        "agents": [{"agent_id": "helper", "tokens_in": 120, "tokens_out": 80, "calls": 4}],
    }
    [(name, request, who)] = stub.calls
    assert (name, request.month, who) == ("GetUsage", "2026-11", ("t1", "u1"))
    assert limiter.checked == [Action.AI_USAGE]
    # Without a month, the service answers for the current one.
    await http.get("/ai/usage")
    assert stub.calls[-1][1].month == ""


@pytest.mark.parametrize("month", ["2026-13", "2026-1", "26-11", "2026-11-01", "nov", "2026-00"])
async def test_a_bad_month_is_422_and_reaches_no_service(world: World, month: str) -> None:
    http, stub, limiter = world
    resp = await http.get("/ai/usage", params={"month": month})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "invalid_month"
    assert stub.calls == [] and limiter.checked == []


async def test_a_too_long_month_is_422(world: World) -> None:
    http, stub, _ = world
    resp = await http.get("/ai/usage", params={"month": "2" * 17})
    assert resp.status_code == 422 and stub.calls == []


async def test_usage_is_the_callers_tenants(world: World) -> None:
    http, stub, _ = world
    other = {"Authorization": f"Bearer {token(tenant='t2', user='root', roles=['tenant_admin'])}"}
    resp = await http.get("/ai/usage", headers=other)
    assert resp.status_code == 200
    # The service scopes every read to the caller's tenant; the route names no other.
    assert stub.calls[-1][2] == ("t2", "root")


async def test_the_services_refusal_is_403(world: World) -> None:
    http, stub, _ = world
    stub.error = RpcError(grpc.StatusCode.PERMISSION_DENIED, "admins only", "forbidden")
    resp = await http.get("/ai/usage", headers={"Authorization": f"Bearer {token()}"})
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "forbidden"


async def test_usage_spends_its_own_budget_first(world: World) -> None:
    http, stub, limiter = world
    limiter.refuse = True
    resp = await http.get("/ai/usage")
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "3"
    assert limiter.checked == [Action.AI_USAGE] and stub.calls == []


async def test_without_a_token_it_is_401(world: World) -> None:
    http, stub, _ = world
    resp = await http.get("/ai/usage", headers={"Authorization": ""})
    assert resp.status_code == 401 and stub.calls == []


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_summary_by_get_and_post(world: World, method: str) -> None:
    http, stub, limiter = world
    resp = await http.request(method, "/conversations/c1/summary")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"summary": "they agreed", "model_available": True}
    [(name, request, who)] = stub.calls
    assert (name, request.conversation_id, who) == ("SummarizeConversation", "c1", ("t1", "u1"))
    assert limiter.checked == [Action.SUMMARY]


@pytest.mark.parametrize("tenant", ["t1", "t2"])
async def test_summary_of_a_conversation_one_cannot_read_is_404(world: World, tenant: str) -> None:
    """A non-member of t1, or anyone of t2: the bot reads as the caller and the
    conversation service answers NOT_FOUND, which stays a 404."""
    http, stub, _ = world
    stub.error = RpcError(
        grpc.StatusCode.NOT_FOUND, "conversation not found", "conversation_not_found"
    )
    headers = {"Authorization": f"Bearer {token(tenant=tenant, user='stranger')}"}
    resp = await http.get("/conversations/c1/summary", headers=headers)
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "conversation_not_found"
    assert stub.calls[-1][2] == (tenant, "stranger")


async def test_summary_is_rate_limited(world: World) -> None:
    http, stub, limiter = world
    limiter.refuse = True
    resp = await http.get("/conversations/c1/summary")
    assert resp.status_code == 429 and stub.calls == []
