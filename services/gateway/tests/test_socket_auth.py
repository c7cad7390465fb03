"""Socket lifetime: connect admission, every conversation's room, close at the token's
exp, auth:refresh, and rate-limited acks. Time moves on a FakeClock; nothing sleeps."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import httpx
import pytest
import socketio

from confab.conversation.v1 import conversation_pb2 as cpb
from confab.presence.v1 import presence_pb2 as ppb
from confab_core.auth import JwtVerifier, mint_hs256
from confab_core.clock import FakeClock
from confab_core.identity import PLATFORM_TENANT_ID, Caller
from gateway import governance_schemas as gs
from gateway import schemas
from gateway.clients.conversation import ConversationClient
from gateway.clients.governance_ops import GovernanceOps
from gateway.clients.ops import ChatOps
from gateway.clients.presence import PresenceClient
from gateway.context import GatewayContext
from gateway.ratelimit import Action, RateLimited
from gateway.realtime import rooms
from gateway.realtime.sockets import SocketGateway

from .conftest import shared_api

pytestmark = pytest.mark.asyncio

SECRET = "socket-auth-test-secret-long-enough-for-hs256"


@dataclass
class Presence:
    calls: list[str] = field(default_factory=list)

    async def Connect(self, request: Any, **_: Any) -> ppb.ConnectResponse:
        self.calls.append("Connect")
        return ppb.ConnectResponse()

    async def Disconnect(self, request: Any, **_: Any) -> ppb.DisconnectResponse:
        self.calls.append("Disconnect")
        return ppb.DisconnectResponse()


@dataclass
class Backends:
    conversation: ConversationClient
    presence: PresenceClient


class Limiter:
    """Refuses the actions in ``refuse``, as the Redis limiter would once a budget is spent."""

    def __init__(self, *refuse: Action) -> None:
        self.refuse = set(refuse)

    async def check(self, caller: Caller, action: Action) -> None:
        if action in self.refuse:
            raise RateLimited("too many, slow down", "rate_limited", 7)


@dataclass
class World:
    server: Any
    stub: Any
    presence: Presence
    gateway: SocketGateway
    clock: FakeClock
    limiter: Limiter

    def token(self, ttl: int, tenant: str = "t1", user: str = "u1", **claims: Any) -> str:
        return mint_hs256(
            SECRET,
            tenant_id=tenant,
            user_id=user,
            ttl_seconds=ttl,
            now=self.clock.now().timestamp(),
            **claims,
        )

    async def connect(self, sid: str, token: str) -> None:
        await self.gateway.on_connect(sid, {}, {"token": token})

    async def emit(self, sid: str, event: str, data: Any) -> Any:
        return await self.server.handlers[event](sid, data)


@pytest.fixture
def world(h: Any) -> World:
    server = h.RoomServer()
    stub = h.FakeConversation()
    presence = Presence()
    limiter = Limiter()
    # The verifier checks exp against the wall clock: start the fake one there.
    clock = FakeClock(datetime.fromtimestamp(int(time.time()), UTC))
    ops = ChatOps(
        Backends(ConversationClient(stub, 5.0), PresenceClient(cast(Any, presence), 5.0)), limiter
    )  # type: ignore[arg-type]
    gateway = SocketGateway(server, ops, JwtVerifier(hs256_secret=SECRET), "gw-1", clock)
    server.handlers["disconnect"] = gateway.on_disconnect
    return World(server, stub, presence, gateway, clock, limiter)


async def test_connect_joins_every_conversation(world: World) -> None:
    ids = [f"c{i}" for i in range(1000)]
    world.stub.responses["ListConversationIds"] = cpb.ListConversationIdsResponse(
        conversation_ids=ids
    )
    await world.connect("s1", world.token(600))
    assert world.stub.last("ListConversationIds").limit == 0
    joined = world.server.rooms_of("s1")
    assert {rooms.conversation("t1", c) for c in ids} <= joined
    assert rooms.user("t1", "u1") in joined


async def test_a_bad_token_is_refused_with_its_code(world: World) -> None:
    with pytest.raises(socketio.exceptions.ConnectionRefusedError) as err:
        await world.connect("s1", "not-a-jwt")
    assert err.value.error_args["data"]["code"] == "invalid_token"


async def test_socket_closes_at_exp_with_token_expired(world: World) -> None:
    await world.connect("s1", world.token(60))
    await world.connect("s2", world.token(600, user="u2"))
    world.clock.advance(59)
    assert await world.gateway.expire_due() == 0
    world.clock.advance(1)
    assert await world.gateway.expire_due() == 1
    assert world.server.disconnected == ["s1"]
    [(payload, to)] = world.server.emitted("auth:expired")
    assert to == "s1" and payload["code"] == "token_expired"
    assert set(world.gateway.sessions) == {"s2"}
    assert world.presence.calls.count("Disconnect") == 1
    # The ack path is closed too: events of the expired sid are refused.
    ack = await world.emit("s1", "message:send", {"conversation_id": "c1", "text": "x"})
    assert ack["error"]["code"] == "unauthenticated"


async def test_refresh_moves_exp_without_reconnecting(world: World) -> None:
    await world.connect("s1", world.token(60))
    ack = await world.emit("s1", "auth:refresh", {"token": world.token(3600)})
    assert ack["ok"], ack
    new_exp = world.clock.now().timestamp() + 3600
    assert ack["expires_at"] == datetime.fromtimestamp(new_exp, UTC).isoformat().replace(
        "+00:00", "Z"
    )
    world.clock.advance(61)
    assert await world.gateway.expire_due() == 0
    assert "s1" in world.gateway.sessions
    world.clock.advance(3600)
    assert await world.gateway.expire_due() == 1
    assert world.server.disconnected == ["s1"]


async def test_refresh_to_an_earlier_exp_replaces_the_later_one(world: World) -> None:
    await world.connect("s1", world.token(3600))
    assert (await world.emit("s1", "auth:refresh", {"token": world.token(30)}))["ok"]
    world.clock.advance(30)
    assert await world.gateway.expire_due() == 1


async def test_refresh_refuses_another_identity_and_bad_tokens(world: World) -> None:
    await world.connect("s1", world.token(60))
    cases = {
        "token_mismatch": world.token(3600, user="u2"),
        "invalid_token": "not-a-jwt",
    }
    ack = await world.emit("s1", "auth:refresh", {"token": world.token(3600, tenant="t2")})
    assert ack["error"]["code"] == "token_mismatch", ack
    for code, token in cases.items():
        ack = await world.emit("s1", "auth:refresh", {"token": token})
        assert ack == {"ok": False, "error": {"code": code, "message": ack["error"]["message"]}}
    expired = mint_hs256(
        SECRET, tenant_id="t1", user_id="u1", ttl_seconds=1, now=time.time() - 3600
    )
    ack = await world.emit("s1", "auth:refresh", {"token": expired})
    assert ack["error"]["code"] == "token_expired"
    for bad in ({}, {"token": ""}, {"token": 5}, {"token": "x", "extra": 1}):
        ack = await world.emit("s1", "auth:refresh", bad)
        assert ack["error"]["code"] == "invalid_request", bad
    # Nothing above changed the session: it still closes at the first token's exp.
    world.clock.advance(60)
    assert await world.gateway.expire_due() == 1


async def test_refresh_follows_role_changes(world: World) -> None:
    await world.connect("s1", world.token(600))
    staff = rooms.staff("t1")
    assert staff not in world.server.rooms_of("s1")
    assert (await world.emit("s1", "auth:refresh", {"token": world.token(600, roles=["agent"])}))[
        "ok"
    ]
    assert world.gateway.sessions["s1"].caller.has_role("agent")
    assert staff in world.server.rooms_of("s1")
    assert (await world.emit("s1", "auth:refresh", {"token": world.token(600)}))["ok"]
    assert staff not in world.server.rooms_of("s1")


async def test_sockets_join_the_admins_and_platform_rooms_by_role(world: World) -> None:
    await world.connect("adm", world.token(600, user="adm", roles=["tenant_admin"]))
    await world.connect("ag", world.token(600, user="ag", roles=["agent"]))
    staff = world.token(600, tenant=PLATFORM_TENANT_ID, user="pf", roles=["super_admin"])
    await world.connect("pf", staff)
    assert {rooms.staff("t1"), rooms.admins("t1")} <= world.server.rooms_of("adm")
    assert rooms.staff("t1") in world.server.rooms_of("ag")
    assert rooms.admins("t1") not in world.server.rooms_of("ag")
    assert rooms.platform() in world.server.rooms_of("pf")
    tenant_sockets = world.server.rooms_of("adm") | world.server.rooms_of("ag")
    assert rooms.platform() not in tenant_sockets
    # An admin demoted by a refreshed token leaves the admins' room.
    demoted = world.token(600, user="adm", roles=["agent"])
    assert (await world.emit("adm", "auth:refresh", {"token": demoted}))["ok"]
    assert rooms.admins("t1") not in world.server.rooms_of("adm")


async def test_connects_over_the_limit_are_refused_with_retry_after(world: World) -> None:
    world.limiter.refuse.add(Action.CONNECT)
    with pytest.raises(socketio.exceptions.ConnectionRefusedError) as err:
        await world.connect("s1", world.token(600))
    assert err.value.error_args == {
        "message": "too many, slow down",
        "data": {"code": "rate_limited", "message": "too many, slow down", "retry_after": 7},
    }
    assert world.gateway.sessions == {}
    assert world.stub.calls == []


async def test_limited_socket_events_ack_rate_limited_with_retry_after(world: World) -> None:
    await world.connect("s1", world.token(600))
    world.limiter.refuse.update({Action.SEND, Action.PRESENCE})
    for event, data in (
        ("message:send", {"conversation_id": "c1", "text": "hi"}),
        ("message:edit", {"conversation_id": "c1", "message_id": "m1", "text": "hi"}),
        ("reaction:toggle", {"conversation_id": "c1", "message_id": "m1", "emoji": "👍"}),
        ("presence:set", {"status": "away"}),
    ):
        ack = await world.emit("s1", event, data)
        assert ack == {
            "ok": False,
            "error": {"code": "rate_limited", "message": "too many, slow down", "retry_after": 7},
        }, event


async def test_every_limited_call_checks_its_own_action(world: World) -> None:
    ops = world.gateway._ops
    # Refused before any service is asked, so no clients are needed.
    gov = GovernanceOps(cast(Any, None), cast(Any, None), ops.limiter)
    caller = Caller("t1", "u1")
    calls: dict[Action, Any] = {
        Action.CONVERSATION_CREATE: ops.create_conversation(
            caller, schemas.CreateConversationIn(kind="group", member_ids=["u2"])
        ),
        Action.MEMBER_ADD: ops.add_members(caller, "c1", schemas.AddMembersIn(user_ids=["u2"])),
        Action.SEARCH: ops.search_messages(caller, "hello", None, 10),
        Action.SUMMARY: ops.summarize(caller, "c1"),
        Action.TYPING: ops.set_typing(caller, "c1", True),
        Action.PRESENCE: ops.set_presence(caller, schemas.SetPresenceIn(status="away")),
        Action.CONNECT: ops.admit(caller),
        Action.SEND: ops.send_message(caller, "c1", schemas.SendMessageIn(text="hi")),
        Action.MODERATE: gov.sanction(caller, "mute", "", gs.SanctionIn(user_id="u2")),
        Action.REPORT: gov.report(caller, "c1", "m1", "spam"),
        Action.AUDIT_READ: gov.queue(caller, "open", "", 10, ""),
        Action.AUDIT_VERIFY: gov.verify_audit(caller),
        Action.POLICY: ops.get_policy(caller),
        Action.STREAM_CANCEL: ops.cancel_stream(caller, "c1", "m1"),
    }
    # Not ChatOps' calls: exports, erasures and job reads are JobOps'
    # (test_jobs_routes.py), the platform's PlatformOps' (test_platform_routes.py),
    # the support desk's TicketOps'.
    others = {Action.EXPORT, Action.ERASURE, Action.JOB_STATUS}
    others |= {Action.PLATFORM_READ, Action.PLATFORM_WRITE}
    others |= {Action.TICKET_READ, Action.TICKET_WRITE, Action.SUPPORT_ADMIN}
    # ... and the SLA policy, canned replies and analytics have route modules of their own.
    others |= {Action.SLA_POLICY, Action.CANNED, Action.SUPPORT_PROFILE, Action.ANALYTICS}
    # AI usage reads are AiOps' (test_ai_routes.py).
    others |= {Action.AI_USAGE}
    others |= {Action.SETTINGS_READ, Action.SETTINGS_WRITE}
    # Files are FileOps' (test_files_routes.py checks each route spends its limit).
    others |= {Action.FILE_UPLOAD, Action.FILE_READ, Action.FILE_DOWNLOAD}
    assert set(calls) == set(Action) - others
    for action, call in calls.items():
        world.limiter.refuse = {action}
        with pytest.raises(RateLimited):
            await call
    # Refused before any service was asked.
    assert world.stub.calls == []


async def test_rest_answers_429_with_retry_after(world: World, h: Any) -> None:
    world.limiter.refuse = {Action.CONVERSATION_CREATE, Action.SEARCH}
    api = shared_api()
    api.state.gateway = GatewayContext(
        settings=cast(Any, None),
        verifier=JwtVerifier(hs256_secret=SECRET),
        backends=cast(Any, None),
        ops=world.gateway._ops,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api),
        base_url="http://gateway/api/v1",
        headers={"Authorization": f"Bearer {world.token(600)}"},
    ) as http:
        for resp in (
            await http.post("/conversations", json={"kind": "group", "member_ids": ["u2"]}),
            await http.get("/search/messages", params={"q": "hello"}),
        ):
            assert resp.status_code == 429, resp.text
            assert resp.headers["Retry-After"] == "7"
            assert resp.json() == {
                "error": {
                    "code": "rate_limited",
                    "message": "too many, slow down",
                    "retry_after": 7,
                }
            }
        # Bad input is still a 422 first: the limit counts only well-formed calls.
        assert (await http.post("/conversations", json={"kind": "nope"})).status_code == 422
