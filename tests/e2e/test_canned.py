"""Canned replies through the public API, on the real fleet: rights, bad input
without partial writes, personal and tenant isolation, ranked search, rendering
and sending (the room hears an ordinary message:new)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

ADMIN = {"roles": ["tenant_admin"]}


def uid(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def ok(resp: httpx.Response, status: int = 200) -> Any:
    assert resp.status_code == status, f"{resp.request.method} {resp.request.url}: {resp.text}"
    return resp.json() if resp.content else None


def err(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, f"{resp.request.method} {resp.request.url}: {resp.text}"
    assert resp.json()["error"]["code"] == code, resp.text


async def test_canned_replies_end_to_end(users: Any, sockets: Any) -> None:
    tenant, other_tenant = uid("tenant-canned"), uid("tenant-canned")
    ann, ben, mia = uid("ann"), uid("ben"), uid("mia")
    admin = users(tenant, uid("root"), **ADMIN)
    ann_api = users(tenant, ann, roles=["agent"], name="Ann Agent")
    ben_api = users(tenant, ben, roles=["agent"])
    mia_api = users(tenant, mia)
    stranger = users(other_tenant, uid("root"), **ADMIN)
    stranger_agent = users(other_tenant, ann, roles=["agent"])

    # Who may create what.
    shared = ok(
        await admin.client.post(
            "/canned-replies",
            json={"scope": "shared", "shortcode": "welcome", "body": "Welcome to {{tenant.name}}"},
        ),
        201,
    )
    assert shared["owner_id"] is None
    err(
        await ann_api.client.post(
            "/canned-replies", json={"scope": "shared", "shortcode": "mine", "body": "x"}
        ),
        403,
        "forbidden",
    )
    err(
        await mia_api.client.post(
            "/canned-replies", json={"scope": "personal", "shortcode": "mine", "body": "x"}
        ),
        403,
        "forbidden",
    )
    mine = ok(
        await ann_api.client.post(
            "/canned-replies",
            json={
                "scope": "personal",
                "shortcode": "hello",
                "body": "Hi, I'm {{agent.name}} from {{tenant.name}}.",
            },
        ),
        201,
    )
    assert mine["owner_id"] == ann

    # Bad input: stable codes, nothing written.
    for body, status, code in (
        ({"scope": "personal", "shortcode": "hello", "body": "again"}, 409, "shortcode_taken"),
        ({"scope": "personal", "shortcode": "Hello There", "body": "x"}, 422, "invalid_shortcode"),
        (
            {"scope": "personal", "shortcode": "oops", "body": "{{agent.nme}}"},
            422,
            "unknown_variable",
        ),
    ):
        err(await ann_api.client.post("/canned-replies", json=body), status, code)
    err(
        await ann_api.client.patch(f"/canned-replies/{mine['id']}", json={"body": "{{x.y}}"}),
        422,
        "unknown_variable",
    )
    listed = ok(await ann_api.client.get("/canned-replies"))
    assert [(r["shortcode"], r["body"]) for r in listed["replies"]] == [
        ("hello", mine["body"]),
        ("welcome", shared["body"]),
    ]

    # Personal replies are their owner's alone; another tenant sees nothing.
    for api in (ben_api, admin):
        err(
            await api.client.patch(f"/canned-replies/{mine['id']}", json={"body": "x"}),
            404,
            "canned_reply_not_found",
        )
        err(await api.client.delete(f"/canned-replies/{mine['id']}"), 404, "canned_reply_not_found")
        found = ok(await api.client.get("/canned-replies", params={"q": "hel"}))
        assert found["replies"] == []
    for api in (stranger, stranger_agent):
        err(
            await api.client.delete(f"/canned-replies/{shared['id']}"),
            404,
            "canned_reply_not_found",
        )
        assert ok(await api.client.get("/canned-replies"))["replies"] == []
    err(await ann_api.client.delete(f"/canned-replies/{shared['id']}"), 403, "forbidden")

    # Search: shortcode prefix, then substring, then body words.
    ok(
        await admin.client.post(
            "/canned-replies",
            json={"scope": "shared", "shortcode": "say-hello", "body": "Hello there"},
        ),
        201,
    )
    ok(
        await admin.client.post(
            "/canned-replies",
            json={"scope": "shared", "shortcode": "greeting", "body": "Well, hello!"},
        ),
        201,
    )
    found = ok(await ann_api.client.get("/canned-replies", params={"q": "hello"}))
    assert [r["shortcode"] for r in found["replies"]] == ["hello", "say-hello", "greeting"]

    # Render and send in a conversation; the tenant name defaults to the tenant id.
    conv = (await ann_api.create("group", [mia], "help"))["id"]
    base = f"/conversations/{conv}/canned-replies/{mine['id']}"
    rendered = ok(await ann_api.client.post(f"{base}/render"))
    assert rendered["text"] == f"Hi, I'm Ann Agent from {tenant}."
    err(await mia_api.client.put("/support/profile", json={"name": "Nope"}), 403, "forbidden")
    ok(await admin.client.put("/support/profile", json={"name": "Acme Help"}))
    assert ok(await mia_api.client.get("/support/profile"))["name"] == "Acme Help"
    assert ok(await stranger.client.get("/support/profile"))["name"] == other_tenant
    mia_socket = await sockets(tenant, mia)
    sent = ok(await ann_api.client.post(f"{base}/send", json={"client_msg_id": "cm-1"}), 201)
    assert sent["message"]["text"] == "Hi, I'm Ann Agent from Acme Help."
    again = ok(await ann_api.client.post(f"{base}/send", json={"client_msg_id": "cm-1"}), 200)
    assert again["message"]["id"] == sent["message"]["id"]
    heard = await mia_socket.wait_for("message:new", lambda m: m["id"] == sent["message"]["id"])
    assert heard["sender_id"] == ann

    # Ticket variables outside a ticket are a 422, and no message goes out.
    ticket = ok(
        await ann_api.client.post(
            "/canned-replies",
            json={"scope": "personal", "shortcode": "ticket", "body": "Ticket {{ticket.id}}"},
        ),
        201,
    )
    tbase = f"/conversations/{conv}/canned-replies/{ticket['id']}"
    err(await ann_api.client.post(f"{tbase}/send", json={}), 422, "variable_unavailable")
    history = ok(await ann_api.client.get(f"/conversations/{conv}/messages"))
    assert [m["id"] for m in history["messages"]] == [sent["message"]["id"]]

    # Someone else's reply, or a conversation one cannot see, is a 404.
    err(await ben_api.client.post(f"{base}/render"), 404, "conversation_not_found")
    err(await stranger_agent.client.post(f"{base}/send", json={}), 404, "conversation_not_found")
    err(await mia_api.client.post(f"{base}/render"), 403, "forbidden")
