"""Analytics routes over ASGI: JSON and CSV, bad input that never reaches the
service, the service's refusals passed on, and the route's own rate limit."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any, cast

import grpc
import httpx
import pytest
import pytest_asyncio

from confab.conversation.v1 import analytics_pb2 as apb
from confab_core.auth import JwtVerifier
from confab_core.identity import Caller
from gateway.clients.analytics import AnalyticsClient
from gateway.context import GatewayContext
from gateway.ratelimit import Action, RateLimited

from .conftest import SECRET, RpcError, shared_api, token

pytestmark = pytest.mark.asyncio

ROW = apb.SupportRow(
    bucket_start="2026-11-02",
    group="ann",
    opened=3,
    assigned=2,
    resolved=1,
    backlog=2,
    first_response=apb.DurationStats(count=2, median_seconds=600, p90_seconds=1800),
    resolution=apb.DurationStats(count=1, median_seconds=7200, p90_seconds=7200),
    sla_hit=1,
    sla_missed=0,
    sla_hit_rate=1.0,
    sla_breaches=0,
)
CHAT = apb.GetChatUsageResponse(
    days=[apb.ChatDay(day="2026-11-02", messages=5, active_users=2)],
    active_users=2,
    busiest=[apb.ChannelUsage(conversation_id="c1", kind="public_channel", messages=5)],
    busiest_days=[apb.ChannelDay(day="2026-11-02", conversation_id="c1", messages=5)],
)


class FakeAnalytics:
    """Records each AnalyticsService request; answers ROW / CHAT or raises ``error``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.error: Exception | None = None

    async def GetSupportAnalytics(self, request: Any, timeout: float | None = None) -> Any:
        self.calls.append(("support", request))
        if self.error:
            raise self.error
        return apb.GetSupportAnalyticsResponse(rows=[ROW])

    async def GetChatUsage(self, request: Any, timeout: float | None = None) -> Any:
        self.calls.append(("chat", request))
        if self.error:
            raise self.error
        return CHAT


class Limiter:
    def __init__(self) -> None:
        self.checked: list[Action] = []
        self.refuse = False

    async def check(self, caller: Caller, action: Action) -> None:
        self.checked.append(action)
        if self.refuse:
            raise RateLimited("slow down", "rate_limited", 3)


class Ops:
    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter


World = tuple[httpx.AsyncClient, FakeAnalytics, Limiter]


@pytest_asyncio.fixture
async def world() -> AsyncIterator[World]:
    stub, limiter = FakeAnalytics(), Limiter()
    backends = type("B", (), {"analytics": AnalyticsClient(cast(Any, stub), 5.0)})()
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


RANGE = {"from": "2026-11-01", "to": "2026-11-30"}


async def test_support_as_json_asks_for_what_the_query_says(world: World) -> None:
    http, stub, limiter = world
    resp = await http.get(
        "/analytics/support", params={**RANGE, "bucket": "week", "group_by": "agent"}
    )
    assert resp.status_code == 200, resp.text
    [(_, request)] = stub.calls
    assert (request.from_day, request.to_day) == ("2026-11-01", "2026-11-30")
    assert request.bucket == apb.ANALYTICS_BUCKET_WEEK
    assert request.group_by == apb.ANALYTICS_GROUP_BY_AGENT
    [row] = resp.json()["rows"]
    assert row["bucket_start"] == "2026-11-02" and row["group"] == "ann"
    assert row["first_response"] == {"count": 2, "median_seconds": 600.0, "p90_seconds": 1800.0}
    assert (row["backlog"], row["sla_hit_rate"]) == (2, 1.0)
    assert limiter.checked == [Action.ANALYTICS]


@pytest.mark.parametrize("how", [{"format": "csv"}, {"accept": "text/csv"}])
async def test_support_as_csv(world: World, how: dict[str, str]) -> None:
    http, _, _ = world
    params = {**RANGE, **({"format": how["format"]} if "format" in how else {})}
    headers = {"Accept": how["accept"]} if "accept" in how else {}
    resp = await http.get("/analytics/support", params=params, headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert rows == [
        {
            "bucket_start": "2026-11-02",
            "group": "ann",
            "opened": "3",
            "assigned": "2",
            "resolved": "1",
            "backlog": "2",
            "first_response_count": "2",
            "first_response_median_seconds": "600.0",
            "first_response_p90_seconds": "1800.0",
            "resolution_count": "1",
            "resolution_median_seconds": "7200.0",
            "resolution_p90_seconds": "7200.0",
            "sla_hit": "1",
            "sla_missed": "0",
            "sla_hit_rate": "1.0",
            "sla_breaches": "0",
        }
    ]


async def test_format_json_wins_over_accept(world: World) -> None:
    http, _, _ = world
    resp = await http.get(
        "/analytics/support", params={**RANGE, "format": "json"}, headers={"Accept": "text/csv"}
    )
    assert resp.headers["content-type"].startswith("application/json")


async def test_chat_as_json_and_csv(world: World) -> None:
    http, stub, _ = world
    resp = await http.get("/analytics/chat", params={**RANGE, "limit": 5})
    assert resp.status_code == 200, resp.text
    assert stub.calls[-1][1].limit == 5
    body = resp.json()
    assert body["days"] == [{"day": "2026-11-02", "messages": 5, "active_users": 2}]
    assert body["busiest"] == [{"conversation_id": "c1", "kind": "public_channel", "messages": 5}]
    as_csv = await http.get("/analytics/chat", params={**RANGE, "format": "csv"})
    assert as_csv.text.splitlines() == [
        "series,day,conversation_id,kind,messages,active_users",
        "day,2026-11-02,,,5,2",
        "channel,2026-11-02,c1,public_channel,5,",
    ]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/analytics/support", {}),
        ("/analytics/support", {"from": "2026-11-01"}),
        ("/analytics/support", {**RANGE, "from": "yesterday"}),
        ("/analytics/support", {**RANGE, "bucket": "month"}),
        ("/analytics/support", {**RANGE, "group_by": "requester"}),
        ("/analytics/support", {**RANGE, "format": "xml"}),
        ("/analytics/chat", {**RANGE, "limit": 0}),
        ("/analytics/chat", {**RANGE, "limit": 101}),
        ("/analytics/chat", {"to": "2026-11-01"}),
    ],
)
async def test_bad_input_is_422_and_reaches_no_service(
    world: World, path: str, params: dict[str, Any]
) -> None:
    http, stub, limiter = world
    resp = await http.get(path, params=params)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "invalid_request"
    assert stub.calls == [] and limiter.checked == []


@pytest.mark.parametrize(
    ("status", "code", "http_status"),
    [
        (grpc.StatusCode.PERMISSION_DENIED, "forbidden", 403),
        (grpc.StatusCode.INVALID_ARGUMENT, "invalid_range", 422),
    ],
)
@pytest.mark.parametrize("path", ["/analytics/support", "/analytics/chat"])
async def test_the_service_refusals_come_back_with_their_codes(
    world: World, path: str, status: grpc.StatusCode, code: str, http_status: int
) -> None:
    http, stub, _ = world
    stub.error = RpcError(status, "no", code)
    resp = await http.get(path, params={"from": "2026-11-30", "to": "2026-11-01"})
    assert resp.status_code == http_status
    assert resp.json()["error"]["code"] == code


@pytest.mark.parametrize("path", ["/analytics/support", "/analytics/chat"])
async def test_each_route_spends_the_analytics_budget_first(world: World, path: str) -> None:
    http, stub, limiter = world
    limiter.refuse = True
    resp = await http.get(path, params=RANGE)
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "3"
    assert limiter.checked == [Action.ANALYTICS] and stub.calls == []


async def test_without_a_token_it_is_401(world: World) -> None:
    http, stub, _ = world
    resp = await http.get("/analytics/support", params=RANGE, headers={"Authorization": ""})
    assert resp.status_code == 401 and stub.calls == []
