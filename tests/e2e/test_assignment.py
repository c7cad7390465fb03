"""Auto-assignment over the public API of the whole fleet: a queued ticket goes
to the one online agent, the endpoints refuse bad input and other tenants."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from .conftest import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")


def ok(resp: Any, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    return resp.json()


async def test_a_queued_ticket_goes_to_the_one_online_agent(users, sockets) -> None:
    tenant, other = f"assign-{uuid.uuid4().hex[:8]}", f"assign-{uuid.uuid4().hex[:8]}"
    admin = users(tenant, "root", roles=["tenant_admin"])
    ada = users(tenant, "ada", roles=["agent"])
    abe = users(tenant, "abe", roles=["agent"])
    member = users(tenant, "mia")
    # Both agents call the service once (so it knows them); only Ada connects.
    await ada.create("group", ["root"], title="shift")
    await abe.create("group", ["root"], title="shift")
    await sockets(tenant, "ada", roles=["agent"])

    def ada_online(body: Any) -> bool:
        return any(a["user_id"] == "ada" and a["online"] for a in body["agents"])

    async def roster() -> Any:
        return ok(await admin.client.get("/support/agents"))

    agents = await eventually(roster, ada_online)
    # Root has only called the assignment API, which learns nobody.
    assert {a["user_id"]: a["online"] for a in agents["agents"]} == {"abe": False, "ada": True}

    # Bad input changes nothing; a member may not even read.
    bad = await admin.client.put("/support/assignment", json={"mode": "lottery"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
    refused = await member.client.get("/support/assignment")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert ok(await admin.client.get("/support/assignment"))["version"] == 0

    settings = ok(
        await admin.client.put("/support/assignment", json={"enabled": True, "mode": "least_busy"})
    )
    assert settings["enabled"] and settings["version"] == 1

    opened = ok(await member.client.post("/tickets", json={"subject": "Cannot log in"}), 201)
    ticket_id = opened["ticket"]["id"]

    async def ticket() -> Any:
        return ok(await admin.client.get(f"/tickets/{ticket_id}"))["ticket"]

    assigned = await eventually(ticket, lambda t: t["status"] == "assigned", timeout=20)
    assert assigned["assignee_id"] == "ada"

    # Another tenant sees none of it: its own defaults, no agents, no Ada.
    stranger = users(other, "root", roles=["tenant_admin"])
    theirs = ok(await stranger.client.get("/support/assignment"))
    assert not theirs["enabled"] and theirs["version"] == 0
    assert ok(await stranger.client.get("/support/agents"))["agents"] == []
    missing = await stranger.client.put("/support/agents/ada", json={"capacity": 1})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "agent_not_found"
    mine = ok(await admin.client.put("/support/agents/ada", json={"capacity": 3}))
    assert (mine["capacity"], mine["custom_capacity"], mine["open_tickets"]) == (3, True, 1)
