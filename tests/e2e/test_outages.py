"""Faults delay work; they never lose a message. Runs after the other e2e files."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from confab_devfleet import Fleet

from .conftest import TENANT_A

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
