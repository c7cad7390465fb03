"""Moderation events on sockets, and the request id the audit log records (pure logic)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from confab.conversation.v1 import events_pb2 as ev
from confab_core.requestinfo import current_request
from gateway.realtime.fanout import Fanout
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
    await Fanout(srv).handle(h.record(muted))
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
    fanout = Fanout(srv)
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
