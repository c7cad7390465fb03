"""Faults delay work; they never lose a message. Runs after the other e2e files."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from confab_devfleet import Fleet

from .conftest import TENANT_A, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


def uid(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def test_messages_survive_a_conversation_service_restart(fleet: Fleet, users) -> None:
    alice, bob = uid("alice"), uid("bob")
    api = users(TENANT_A, alice)
    conv = await api.create("group", [bob])
    first = (await api.send(conv["id"], "before the restart", uid("m"))).json()["message"]

    await asyncio.to_thread(fleet.services["conversation"].restart)

    page = (await api.client.get(f"/conversations/{conv['id']}/messages")).json()
    assert [m["id"] for m in page["messages"]] == [first["id"]]
    resp = await api.send(conv["id"], "after the restart", uid("m"))
    assert resp.status_code == 201
    assert resp.json()["message"]["seq"] == 2


async def test_send_is_accepted_while_kafka_is_down_and_delivered_after(
    fleet: Fleet, users, sockets
) -> None:
    alice, bob = uid("alice"), uid("bob")
    api = users(TENANT_A, alice)
    conv = await api.create("group", [bob])
    bob_socket = await sockets(TENANT_A, bob)
    warmup = (await api.send(conv["id"], "warm-up", uid("m"))).json()["message"]
    await bob_socket.wait_for("message:new", lambda m: m["id"] == warmup["id"])

    await asyncio.to_thread(fleet.kafka.stop)
    try:
        resp = await api.send(conv["id"], "sent during the outage", uid("m"))
        assert resp.status_code == 201, resp.text
        during = resp.json()["message"]
    finally:
        await asyncio.to_thread(fleet.kafka.start)

    got = await bob_socket.wait_for("message:new", lambda m: m["id"] == during["id"], timeout=90)
    assert got["seq"] == 2
    assert [m["seq"] for m in bob_socket.received("message:new")] == [1, 2]


async def test_an_sla_deadline_passed_while_conversation_was_killed_fires_once(
    fleet: Fleet, users, sockets
) -> None:
    tenant = uid("sla-kill")
    admin = users(tenant, "root", roles=["tenant_admin"])
    member = users(tenant, "mia")
    target = 6
    policy = {
        "targets": [{"priority": "high", "resolution_seconds": target}],
        "breach_actions": ["notify"],
        "expected_version": 0,
    }
    assert (await admin.client.put("/support/sla", json=policy)).status_code == 200
    resp = await member.client.post("/tickets", json={"subject": "Down", "priority": "high"})
    assert resp.status_code == 201, resp.text
    ticket = resp.json()["ticket"]
    (running,) = [c for c in ticket["sla"]["clocks"] if c["metric"] == "resolution"]
    due = datetime.fromisoformat(running["due_at"])

    # Killed (SIGKILL) before the deadline, back only after it: the durable timer
    # still fires, once.
    await asyncio.to_thread(fleet.services["conversation"].kill)
    try:
        left = (due - datetime.now(UTC)).total_seconds()
        assert left > 0, "the kill came after the deadline; raise the target"
        # The deadline has to pass while the service is down: that is the fault.
        await asyncio.sleep(left + 1)
    finally:
        await asyncio.to_thread(fleet.services["conversation"].start)

    async def breached() -> Any:
        got = await member.client.get(f"/tickets/{ticket['id']}")
        # 503 unavailable while the gateway's channel reconnects to the new process.
        assert got.status_code in (200, 503), got.text
        return got.json()["ticket"] if got.status_code == 200 else None

    after = await eventually(
        breached, lambda t: t is not None and t["sla"]["status"] == "active_with_misses", 60
    )
    (clock,) = [c for c in after["sla"]["clocks"] if c["metric"] == "resolution"]
    assert clock["breached"]

    # A later write goes through the same scheduler passes; still one breach.
    sent = await member.send(ticket["conversation_id"], "still down", uid("m"))
    assert sent.status_code == 201, sent.text
    sock = await sockets(tenant, "mia")
    replay = await sock.call(
        "sync", {"conversations": {ticket["conversation_id"]: 0}, "mode": "events"}
    )
    assert replay["ok"], replay
    events = replay["events"][ticket["conversation_id"]]
    assert [e["event"] for e in events].count("sla:breached") == 1
