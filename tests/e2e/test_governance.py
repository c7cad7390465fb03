"""Moderation and the audit log through the public API, on the real fleet.

Each test takes a tenant of its own, so its audit chain holds only its actions.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

ADMIN = {"roles": ["tenant_admin"]}
AGENT = {"roles": ["agent"]}


def uid(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def ok(resp: httpx.Response, status: int = 200) -> Any:
    assert resp.status_code == status, f"{resp.request.method} {resp.request.url}: {resp.text}"
    return resp.json() if resp.content else None


def err(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, f"{resp.request.method} {resp.request.url}: {resp.text}"
    assert resp.json()["error"]["code"] == code, resp.text


async def send(api: Any, conversation_id: str, text: str) -> httpx.Response:
    return await api.client.post(
        f"/conversations/{conversation_id}/messages",
        json={"text": text, "client_msg_id": uid("c")},
    )


async def test_mute_report_resolve_ban_and_the_audit_trail(users: Any, sockets: Any) -> None:
    tenant, other_tenant = uid("tenant-gov"), uid("tenant-gov")
    alice, bob, carol, root = uid("alice"), uid("bob"), uid("carol"), uid("root")
    admin = users(tenant, root, **ADMIN)
    alice_api = users(tenant, alice, **AGENT)
    bob_api, carol_api = users(tenant, bob), users(tenant, carol)
    stranger = users(other_tenant, uid("root"), **ADMIN)
    bob_socket = await sockets(tenant, bob)
    carol_socket = await sockets(tenant, carol)
    conv = (await alice_api.create("group", [bob, carol], "moderated"))["id"]
    moderation = f"/conversations/{conv}/moderation"

    # A conversation owner mutes a member; the room and the member hear it.
    muted = ok(
        await alice_api.client.post(
            f"{moderation}/mutes",
            json={"user_id": bob, "reason": "flooding"},
            headers={"X-Request-ID": "req-mute-1"},
        ),
        201,
    )
    assert (muted["kind"], muted["user_id"], muted["conversation_id"]) == ("mute", bob, conv)
    for socket in (bob_socket, carol_socket):
        event = await socket.wait_for("member:muted", lambda d: d["user_id"] == bob)
        assert event["conversation_id"] == conv and event["tenant_wide"] is False
    err(await send(bob_api, conv, "let me speak"), 403, "muted")
    ok(await bob_api.client.get(f"/conversations/{conv}/messages"))
    # A member cannot mute; bad input is a clear 422; another tenant sees nothing.
    err(await bob_api.client.post(f"{moderation}/mutes", json={"user_id": carol}), 403, "forbidden")
    err(
        await alice_api.client.post(f"{moderation}/mutes", json={"user_id": ""}),
        422,
        "invalid_request",
    )
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    err(
        await alice_api.client.post(
            f"{moderation}/mutes", json={"user_id": carol, "expires_at": past}
        ),
        422,
        "invalid_expiry",
    )
    err(
        await stranger.client.post(f"{moderation}/mutes", json={"user_id": carol}),
        404,
        "conversation_not_found",
    )
    sanctions = ok(await alice_api.client.get(f"{moderation}/sanctions"))["sanctions"]
    assert [s["user_id"] for s in sanctions] == [bob]
    ok(await alice_api.client.delete(f"{moderation}/mutes/{bob}"), 204)
    await bob_socket.wait_for("member:unmuted", lambda d: d["user_id"] == bob)
    ok(await send(bob_api, conv, "thanks"), 201)

    # Carol's message is reported once per reporter, then resolved by banning her.
    bad = ok(await send(carol_api, conv, "buy my course"), 201)["message"]
    report = f"/conversations/{conv}/messages/{bad['id']}/report"
    entry = ok(await bob_api.client.post(report, json={"reason": "spam"}), 201)
    assert (entry["kind"], entry["author_id"], entry["status"]) == ("report", carol, "open")
    err(await bob_api.client.post(report, json={"reason": "spam"}), 409, "already_reported")
    err(await alice_api.client.post(report, json={"reason": ""}), 422, "invalid_request")
    err(await bob_api.client.get("/moderation/queue"), 403, "forbidden")
    queue = ok(await admin.client.get("/moderation/queue"))["entries"]
    assert [(e["id"], e["text"]) for e in queue] == [(entry["id"], "buy my course")]
    assert ok(await stranger.client.get("/moderation/queue"))["entries"] == []
    resolve = f"/moderation/queue/{entry['id']}/resolve"
    err(
        await stranger.client.post(resolve, json={"action": "dismiss"}),
        404,
        "queue_entry_not_found",
    )
    err(await admin.client.post(resolve, json={"action": "shout"}), 422, "invalid_request")
    done = ok(await admin.client.post(resolve, json={"action": "ban_author"}))
    assert (done["status"], done["resolution"]) == ("resolved", "ban_author")
    await carol_socket.wait_for("member:banned", lambda d: d["user_id"] == carol)
    await carol_socket.wait_for("conversation:removed", lambda d: d["conversation_id"] == conv)
    err(
        await alice_api.client.post(f"/conversations/{conv}/members", json={"user_ids": [carol]}),
        403,
        "banned",
    )

    # A tenant-wide ban keeps a user out of public channels too.
    channel = (await alice_api.create("public_channel", [], "town square"))["id"]
    ok(await bob_api.client.post(f"/conversations/{channel}/join"))
    err(await bob_api.client.post("/moderation/bans", json={"user_id": carol}), 403, "forbidden")
    ok(await admin.client.post("/moderation/bans", json={"user_id": bob}), 201)
    await bob_socket.wait_for("member:banned", lambda d: d["conversation_id"] == channel)
    err(await bob_api.client.post(f"/conversations/{channel}/join"), 403, "banned")
    ok(await admin.client.delete(f"/moderation/bans/{bob}"), 204)
    ok(await bob_api.client.post(f"/conversations/{channel}/join"))

    # The audit trail: every action above, with where it came from; admins only.
    err(await bob_api.client.get("/audit"), 403, "forbidden")
    records = ok(await admin.client.get("/audit", params={"limit": 100}))["records"]
    assert [r["action"] for r in reversed(records)] == [
        "user.muted",
        "user.unmuted",
        "user.banned",
        "moderation.resolved",
        "user.banned",
        "user.unbanned",
    ]
    first = records[-1]
    assert (first["actor_id"], first["target"], first["request_id"]) == (
        alice,
        {"kind": "user", "id": bob},
        "req-mute-1",
    )
    assert first["client_ip"] == "127.0.0.1" and first["after"]["reason"] == "flooding"
    page = ok(await admin.client.get("/audit", params={"action": "user.banned", "limit": 1}))
    assert len(page["records"]) == 1 and page["next_cursor"]
    rest = ok(
        await admin.client.get(
            "/audit", params={"action": "user.banned", "limit": 1, "cursor": page["next_cursor"]}
        )
    )
    assert [r["target"]["id"] for r in rest["records"]] == [carol]
    mine = ok(await admin.client.get("/audit", params={"actor": alice}))["records"]
    assert {r["action"] for r in mine} == {"user.muted", "user.unmuted"}
    assert ok(await stranger.client.get("/audit"))["records"] == []
    err(await admin.client.get("/audit", params={"from": "yesterday"}), 422, "invalid_request")
    verified = ok(await admin.client.get("/audit/verify"))
    assert (verified["ok"], verified["checked"], verified["broken"]) == (True, 6, None)
