"""Platform staff through the public API of a real fleet: escalated tickets of two
tenants in one list and nothing else of theirs, replies that reach the tenant with
sender_role super_admin, ticket:escalated on their sockets, and the tenants'
audit chains recording every look and every write."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from .conftest import Api

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

PLATFORM = "confab-platform"


def uid(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def open_ticket(api: Api, subject: str, **extra: Any) -> dict[str, Any]:
    resp = await api.client.post("/tickets", json={"subject": subject, **extra})
    assert resp.status_code == 201, resp.text
    return dict(resp.json()["ticket"])


async def escalate(admin: Api, ticket_id: str) -> None:
    resp = await admin.client.post(f"/tickets/{ticket_id}/escalate", json={"reason": "beyond us"})
    assert resp.status_code == 200, resp.text


async def test_platform_staff_see_and_answer_escalated_tickets_only(
    users: Callable[..., Api], sockets: Callable[..., Any]
) -> None:
    ta, tb = uid("tenant-pa"), uid("tenant-pb")
    member_a, admin_a = users(ta, "mia"), users(ta, "root", roles=["tenant_admin"])
    member_b, admin_b = users(tb, "bo"), users(tb, "root", roles=["tenant_admin"])
    staff = users(PLATFORM, "pf", roles=["super_admin"])
    staff_socket = await sockets(PLATFORM, "pf", roles=["super_admin"])
    member_socket = await sockets(ta, "mia")

    quiet = await open_ticket(member_a, "Just a question", text="hello", client_msg_id="q1")
    loud_a = await open_ticket(member_a, "Payout stuck", text="help", client_msg_id="a1")
    loud_b = await open_ticket(member_b, "Login broken", priority="urgent")
    await escalate(admin_a, loud_a["id"])
    await escalate(admin_b, loud_b["id"])
    # Seed 001's PLATFORM_SUPPORT: a tenant admin opens a ticket straight to the platform.
    direct = await open_ticket(admin_b, "Our plan limits", to_platform=True)

    # Platform staff hear each escalation live, with the ticket's tenant.
    heard = await staff_socket.wait_for(
        "ticket:escalated", lambda d: d["ticket"]["id"] == loud_b["id"]
    )
    assert heard["ticket"]["tenant_id"] == tb

    listed = await staff.client.get("/platform/tickets", params={"limit": 100})
    assert listed.status_code == 200, listed.text
    seen = {t["id"]: t["tenant_id"] for t in listed.json()["tickets"]}
    assert seen[loud_a["id"]] == ta and seen[loud_b["id"]] == tb and seen[direct["id"]] == tb
    assert quiet["id"] not in seen

    # A non-escalated ticket, and every other object of a tenant, is not there for them.
    resp = await staff.client.get(f"/platform/tickets/{quiet['id']}")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "ticket_not_found"
    for path in (
        f"/tickets/{quiet['id']}",
        f"/tickets/{loud_a['id']}",
        f"/conversations/{loud_a['conversation_id']}",
        f"/conversations/{loud_a['conversation_id']}/messages",
        f"/conversations/{loud_a['conversation_id']}/members",
        f"/conversations/{quiet['conversation_id']}",
        f"/conversations/{loud_a['conversation_id']}/ticket",
        "/jobs/nope",
    ):
        resp = await staff.client.get(path)
        assert resp.status_code == 404, (path, resp.text)
    for path in ("/audit", "/policy", "/tickets/queue"):
        resp = await staff.client.get(path)
        assert resp.status_code in (403, 404), (path, resp.text)
    resp = await staff.client.post(
        f"/conversations/{loud_a['conversation_id']}/messages",
        json={"text": "sneaking in", "client_msg_id": "s1"},
    )
    assert resp.status_code == 404, resp.text
    # And tenant people cannot use the platform's routes.
    for outsider in (admin_a, member_a):
        resp = await outsider.client.get("/platform/tickets")
        assert resp.status_code == 403 and resp.json()["error"]["code"] == "forbidden"

    got = await staff.client.get(f"/platform/tickets/{loud_a['id']}")
    assert got.status_code == 200 and got.json()["ticket"]["tenant_id"] == ta
    history = await staff.client.get(f"/platform/tickets/{loud_a['id']}/messages")
    assert history.status_code == 200 and history.json()["tenant_id"] == ta
    assert "help" in [m["text"] for m in history.json()["messages"]]

    reply = await staff.client.post(
        f"/platform/tickets/{loud_a['id']}/messages",
        json={"text": "Platform here, looking into it", "client_msg_id": "p1"},
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["message"]["sender_role"] == "super_admin"
    again = await staff.client.post(
        f"/platform/tickets/{loud_a['id']}/messages",
        json={"text": "Platform here, looking into it", "client_msg_id": "p1"},
    )
    assert (
        again.status_code == 200 and again.json()["message"]["id"] == reply.json()["message"]["id"]
    )
    live = await member_socket.wait_for(
        "message:new", lambda d: d["id"] == reply.json()["message"]["id"]
    )
    assert live["sender_role"] == "super_admin"
    page = await member_a.client.get(f"/conversations/{loud_a['conversation_id']}/messages")
    assert page.json()["messages"][-1]["sender_role"] == "super_admin"

    resolved = await staff.client.post(
        f"/platform/tickets/{loud_a['id']}/transitions", json={"action": "resolve"}
    )
    assert resolved.status_code == 200 and resolved.json()["ticket"]["status"] == "resolved"
    bad = await staff.client.post(
        f"/platform/tickets/{loud_a['id']}/transitions", json={"action": "resolve"}
    )
    assert bad.status_code == 409 and bad.json()["error"]["code"] == "invalid_transition"

    # Every look and every write is in tenant A's audit chain, as the staff member;
    # tenant B's chain holds only what was read there.
    async def actions(admin: Api) -> dict[str, set[str]]:
        resp = await admin.client.get("/audit", params={"limit": 100})
        assert resp.status_code == 200, resp.text
        out: dict[str, set[str]] = {}
        for r in resp.json()["records"]:
            if r["action"].startswith("platform."):
                out.setdefault(r["action"], set()).add(r["actor_id"])
        return out

    in_a = await actions(admin_a)
    assert set(in_a) == {
        "platform.ticket_read",
        "platform.messages_read",
        "platform.message_sent",
        "platform.ticket_transition",
    }
    assert set().union(*in_a.values()) == {"confab-platform:pf"}
    assert set(await actions(admin_b)) == {"platform.ticket_read"}
