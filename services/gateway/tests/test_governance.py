"""Moderation events on sockets, and the request id the audit log records (pure logic)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from confab.conversation.v1 import conversation_pb2 as cpb
from confab.conversation.v1 import events_pb2 as ev
from confab_core.auth import JwtVerifier
from confab_core.identity import Caller
from confab_core.requestinfo import current_request
from gateway.realtime.fanout import Fanout
from gateway.realtime.sockets import Session, SocketGateway
from gateway.requestinfo import RequestInfoMiddleware

pytestmark = pytest.mark.asyncio

ROOM = "conv:t1:c1"


async def test_a_mute_reaches_the_room_and_the_muted_user_once(h: Any) -> None:
    srv = h.RoomServer()
    srv.rooms[ROOM] = {"s1", "s2"}
    # s3: the muted user's socket on another page, not in the conversation's room.
    srv.rooms["user:t1:u2"] = {"s2", "s3"}
    muted = h.event(4, member_muted=ev.MemberSanctioned(user_id="u2", tenant_wide=False))
    muted.member_muted.expires_at.FromSeconds(1_700_000_600)
    await Fanout(srv, h.opener()).handle(h.record(muted))
    [(data, rooms)] = srv.emitted("member:muted")
    assert rooms == [ROOM, "user:t1:u2"]
    assert srv.reached("member:muted") == [{"s1", "s2", "s3"}]
    assert data == {
        "conversation_id": "c1",
        "event_seq": 4,
        "actor_id": "u1",
        "user_id": "u2",
        "tenant_wide": False,
        "expires_at": "2023-11-14T22:23:20+00:00",
    }


async def test_each_sanction_event_has_its_socket_name(h: Any) -> None:
    srv = h.RoomServer()
    fanout = Fanout(srv, h.opener())
    events = [
        h.event(1, member_banned=ev.MemberSanctioned(user_id="u2", tenant_wide=True)),
        h.event(2, member_unbanned=ev.MemberSanctionLifted(user_id="u2", tenant_wide=True)),
        h.event(3, member_unmuted=ev.MemberSanctionLifted(user_id="u2")),
    ]
    for event in events:
        await fanout.handle(h.record(event))
    assert [name for name, _, _ in srv.emits] == [
        "member:banned",
        "member:unbanned",
        "member:unmuted",
    ]
    assert srv.emits[0][1]["expires_at"] is None and srv.emits[0][1]["tenant_wide"] is True


def _app() -> httpx.AsyncClient:
    api = FastAPI()

    @api.get("/where")
    async def where() -> dict[str, str]:
        info = current_request()
        return {"request_id": info.request_id, "client_ip": info.client_ip}

    transport = httpx.ASGITransport(app=RequestInfoMiddleware(api), client=("198.51.100.4", 1234))
    return httpx.AsyncClient(transport=transport, base_url="http://gateway")


async def test_a_request_keeps_a_usable_client_request_id() -> None:
    async with _app() as http:
        resp = await http.get("/where", headers={"X-Request-ID": "abc-123"})
    assert resp.json() == {"request_id": "abc-123", "client_ip": "198.51.100.4"}
    assert resp.headers["x-request-id"] == "abc-123"


@pytest.mark.parametrize("given", ["", "has space", "x" * 129, "tab\there"])
async def test_an_unusable_request_id_is_replaced(given: str) -> None:
    async with _app() as http:
        resp = await http.get("/where", headers={"X-Request-ID": given} if given else {})
    made = resp.json()["request_id"]
    assert made and made != given and resp.headers["x-request-id"] == made


async def test_each_socket_event_is_a_request_with_the_sockets_address(h: Any) -> None:
    server = h.RoomServer()
    seen: list[tuple[str, str]] = []

    class Recording(h.FakeConversation):  # type: ignore[misc]
        def __getattr__(self, name: str) -> Any:
            rpc = super().__getattr__(name)

            async def wrapped(request: Any, **kw: Any) -> Any:
                info = current_request()
                seen.append((info.request_id, info.client_ip))
                return await rpc(request, **kw)

            return wrapped

    stub = Recording()
    stub.responses["DeleteMessage"] = cpb.DeleteMessageResponse(message=h.message(deleted=True))
    gw = SocketGateway(server, h.make_ops(stub), JwtVerifier(hs256_secret="x" * 40), "gw-1")
    gw.sessions["sid1"] = Session(Caller("t1", "u1"), "conn-1", 4e9)
    for _ in range(2):
        ack = await server.handlers["message:delete"](
            "sid1", {"conversation_id": "c1", "message_id": "m1"}
        )
        assert ack["ok"] is True
    assert [ip for _, ip in seen] == ["192.0.2.1", "192.0.2.1"]
    assert seen[0][0] and seen[0][0] != seen[1][0]
