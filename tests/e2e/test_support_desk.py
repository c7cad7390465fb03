"""The support desk's whole path over REST and Socket.IO, each party checking what
it receives: a member's ticket is queued and auto-assigned to the one online agent,
answered from a canned reply, paused while waiting on the member, breaches its
resolution SLA, is escalated by the SLA rules to platform staff who answer, and is
resolved, reopened and closed; analytics then count it."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from .conftest import Api, Socket, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

PLATFORM = "confab-platform"
# Long enough for the steps before the pause on a loaded machine, short enough to
# wait for: the breach is the SLA scheduler's, at the real due time.
RESOLUTION_SECONDS = 15


def ok(resp: Any, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json()


def clock(ticket: dict[str, Any], metric: str) -> dict[str, Any]:
    return next(c for c in ticket["sla"]["clocks"] if c["metric"] == metric)


async def test_a_ticket_from_queue_to_platform_staff_and_closed(
    users: Callable[..., Api], sockets: Callable[..., Any]
) -> None:
    tenant = f"desk-{uuid.uuid4().hex[:8]}"
    admin = users(tenant, "root", roles=["tenant_admin"], name="Root")
    ada = users(tenant, "ada", roles=["agent"], name="Ada")
    mia = users(tenant, "mia", name="Mia")
    staff = users(PLATFORM, "pat", roles=["super_admin"], name="Pat")
    admin_socket: Socket = await sockets(tenant, "root", roles=["tenant_admin"], name="Root")
    ada_socket: Socket = await sockets(tenant, "ada", roles=["agent"], name="Ada")
    mia_socket: Socket = await sockets(tenant, "mia", name="Mia")
    staff_socket: Socket = await sockets(PLATFORM, "pat", roles=["super_admin"], name="Pat")

    # The desk: Ada is known and online, auto-assignment is on, and medium tickets
    # have an SLA whose breach escalates to platform staff.
    await ada.create("group", ["root"], title="shift")

    async def roster() -> Any:
        return ok(await admin.client.get("/support/agents"))

    await eventually(
        roster, lambda b: any(a["user_id"] == "ada" and a["online"] for a in b["agents"])
    )
    ok(await admin.client.put("/support/assignment", json={"enabled": True}))
    ok(
        await admin.client.put(
            "/support/sla",
            json={
                "targets": [
                    {
                        "priority": "medium",
                        "first_response_seconds": 600,
                        "next_response_seconds": 600,
                        "resolution_seconds": RESOLUTION_SECONDS,
                    }
                ],
                "breach_actions": ["notify", "escalate"],
                "expected_version": 0,
            },
        )
    )
    ok(await admin.client.put("/support/profile", json={"name": "Acme Support"}))
    canned = ok(
        await admin.client.post(
            "/canned-replies",
            json={
                "scope": "shared",
                "shortcode": "hello",
                "body": "Hi {{requester.name}}, {{agent.name}} of {{tenant.name}} here "
                "about ticket {{ticket.id}}.",
            },
        ),
        201,
    )

    # 1. A member opens a ticket and it is queued.
    opened = ok(
        await mia.client.post(
            "/tickets",
            json={"subject": "Payout stuck", "text": "My payout is stuck", "client_msg_id": "t1"},
        ),
        201,
    )
    ticket_id, conv_id = opened["ticket"]["id"], opened["ticket"]["conversation_id"]
    queued_at = datetime.fromisoformat(opened["ticket"]["created_at"])
    assert opened["ticket"]["status"] == "queued"
    await admin_socket.wait_for(
        "queue:updated", lambda d: d["ticket_id"] == ticket_id and d["change"] == "added"
    )

    # 2. It is auto-assigned to the one online agent, who hears it.
    assigned = await ada_socket.wait_for(
        "ticket:assigned", lambda d: d["ticket"]["id"] == ticket_id, timeout=20
    )
    assert assigned["ticket"]["assignee_id"] == "ada"
    await mia_socket.wait_for(
        "ticket:updated",
        lambda d: d["ticket"]["id"] == ticket_id and d["ticket"]["status"] == "assigned",
    )

    # 3. Ada answers from the canned reply, rendered on the server: on time.
    sent = ok(
        await ada.client.post(
            f"/conversations/{conv_id}/canned-replies/{canned['id']}/send",
            json={"client_msg_id": "c1"},
        ),
        201,
    )
    text = f"Hi Mia, Ada of Acme Support here about ticket {ticket_id}."
    assert sent["message"]["text"] == text and sent["message"]["sender_role"] == "agent"
    heard = await mia_socket.wait_for("message:new", lambda m: m["text"] == text)
    assert heard["sender_role"] == "agent"
    ticket = ok(await ada.client.get(f"/tickets/{ticket_id}"))["ticket"]
    first = clock(ticket, "first_response")
    assert first["met_at"] is not None and not first["breached"]

    # 4. Waiting on the member pauses the clocks.
    waiting = ok(
        await ada.client.post(f"/tickets/{ticket_id}/transitions", json={"action": "wait_on_user"})
    )["ticket"]
    assert waiting["status"] == "waiting_on_user"
    resolution = clock(waiting, "resolution")
    assert resolution["paused"] and resolution["due_at"] is None
    assert 0 < resolution["remaining_seconds"] <= RESOLUTION_SECONDS
    paused_left = resolution["remaining_seconds"]

    # 5. The member replies: the ticket resumes, the clock runs again from where it was.
    ok(await mia.send(conv_id, "Here is the reference: 12345", "r1"), 201)
    resumed = await mia_socket.wait_for(
        "ticket:updated",
        lambda d: (
            d["ticket"]["id"] == ticket_id
            and d["previous_status"] == "waiting_on_user"
            and d["ticket"]["status"] == "assigned"
        ),
    )
    running = clock(resumed["ticket"], "resolution")
    assert not running["paused"] and running["due_at"] is not None
    due = datetime.fromisoformat(running["due_at"])
    # The pause moved the due time: it is later than opening + target.
    assert (due - queued_at).total_seconds() > RESOLUTION_SECONDS
    assert paused_left <= RESOLUTION_SECONDS

    # 6. The resolution SLA is breached: the assignee and the admins hear it.
    window = RESOLUTION_SECONDS + 30
    breach = await ada_socket.wait_for(
        "sla:breached", lambda d: d["ticket"]["id"] == ticket_id, timeout=window
    )
    assert breach["metric"] == "resolution"
    admin_breach = await admin_socket.wait_for(
        "sla:breached", lambda d: d["ticket"]["id"] == ticket_id, timeout=10
    )
    assert admin_breach["metric"] == "resolution"

    # 7. The breach action escalates it to platform staff, who reply.
    escalated = await staff_socket.wait_for(
        "ticket:escalated", lambda d: d["ticket"]["id"] == ticket_id, timeout=20
    )
    assert escalated["ticket"]["tenant_id"] == tenant
    listed = ok(await staff.client.get("/platform/tickets", params={"limit": 100}))
    assert ticket_id in {t["id"] for t in listed["tickets"]}
    reply = ok(
        await staff.client.post(
            f"/platform/tickets/{ticket_id}/messages",
            json={"text": "Platform here: the payout is released.", "client_msg_id": "p1"},
        ),
        201,
    )
    assert reply["message"]["sender_role"] == "super_admin"
    from_staff = await mia_socket.wait_for(
        "message:new", lambda m: m["text"] == "Platform here: the payout is released."
    )
    assert from_staff["sender_role"] == "super_admin"
    after = ok(await ada.client.get(f"/tickets/{ticket_id}"))["ticket"]
    assert after["escalated"] and after["sla"]["status"] == "active_with_misses"

    # 8. Resolved, reopened (back to the queue, and to Ada again), and closed.
    resolved = ok(
        await ada.client.post(f"/tickets/{ticket_id}/transitions", json={"action": "resolve"})
    )["ticket"]
    assert resolved["status"] == "resolved" and resolved["sla"]["status"] == "missed"
    reopened = ok(
        await mia.client.post(f"/tickets/{ticket_id}/transitions", json={"action": "reopen"})
    )["ticket"]
    assert reopened["status"] in ("queued", "assigned")
    await mia_socket.wait_for(
        "ticket:updated",
        lambda d: (
            d["ticket"]["id"] == ticket_id
            and d["previous_status"] == "queued"
            and d["ticket"]["status"] == "assigned"
        ),
        timeout=20,
    )
    closed = ok(
        await mia.client.post(f"/tickets/{ticket_id}/transitions", json={"action": "close"})
    )["ticket"]
    assert closed["status"] == "closed"
    again = await mia.client.post(f"/tickets/{ticket_id}/transitions", json={"action": "resolve"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_transition"

    # Every transition wrote a system message naming who did what, in the conversation.
    page = ok(await mia.client.get(f"/conversations/{conv_id}/messages", params={"limit": 100}))
    system = [m for m in page["messages"] if m["kind"] == "system"]
    assert len(system) >= 8 and all(m["sender_role"] == "system" for m in system)

    # The member replays the conversation's events: the ticket events are there, gapless.
    replay = await mia_socket.call("sync", {"conversations": {conv_id: 0}, "mode": "events"})
    assert replay["ok"], replay
    events = replay["events"][conv_id]
    assert [e["event_seq"] for e in events] == list(range(1, len(events) + 1))
    names = {e["event"] for e in events}
    assert {"ticket:updated", "ticket:assigned", "sla:breached", "ticket:escalated"} <= names
    assert len([e for e in events if e["event"] == "sla:breached"]) == 1

    # Analytics show that ticket (the consumer folds the events a moment later).
    today = datetime.now(UTC).date().isoformat()

    async def figures() -> Any:
        params = {"from": today, "to": today, "group_by": "agent"}
        return ok(await admin.client.get("/analytics/support", params=params))["rows"]

    def counted(rows: list[dict[str, Any]]) -> bool:
        mine = [r for r in rows if r["group"] == "ada"]
        return bool(mine) and mine[0]["resolved"] >= 1 and mine[0]["sla_breaches"] >= 1

    # Analytics reads are limited to 10 a minute per user: at most nine probes
    # in 30 s, and the CSV below.
    rows = await eventually(figures, counted, timeout=30, interval=3.5)
    row = next(r for r in rows if r["group"] == "ada")
    assert row["first_response"]["count"] == 1 and row["sla_missed"] == 1
    csv = await admin.client.get(
        "/analytics/support", params={"from": today, "to": today, "format": "csv"}
    )
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    header, *lines = csv.text.strip().splitlines()
    assert "opened" in header and lines
