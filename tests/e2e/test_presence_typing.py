"""Chosen status, custom status and typing, through the public APIs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from .conftest import TENANT_A, TENANT_B

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


def uid(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def test_status_and_custom_status_reach_people_who_share_a_conversation(
    users, sockets
) -> None:
    alice, bob = uid("alice"), uid("bob")
    alice_api = users(TENANT_A, alice)
    await alice_api.create("group", [bob])
    bob_socket = await sockets(TENANT_A, bob)
    await sockets(TENANT_A, alice)
    expires = datetime.now(UTC) + timedelta(hours=1)

    resp = await alice_api.client.put(
        "/presence/me",
        json={
            "status": "busy",
            "custom_status": "In a meeting",
            "custom_status_expires_at": expires.isoformat(),
        },
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "busy"
    got = await bob_socket.wait_for(
        "presence:updated", lambda p: p["user_id"] == alice and p["status"] == "busy"
    )
    assert got["custom_status"] == "In a meeting"
    assert got["chosen_status"] == "busy"

    back = await bob_socket.call("presence:set", {"status": "online"})
    assert back["ok"] and back["presence"]["status"] == "online"

    for bad in ({"status": "offline"}, {"custom_status": "x" * 101}, {"status": "asleep"}):
        resp = await alice_api.client.put("/presence/me", json=bad)
        assert resp.status_code == 422, (bad, resp.text)
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    resp = await alice_api.client.put(
        "/presence/me", json={"custom_status": "late", "custom_status_expires_at": past}
    )
    assert (resp.status_code, resp.json()["error"]["code"]) == (422, "invalid_expiry")


async def test_typing_reaches_the_room_only_and_needs_membership(users, sockets) -> None:
    alice, bob = uid("alice"), uid("bob")
    conv = await users(TENANT_A, alice).create("group", [bob])
    alice_socket = await sockets(TENANT_A, alice)
    bob_socket = await sockets(TENANT_A, bob)
    outsider = await sockets(TENANT_A, uid("carol"))
    other_tenant = await sockets(TENANT_B, bob)

    ack = await alice_socket.call("typing:start", {"conversation_id": conv["id"]})
    assert ack == {"ok": True}
    started = await bob_socket.wait_for(
        "typing", lambda t: t["user_id"] == alice and t["typing"] is True
    )
    assert started["conversation_id"] == conv["id"] and started["expires_at"]
    ack = await alice_socket.call("typing:stop", {"conversation_id": conv["id"]})
    assert ack == {"ok": True}
    await bob_socket.wait_for("typing", lambda t: t["user_id"] == alice and t["typing"] is False)

    refused = await outsider.call("typing:start", {"conversation_id": conv["id"]})
    assert refused["ok"] is False and refused["error"]["code"] == "conversation_not_found"
    refused = await other_tenant.call("typing:start", {"conversation_id": conv["id"]})
    assert refused["ok"] is False
    assert outsider.received("typing") == [] and other_tenant.received("typing") == []
