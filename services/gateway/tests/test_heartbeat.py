"""Presence heartbeats: every connection of the gateway, in calls of at most
HEARTBEAT_BATCH (presence refuses more than 20,000 in one)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from confab_core.auth import JwtVerifier
from confab_core.identity import Caller
from gateway.clients.ops import ChatOps
from gateway.realtime import sockets
from gateway.realtime.sockets import Session, SocketGateway

pytestmark = pytest.mark.asyncio


class Presence:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, list[tuple[Caller, str]]]] = []
        self.fail = fail

    async def heartbeat(self, gateway_id: str, connections: list[tuple[Caller, str]]) -> None:
        self.calls.append((gateway_id, connections))
        if self.fail:
            raise RuntimeError("presence down")


def gateway(h: Any, presence: Presence, n: int) -> SocketGateway:
    gw = SocketGateway(
        h.RoomServer(), cast(ChatOps, presence), JwtVerifier(hs256_secret="x" * 40), "gw-1"
    )
    for i in range(n):
        caller = Caller(tenant_id="t1", user_id=f"u{i}", roles=frozenset({"member"}))
        gw.sessions[f"sid{i}"] = Session(caller, f"conn-{i}", 4e9)
    return gw


async def test_every_connection_in_batches(h: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sockets, "HEARTBEAT_BATCH", 3)
    presence = Presence()
    await gateway(h, presence, 7).heartbeat_once()
    assert [len(conns) for _, conns in presence.calls] == [3, 3, 1]
    assert {gw for gw, _ in presence.calls} == {"gw-1"}
    sent = [conn_id for _, conns in presence.calls for _, conn_id in conns]
    assert sent == [f"conn-{i}" for i in range(7)]


async def test_no_connections_no_call(h: Any) -> None:
    presence = Presence()
    await gateway(h, presence, 0).heartbeat_once()
    assert presence.calls == []


async def test_a_failed_call_ends_the_round(h: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sockets, "HEARTBEAT_BATCH", 2)
    presence = Presence(fail=True)
    await gateway(h, presence, 5).heartbeat_once()  # logged, not raised
    assert len(presence.calls) == 1
