"""The walking skeleton, through public APIs only: REST, Socket.IO, SMTP."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from confab_devfleet import Fleet

from confab_devservers import FakeOpenAI

from .conftest import TENANT_A, TENANT_B, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


def uid(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def test_rest_message_reaches_other_members_socket_within_2s(users, sockets) -> None:
    alice, bob = uid("alice"), uid("bob")
    bob_socket = await sockets(TENANT_A, bob)
    api = users(TENANT_A, alice)
    conv = await api.create("group", [bob], "skeleton")
    await bob_socket.wait_for("conversation:created", lambda c: c["id"] == conv["id"])

    started = time.monotonic()
    resp = await api.send(conv["id"], "hello bob", uid("m"))
    assert resp.status_code == 201, resp.text
    sent = resp.json()["message"]
    got = await bob_socket.wait_for("message:new", lambda m: m["id"] == sent["id"], timeout=2)
    elapsed = time.monotonic() - started
    assert elapsed < 2.0
    assert got["text"] == "hello bob"
    assert got["seq"] == 1
    assert got["sender_id"] == alice


async def test_socket_send_is_acked_delivered_and_idempotent(users, sockets) -> None:
    alice, bob = uid("alice"), uid("bob")
    conv = await users(TENANT_A, alice).create("group", [bob])
    alice_socket = await sockets(TENANT_A, alice)
    bob_socket = await sockets(TENANT_A, bob)
    body = {"conversation_id": conv["id"], "text": "over the socket", "client_msg_id": uid("c")}

    first = await alice_socket.call("message:send", body)
    again = await alice_socket.call("message:send", body)
    assert first["ok"] and first["created"] is True
    assert again["ok"] and again["created"] is False
    assert again["message"]["id"] == first["message"]["id"]

    marker = await alice_socket.call(
        "message:send", {**body, "text": "marker", "client_msg_id": uid("c")}
    )
    await bob_socket.wait_for("message:new", lambda m: m["id"] == marker["message"]["id"])
    copies = bob_socket.received("message:new", lambda m: m["id"] == first["message"]["id"])
    assert len(copies) == 1
    seqs = [m["seq"] for m in bob_socket.received("message:new")]
    assert seqs == [1, 2]


async def test_other_tenant_gets_404_and_hears_nothing(users, sockets) -> None:
    alice, bob = uid("alice"), uid("bob")
    owner = users(TENANT_A, alice)
    conv = await owner.create("group", [bob], "secret plans")
    bob_socket = await sockets(TENANT_A, bob)
    # Same user id in tenant B: the tenant, not the name, draws the line.
    intruder = users(TENANT_B, bob)
    intruder_socket = await sockets(TENANT_B, bob)

    resp = await intruder.client.get(f"/conversations/{conv['id']}")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "conversation_not_found"
    resp = await intruder.send(conv["id"], "let me in", uid("x"))
    assert resp.status_code == 404
    resp = await intruder.client.get(f"/conversations/{conv['id']}/messages")
    assert resp.status_code == 404
    ack = await intruder_socket.call("conversation:join", {"conversation_id": conv["id"]})
    assert ack == {
        "ok": False,
        "error": {"code": "conversation_not_found", "message": "conversation not found"},
    }

    sent = (await owner.send(conv["id"], "tenant A only", uid("m"))).json()["message"]
    await bob_socket.wait_for("message:new", lambda m: m["id"] == sent["id"])
    # A message of tenant B's own, sent after, is the barrier for the check.
    own = await intruder.create("group", [uid("carol")])
    mine = (await intruder.send(own["id"], "tenant B", uid("m"))).json()["message"]
    await intruder_socket.wait_for("message:new", lambda m: m["id"] == mine["id"])
    leaked = [data for _, data in intruder_socket.events if conv["id"] in repr(data)]
    assert leaked == []
    listed = (await intruder.client.get("/conversations")).json()["conversations"]
    assert conv["id"] not in {c["id"] for c in listed}


async def test_bad_input_gets_clear_4xx_and_writes_nothing(fleet: Fleet, users) -> None:
    alice = uid("alice")
    api = users(TENANT_A, alice)
    conv = await api.create("group", [uid("bob")])
    base = f"{fleet.gateway_url()}/api/v1"

    async with httpx.AsyncClient(base_url=base, timeout=10) as anon:
        resp = await anon.get("/conversations")
        assert (resp.status_code, resp.json()["error"]["code"]) == (401, "missing_token")
        forged = jwt.encode(
            {"sub": alice, "tid": TENANT_A, "exp": int(time.time()) + 600},
            "not-the-secret-of-this-deployment-at-all",
        )
        resp = await anon.get("/conversations", headers={"Authorization": f"Bearer {forged}"})
        assert (resp.status_code, resp.json()["error"]["code"]) == (401, "invalid_token")
        expired = fleet.token(TENANT_A, alice, ttl_seconds=-120)
        resp = await anon.get("/conversations", headers={"Authorization": f"Bearer {expired}"})
        assert (resp.status_code, resp.json()["error"]["code"]) == (401, "token_expired")

    cases: list[tuple[str, dict[str, Any], int, str]] = [
        (
            f"/conversations/{uuid.uuid4().hex}/messages",
            {"text": "hi"},
            404,
            "conversation_not_found",
        ),
        (f"/conversations/{conv['id']}/messages", {"text": ""}, 422, "invalid_request"),
        (f"/conversations/{conv['id']}/messages", {"text": "   "}, 422, "empty_message"),
        (f"/conversations/{conv['id']}/messages", {"text": "x" * 4001}, 422, "invalid_request"),
        (f"/conversations/{conv['id']}/messages", {"text": 5}, 422, "invalid_request"),
        (f"/conversations/{conv['id']}/messages", {"text": "x" * 70_000}, 413, "payload_too_large"),
        ("/conversations", {"kind": "nonsense"}, 422, "invalid_request"),
        ("/conversations", {"kind": "direct", "member_ids": []}, 422, "direct_needs_one_member"),
    ]
    for path, body, status, code in cases:
        resp = await api.client.post(path, json=body)
        assert resp.status_code == status, (path, body, resp.text)
        assert resp.json()["error"]["code"] == code, (path, body, resp.text)
        assert resp.json()["error"]["message"]
    resp = await api.client.post(
        f"/conversations/{conv['id']}/messages",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 422

    after = (await api.client.get(f"/conversations/{conv['id']}")).json()
    assert after["last_seq"] == 0
    page = (await api.client.get(f"/conversations/{conv['id']}/messages")).json()
    assert page["messages"] == []


async def test_presence_reaches_staff_and_people_who_share_a_conversation(users, sockets) -> None:
    agent, bob, carol, stranger = uid("agent"), uid("bob"), uid("carol"), uid("stranger")
    api = users(TENANT_A, carol)
    await api.create("group", [bob])
    staff_socket = await sockets(TENANT_A, agent, roles=["agent"])
    carol_socket = await sockets(TENANT_A, carol)
    stranger_socket = await sockets(TENANT_A, stranger)
    bob_socket = await sockets(TENANT_A, bob)

    def bob_is(status: str) -> Any:
        return lambda p: p["user_id"] == bob and p["status"] == status

    await staff_socket.wait_for("presence:updated", bob_is("online"))
    await carol_socket.wait_for("presence:updated", bob_is("online"))
    now = (await api.client.get("/presence", params={"user_ids": bob})).json()
    assert now[0]["status"] == "online" and now[0]["device_count"] == 1

    # After the last device leaves, presence waits out a grace period (10 s
    # by default) so a quick reconnect does not flap, then says offline once.
    await bob_socket.close()
    await staff_socket.wait_for("presence:updated", bob_is("offline"), timeout=30)
    await carol_socket.wait_for("presence:updated", bob_is("offline"), timeout=10)
    later = (await api.client.get("/presence", params={"user_ids": bob})).json()
    assert later[0]["status"] == "offline"
    # A member who shares nothing with bob heard nothing of him; the barrier is
    # the staff socket having received both changes after the stranger connected.
    assert stranger_socket.received("presence:updated", lambda p: p["user_id"] == bob) == []


async def test_bot_answers_in_an_assistant_conversation(
    users, sockets, fake_openai: FakeOpenAI
) -> None:
    alice = uid("alice")
    api = users(TENANT_A, alice)
    alice_socket = await sockets(TENANT_A, alice)
    conv = await api.create("ai_assistant", [], "help")
    resp = await api.send(conv["id"], "what is confab?", uid("m"))
    assert resp.status_code == 201
    reply = await alice_socket.wait_for(
        "message:new",
        lambda m: m["conversation_id"] == conv["id"] and m["kind"] == "bot",
        timeout=20,
    )
    assert reply["text"] == "echo: what is confab?"
    assert reply["sender_id"] == "confab-bot"
    asked = [r for r in fake_openai.requests if "what is confab?" in repr(r)]
    assert asked


async def test_offline_member_gets_an_email_and_a_notification(fleet: Fleet, users) -> None:
    alice, carol = uid("alice"), uid("carol")
    carol_api = users(TENANT_A, carol, email=f"{carol}@example.com")
    # Carol's first call records her address; she never opens a socket.
    assert (await carol_api.client.get("/conversations")).status_code == 200
    api = users(TENANT_A, alice)
    conv = await api.create("group", [carol], "Project")
    sent = (await api.send(conv["id"], "are you there, carol?", uid("m"))).json()["message"]

    assert fleet.smtp_sink is not None
    mail = await asyncio.to_thread(
        fleet.smtp_sink.wait_for,
        lambda m: f"{carol}@example.com" in m.to_header and "are you there" in m.body,
        20,
    )
    assert mail is not None

    async def notifications() -> Any:
        return (await carol_api.client.get("/notifications")).json()

    # The mail is out before the record says so: wait for the record too.
    listed = await eventually(
        notifications, lambda ns: bool(ns) and ns[0]["email_status"] == "sent"
    )
    assert [n["message_id"] for n in listed] == [sent["id"]]
