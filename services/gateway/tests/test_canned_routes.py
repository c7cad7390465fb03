"""Canned reply and support profile routes over ASGI (translation only): bad input
never reaches the service, every route spends its rate-limit budget first, and
the service's answers come back in their public shape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest
import pytest_asyncio

from confab.conversation.v1 import canned_pb2 as kpb
from confab_core.auth import JwtVerifier
from confab_core.identity import Caller
from gateway.clients.canned import CannedClient
from gateway.context import GatewayContext
from gateway.ratelimit import Action, RateLimited

from .conftest import SECRET, sample_message, shared_api, token

pytestmark = pytest.mark.asyncio


def _reply() -> kpb.CannedReply:
    reply = kpb.CannedReply(
        id="r1", scope=kpb.CANNED_SCOPE_PERSONAL, owner_id="u1", shortcode="hi", body="Hi"
    )
    reply.created_at.FromSeconds(1_700_000_000)
    reply.updated_at.FromSeconds(1_700_000_000)
    return reply


class FakeCanned:
    """Records each request by RPC name; answers with a fixed reply."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        if not name[:1].isupper():
            raise AttributeError(name)

        async def rpc(request: Any, timeout: float | None = None) -> Any:
            self.calls.append((name, request))
            if name in ("CreateCannedReply", "UpdateCannedReply"):
                return getattr(kpb, f"{name}Response")(reply=_reply())
            if name == "ListCannedReplies":
                return kpb.ListCannedRepliesResponse(replies=[_reply()], next_page_token="n")
            if name == "RenderCannedReply":
                return kpb.RenderCannedReplyResponse(text="Hi Ann")
            if name == "SendCannedReply":
                return kpb.SendCannedReplyResponse(message=sample_message(), created=False)
            if name in ("GetSupportProfile", "UpdateSupportProfile"):
                return getattr(kpb, f"{name}Response")(profile=kpb.SupportProfile(name="Acme"))
            return getattr(kpb, f"{name}Response")()

        return rpc


class Limiter:
    def __init__(self, refuse: bool = False) -> None:
        self.checked: list[Action] = []
        self.refuse = refuse

    async def check(self, caller: Caller, action: Action) -> None:
        self.checked.append(action)
        if self.refuse:
            raise RateLimited("slow down", "rate_limited", 3)


class Ops:
    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter


@pytest_asyncio.fixture
async def world() -> AsyncIterator[tuple[httpx.AsyncClient, FakeCanned, Limiter]]:
    stub, limiter = FakeCanned(), Limiter()
    client = CannedClient(cast(Any, stub), cast(Any, stub), 5.0)
    backends = type("B", (), {"canned": client})()
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
        headers={"Authorization": f"Bearer {token(roles=['agent'])}"},
    ) as http:
        yield http, stub, limiter


ROUTES: list[tuple[str, str, dict[str, Any] | None, str, Action]] = [
    ("GET", "/canned-replies?q=re", None, "ListCannedReplies", Action.CANNED),
    (
        "POST",
        "/canned-replies",
        {"scope": "personal", "shortcode": "hi", "body": "Hi"},
        "CreateCannedReply",
        Action.CANNED,
    ),
    ("PATCH", "/canned-replies/r1", {"body": "Hello"}, "UpdateCannedReply", Action.CANNED),
    ("DELETE", "/canned-replies/r1", None, "DeleteCannedReply", Action.CANNED),
    (
        "POST",
        "/conversations/c1/canned-replies/r1/render",
        None,
        "RenderCannedReply",
        Action.CANNED,
    ),
    (
        "POST",
        "/conversations/c1/canned-replies/r1/send",
        {"client_msg_id": "m1"},
        "SendCannedReply",
        Action.SEND,
    ),
    ("GET", "/support/profile", None, "GetSupportProfile", Action.SUPPORT_PROFILE),
    ("PUT", "/support/profile", {"name": "Acme"}, "UpdateSupportProfile", Action.SUPPORT_PROFILE),
]


@pytest.mark.parametrize(("method", "path", "body", "rpc", "action"), ROUTES)
async def test_each_route_spends_its_budget_then_calls_its_rpc(
    world: tuple[httpx.AsyncClient, FakeCanned, Limiter],
    method: str,
    path: str,
    body: dict[str, Any] | None,
    rpc: str,
    action: Action,
) -> None:
    http, stub, limiter = world
    resp = await http.request(method, path, json=body)
    assert resp.status_code < 300, resp.text
    assert limiter.checked == [action]
    assert [name for name, _ in stub.calls] == [rpc]


@pytest.mark.parametrize(("method", "path", "body", "rpc", "action"), ROUTES)
async def test_a_spent_budget_is_429_before_the_service(
    world: tuple[httpx.AsyncClient, FakeCanned, Limiter],
    method: str,
    path: str,
    body: dict[str, Any] | None,
    rpc: str,
    action: Action,
) -> None:
    http, stub, limiter = world
    limiter.refuse = True
    resp = await http.request(method, path, json=body)
    assert resp.status_code == 429
    assert resp.json()["error"]["code"] == "rate_limited"
    assert stub.calls == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/canned-replies", {"scope": "team", "shortcode": "hi", "body": "Hi"}),
        ("POST", "/canned-replies", {"scope": "shared", "shortcode": "", "body": "Hi"}),
        ("POST", "/canned-replies", {"scope": "shared", "shortcode": "x" * 65, "body": "Hi"}),
        ("POST", "/canned-replies", {"scope": "shared", "shortcode": "hi", "body": ""}),
        ("POST", "/canned-replies", {"scope": "shared", "shortcode": "hi"}),
        ("POST", "/canned-replies", {"scope": "shared", "shortcode": "hi", "body": "x", "y": 1}),
        ("PATCH", "/canned-replies/r1", {"owner_id": "u2"}),
        ("PATCH", "/canned-replies/r1", {}),
        ("PATCH", "/canned-replies/" + "x" * 129, {"body": "Hi"}),
        ("GET", "/canned-replies?limit=0", None),
        ("GET", "/canned-replies?q=" + "x" * 600, None),
        ("POST", "/conversations/c1/canned-replies/r1/send", {"client_msg_id": ""}),
        ("POST", "/conversations/c1/canned-replies/r1/send", {"text": "override"}),
        ("PUT", "/support/profile", {"name": ""}),
        ("PUT", "/support/profile", {"name": "x" * 101}),
    ],
)
async def test_bad_input_is_422_and_reaches_no_service(
    world: tuple[httpx.AsyncClient, FakeCanned, Limiter],
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    http, stub, limiter = world
    resp = await http.request(method, path, json=body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"]
    assert stub.calls == [] and limiter.checked == []


async def test_translation(world: tuple[httpx.AsyncClient, FakeCanned, Limiter]) -> None:
    http, stub, _ = world
    resp = await http.post(
        "/canned-replies", json={"scope": "shared", "shortcode": "hi", "body": "Hi"}
    )
    assert resp.status_code == 201
    assert stub.calls[-1][1].scope == kpb.CANNED_SCOPE_SHARED
    assert resp.json() == {
        "id": "r1",
        "scope": "personal",
        "owner_id": "u1",
        "shortcode": "hi",
        "body": "Hi",
        "created_at": "2023-11-14T22:13:20Z",
        "updated_at": "2023-11-14T22:13:20Z",
    }
    resp = await http.patch("/canned-replies/r1", json={"shortcode": "hey"})
    sent = stub.calls[-1][1]
    assert sent.HasField("shortcode") and not sent.HasField("body")
    page = (await http.get("/canned-replies", params={"q": "h", "cursor": "c"})).json()
    assert stub.calls[-1][1].page_token == "c" and page["next_cursor"] == "n"
    # A retried send answers 200, as POST .../messages does.
    resp = await http.post("/conversations/c1/canned-replies/r1/send", json={})
    assert resp.status_code == 200 and resp.json()["message"]["id"] == "m1"
    assert stub.calls[-1][1].client_msg_id  # the gateway made one
    assert (await http.delete("/canned-replies/r1")).status_code == 204
    profile = (await http.get("/support/profile")).json()
    assert profile == {"name": "Acme", "updated_at": None}
