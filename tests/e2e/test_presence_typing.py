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


async def test_typing_in_a_channel_one_is_not_in_is_forbidden(users, sockets) -> None:
    admin = users(TENANT_A, uid("admin"), roles=["tenant_admin"])
    channel = await admin.create("public_channel", [], title=uid("lobby"))
    passer_by = await sockets(TENANT_A, uid("dave"))
    refused = await passer_by.call("typing:start", {"conversation_id": channel["id"]})
    assert refused == {
        "ok": False,
        "error": {"code": "not_a_member", "message": refused["error"]["message"]},
    }


async def test_presence_is_visible_only_to_co_members_and_staff(users, sockets) -> None:
    """docs/presence.md: a member reads the people they share a conversation with,
    and themselves; anyone else reads exactly like a user who does not exist."""
    alice, bob, carol = uid("alice"), uid("bob"), uid("carol")
    alice_api = users(TENANT_A, alice)
    await alice_api.create("group", [bob])
    carol_api = users(TENANT_A, carol)
    await sockets(TENANT_A, bob)
    await sockets(TENANT_A, carol)
    resp = await carol_api.client.put(
        "/presence/me", json={"status": "busy", "custom_status": "Secret project"}
    )
    assert resp.status_code == 200, resp.text

    nobody = uid("nobody")
    resp = await alice_api.client.get(
        "/presence", params={"user_ids": f"{alice},{bob},{carol},{nobody}"}
    )
    assert resp.status_code == 200, resp.text
    by_id = {p["user_id"]: p for p in resp.json()}
    assert by_id[bob]["status"] == "online"
    hidden = {k: v for k, v in by_id[carol].items() if k != "user_id"}
    unknown = {k: v for k, v in by_id[nobody].items() if k != "user_id"}
    assert hidden == unknown
    assert hidden["status"] == "offline" and not hidden.get("last_active_at")
    assert "Secret project" not in resp.text

    for role in ("agent", "tenant_admin"):
        staff = users(TENANT_A, uid(role), roles=[role])
        resp = await staff.client.get("/presence", params={"user_ids": carol})
        [seen] = resp.json()
        assert (seen["status"], seen["custom_status"]) == ("busy", "Secret project")

    resp = await carol_api.client.get("/presence", params={"user_ids": carol})
    assert resp.json()[0]["custom_status"] == "Secret project"
