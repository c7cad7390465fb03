"""Settings routes over ASGI: ETag and If-Match, bad input that reaches no
service, each route's budget, the service's refusals (412 for a stale version),
translation both ways, the caller's own tenant only, and the public part from
the pod's cache."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import grpc
import httpx
import pytest
import pytest_asyncio

from confab.conversation.v1 import settings_pb2 as pb
from confab_core.auth import JwtVerifier
from confab_core.clock import FakeClock
from confab_core.errors import ERROR_CODE_METADATA_KEY
from confab_core.identity import Caller
from confab_core.tenant_settings import TenantSettingsCache
from gateway.clients.settings import SettingsClient
from gateway.context import GatewayContext
from gateway.ratelimit import Action, RateLimited

from .conftest import SECRET, shared_api, token

pytestmark = pytest.mark.asyncio


def sample() -> pb.TenantSettings:
    s = pb.TenantSettings(
        branding=pb.Branding(display_name="Acme", primary_color="#112233", welcome_message="Hi"),
        agents=[
            pb.BotAgent(
                id="helper",
                display_name="Helper",
                role=pb.AGENT_ROLE_SUPPORT,
                system_prompt="secret prompt",
                temperature=0.5,
                token_budget=4000,
                topics=pb.Topics(allowed=[pb.TopicRule(name="billing", keywords=["invoice"])]),
                enabled=True,
            ),
            pb.BotAgent(id="off", role=pb.AGENT_ROLE_PICKABLE, enabled=False),
        ],
        topics=pb.Topics(forbidden=[pb.TopicRule(name="law", phrases=["sue you"])]),
        ticket_categories=["billing"],
        role_permissions=[
            pb.RolePermissions(role="member", permissions=["chat.create_direct"]),
        ],
        ai_quota=pb.AiQuota(monthly_tokens=1000),
        files=pb.FilePolicy(
            max_size_bytes=1024,
            allowed_kinds=["image", "pdf"],
            svg_mode=pb.SVG_MODE_DOWNLOAD_ONLY,
            max_image_pixels=2_000_000,
        ),
        canned_replies_path="/api/v1/canned-replies",
        canned_reply_count=2,
        version=7,
        updated_by="root",
    )
    s.updated_at.FromSeconds(1_700_000_000)
    return s


class FakeSettings:
    """Records each SettingsService request (with its caller); answers with the
    sample, or raises the error set for the RPC."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.errors: dict[str, Exception] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        async def rpc(request: Any, **_: Any) -> Any:
            self.calls.append((name, request))
            if name in self.errors:
                raise self.errors[name]
            if name == "GetPublicSettings":
                return pb.GetPublicSettingsResponse(
                    settings=pb.PublicSettings(
                        branding=pb.Branding(display_name="Acme"),
                        agents=[pb.PublicAgent(id="helper", role=pb.AGENT_ROLE_SUPPORT)],
                        version=7,
                    )
                )
            return getattr(pb, f"{name}Response")(settings=sample())

        return rpc


class Limiter:
    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.checked: list[Action] = []
        self.callers: list[Caller] = []

    async def check(self, caller: Caller, action: Action) -> None:
        self.checked.append(action)
        self.callers.append(caller)
        if self.refuse:
            raise RateLimited("slow down", "rate_limited", 3)


class Ops:
    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter


World = tuple[httpx.AsyncClient, FakeSettings, Limiter]


async def _world(refuse: bool, cache: bool = False) -> AsyncIterator[World]:
    stub, limiter = FakeSettings(), Limiter(refuse)
    client = SettingsClient(cast(Any, stub), 5.0)
    backends = type("B", (), {"settings": client})()
    api = shared_api()
    api.state.gateway = GatewayContext(
        settings=cast(Any, None),
        verifier=JwtVerifier(hs256_secret=SECRET),
        backends=cast(Any, backends),
        ops=cast(Any, Ops(limiter)),
        tenant_settings=TenantSettingsCache(client.load, FakeClock()) if cache else None,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api),
        base_url="http://gateway/api/v1",
        headers={"Authorization": f"Bearer {token(roles=['tenant_admin'])}"},
    ) as http:
        yield http, stub, limiter


@pytest_asyncio.fixture
async def world() -> AsyncIterator[World]:
    async for w in _world(False):
        yield w


@pytest_asyncio.fixture
async def refusing() -> AsyncIterator[World]:
    async for w in _world(True):
        yield w


@pytest_asyncio.fixture
async def cached() -> AsyncIterator[World]:
    async for w in _world(False, cache=True):
        yield w


MATCH = {"If-Match": '"7"'}

BAD = [
    ("put", "/settings", {"branding": {"nope": 1}}),
    ("put", "/settings", {"agents": [{"id": "a"}]}),
    ("put", "/settings", {"agents": [{"id": "a", "role": "support", "temperature": "hot"}]}),
    ("put", "/settings/branding", {"welcome_message": "x" * 16_001}),
    ("put", "/settings/agents", {"agents": "helper"}),
    ("put", "/settings/topics", {"allowed": [{"phrases": ["p"] * 201}]}),
    ("put", "/settings/ticket-categories", {"ticket_categories": ["x" * 257]}),
    ("put", "/settings/role-permissions", {"role_permissions": ["member"]}),
    ("put", "/settings/ai-quota", {"monthly_tokens": "many"}),
    ("put", "/settings/files", {"max_size_bytes": "big"}),
    ("put", "/settings/files", {"allowed_kinds": ["image"] * 21}),
    ("put", "/settings", {"files": {"svg": "block"}}),
    ("put", "/platform/tenants/" + "t" * 129 + "/settings/ai-quota", {"monthly_tokens": 1}),
]


@pytest.mark.parametrize(("method", "path", "body"), BAD)
async def test_bad_input_is_422_and_reaches_no_service(
    world: World, method: str, path: str, body: dict[str, Any]
) -> None:
    http, stub, limiter = world
    resp = await http.request(method, path, json=body, headers=MATCH)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "invalid_request"
    assert stub.calls == [] and limiter.checked == []


PUTS = [
    ("/settings", {}),
    ("/settings/branding", {}),
    ("/settings/agents", {"agents": []}),
    ("/settings/topics", {}),
    ("/settings/ticket-categories", {"ticket_categories": []}),
    ("/settings/role-permissions", {"role_permissions": {}}),
    ("/settings/ai-quota", {"monthly_tokens": 0}),
    ("/settings/files", {"max_size_bytes": 1024, "svg_mode": "download_only"}),
    ("/platform/tenants/t2/settings/ai-quota", {"monthly_tokens": 0}),
]


@pytest.mark.parametrize(("path", "body"), PUTS)
async def test_a_put_needs_if_match(world: World, path: str, body: dict[str, Any]) -> None:
    http, stub, limiter = world
    missing = await http.put(path, json=body)
    assert missing.status_code == 428
    assert missing.json()["error"]["code"] == "precondition_required"
    garbled = await http.put(path, json=body, headers={"If-Match": "yesterday"})
    assert garbled.status_code == 422
    assert garbled.json()["error"]["code"] == "invalid_if_match"
    assert stub.calls == [] and limiter.checked == []
    for header in ('"7"', 'W/"7"', "7"):
        ok = await http.put(path, json=body, headers={"If-Match": header})
        assert ok.status_code == 200, ok.text
        assert ok.headers["ETag"] == '"7"'
    assert [r.expected_version for _, r in stub.calls] == [7, 7, 7]
    assert limiter.checked == [Action.SETTINGS_WRITE] * 3


ROUTES = [
    ("get", "/settings", Action.SETTINGS_READ, "GetSettings"),
    ("get", "/settings/public", Action.SETTINGS_READ, "GetPublicSettings"),
    ("get", "/settings/branding", Action.SETTINGS_READ, "GetSettings"),
    ("get", "/settings/agents", Action.SETTINGS_READ, "GetSettings"),
    ("get", "/settings/topics", Action.SETTINGS_READ, "GetSettings"),
    ("get", "/settings/ticket-categories", Action.SETTINGS_READ, "GetSettings"),
    ("get", "/settings/role-permissions", Action.SETTINGS_READ, "GetSettings"),
    ("get", "/settings/ai-quota", Action.SETTINGS_READ, "GetSettings"),
    ("get", "/settings/files", Action.SETTINGS_READ, "GetSettings"),
    ("get", "/platform/tenants/t2/settings", Action.SETTINGS_READ, "GetSettings"),
    *[("put", path, Action.SETTINGS_WRITE, "UpdateSettings") for path, _ in PUTS],
]
BODIES = dict(PUTS)


@pytest.mark.parametrize(("method", "path", "action", "rpc"), ROUTES)
async def test_every_route_spends_its_budget_first(
    refusing: World, method: str, path: str, action: Action, rpc: str
) -> None:
    http, stub, limiter = refusing
    resp = await http.request(method, path, json=BODIES.get(path), headers=MATCH)
    assert resp.status_code == 429, resp.text
    assert resp.headers["Retry-After"] == "3"
    assert limiter.checked == [action] and stub.calls == []


@pytest.mark.parametrize(("method", "path", "action", "rpc"), ROUTES)
async def test_every_route_reaches_its_rpc_with_an_etag(
    world: World, method: str, path: str, action: Action, rpc: str
) -> None:
    http, stub, _ = world
    resp = await http.request(method, path, json=BODIES.get(path), headers=MATCH)
    assert resp.status_code == 200, resp.text
    assert resp.headers["ETag"] == '"7"'
    assert [name for name, _ in stub.calls] == [rpc]


async def test_sections_are_named_and_platform_routes_name_the_tenant(world: World) -> None:
    http, stub, _ = world
    for path, body in PUTS:
        await http.put(path, json=body, headers=MATCH)
    await http.get("/platform/tenants/t2/settings")
    sections = [list(r.sections) for name, r in stub.calls if name == "UpdateSettings"]
    rest = [
        pb.SETTINGS_SECTION_BRANDING,
        pb.SETTINGS_SECTION_AGENTS,
        pb.SETTINGS_SECTION_TOPICS,
        pb.SETTINGS_SECTION_TICKET_CATEGORIES,
        pb.SETTINGS_SECTION_ROLE_PERMISSIONS,
    ]
    assert sections == [
        rest,
        [pb.SETTINGS_SECTION_BRANDING],
        [pb.SETTINGS_SECTION_AGENTS],
        [pb.SETTINGS_SECTION_TOPICS],
        [pb.SETTINGS_SECTION_TICKET_CATEGORIES],
        [pb.SETTINGS_SECTION_ROLE_PERMISSIONS],
        [pb.SETTINGS_SECTION_AI_QUOTA],
        [pb.SETTINGS_SECTION_FILES],
        [pb.SETTINGS_SECTION_AI_QUOTA],
    ]
    # Only the platform routes name a tenant; every other call is the caller's own.
    tenants = [r.tenant_id for _, r in stub.calls]
    assert tenants == ["", "", "", "", "", "", "", "", "t2", "t2"]
    files = next(
        r
        for name, r in stub.calls
        if list(getattr(r, "sections", [])) == [pb.SETTINGS_SECTION_FILES]
    )
    assert files.settings.files.max_size_bytes == 1024
    assert files.settings.files.svg_mode == pb.SVG_MODE_DOWNLOAD_ONLY
    # A whole document with its quota names that section too.
    await http.put("/settings", json={"ai_quota": {"monthly_tokens": 5}}, headers=MATCH)
    last = stub.calls[-1][1]
    assert pb.SETTINGS_SECTION_AI_QUOTA in last.sections
    assert last.settings.ai_quota.monthly_tokens == 5
    assert pb.SETTINGS_SECTION_FILES not in last.sections
    # A whole document with its files policy names that section.
    await http.put("/settings", json={"files": {"max_size_bytes": 1}}, headers=MATCH)
    last = stub.calls[-1][1]
    assert pb.SETTINGS_SECTION_FILES in last.sections
    assert last.settings.files.max_size_bytes == 1


def _rpc_error(status: grpc.StatusCode, code: str) -> grpc.aio.AioRpcError:
    trailing = grpc.aio.Metadata((ERROR_CODE_METADATA_KEY, code))
    return grpc.aio.AioRpcError(status, grpc.aio.Metadata(), trailing, code)


@pytest.mark.parametrize(
    ("status", "code", "http_status"),
    [
        (grpc.StatusCode.FAILED_PRECONDITION, "version_mismatch", 412),
        (grpc.StatusCode.INVALID_ARGUMENT, "invalid_color", 422),
        (grpc.StatusCode.INVALID_ARGUMENT, "base_url_not_allowed", 422),
        (grpc.StatusCode.INVALID_ARGUMENT, "two_support_agents", 422),
        (grpc.StatusCode.PERMISSION_DENIED, "forbidden", 403),
    ],
)
async def test_service_refusals_keep_their_codes(
    world: World, status: grpc.StatusCode, code: str, http_status: int
) -> None:
    http, stub, _ = world
    stub.errors["UpdateSettings"] = _rpc_error(status, code)
    resp = await http.put("/settings/branding", json={}, headers=MATCH)
    assert resp.status_code == http_status
    assert resp.json()["error"]["code"] == code
    assert "ETag" not in resp.headers


async def test_translation_both_ways(world: World) -> None:
    http, stub, _ = world
    got = (await http.get("/settings")).json()
    assert got["agents"][0] == {
        "id": "helper",
        "display_name": "Helper",
        "avatar_url": "",
        "role": "support",
        "model": "",
        "base_url": "",
        "system_prompt": "secret prompt",
        "temperature": 0.5,
        "token_budget": 4000,
        "max_reply_tokens": 0,
        "topics": {
            "allowed": [
                {"name": "billing", "phrases": [], "keywords": ["invoice"], "patterns": []}
            ],
            "forbidden": [],
            "model_check": False,
        },
        "handoff_after_turns": 0,
        "enabled": True,
    }
    assert got["role_permissions"] == {"member": ["chat.create_direct"]}
    assert got["files"] == {
        "max_size_bytes": 1024,
        "allowed_kinds": ["image", "pdf"],
        "svg_mode": "download_only",
        "max_image_pixels": 2_000_000,
        "user_quota_bytes": 0,
        "tenant_quota_bytes": 0,
        "keep_image_metadata": False,
    }
    assert (got["version"], got["updated_at"], got["canned_reply_count"]) == (
        7,
        "2023-11-14T22:13:20Z",
        2,
    )
    # What a GET answers goes back as a PUT unchanged.
    del got["canned_replies_path"], got["canned_reply_count"]
    del got["version"], got["updated_at"], got["updated_by"]
    resp = await http.put("/settings", json=got, headers=MATCH)
    assert resp.status_code == 200, resp.text
    sent = stub.calls[-1][1].settings
    expected = sample()
    for name in (
        "canned_replies_path",
        "canned_reply_count",
        "version",
        "updated_at",
        "updated_by",
    ):
        expected.ClearField(name)
    # JSON always has an agent's topics (empty ones too).
    for agent in expected.agents:
        agent.topics.SetInParent()
    assert sent == expected
    await http.put(
        "/settings/agents", json={"agents": [{"id": "x", "role": "wizard"}]}, headers=MATCH
    )
    assert stub.calls[-1][1].settings.agents[0].role == pb.AGENT_ROLE_UNSPECIFIED


async def test_the_public_part_comes_from_the_cache(cached: World) -> None:
    http, stub, _ = cached
    for _ in range(3):
        resp = await http.get("/settings/public")
        assert resp.status_code == 200 and resp.headers["ETag"] == '"7"'
        assert resp.json() == {
            "branding": {
                "display_name": "Acme",
                "primary_color": "#112233",
                "accent_color": "",
                "logo_url": "",
                "welcome_message": "Hi",
            },
            "agents": [
                {
                    "id": "helper",
                    "display_name": "Helper",
                    "avatar_url": "",
                    "role": "support",
                    "user_id": "confab-bot:helper",
                }
            ],
            "version": 7,
            "files": {
                "max_size_bytes": 1024,
                "allowed_kinds": ["image", "pdf"],
                "svg_mode": "download_only",
                "max_image_pixels": 2_000_000,
                "user_quota_bytes": 0,
                "tenant_quota_bytes": 0,
                "keep_image_metadata": False,
            },
        }
    # Loaded once, as the service role of the caller's own tenant.
    assert [name for name, _ in stub.calls] == ["GetServiceSettings"]
    # This pod's own write is seen at once.
    await http.put("/settings/branding", json={}, headers=MATCH)
    await http.get("/settings/public")
    assert [name for name, _ in stub.calls][-2:] == ["UpdateSettings", "GetServiceSettings"]
