"""Rate limits as a client meets them, socket sessions that end at the token's exp
(or go on after auth:refresh), and live delivery in every conversation of a user."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import socketio

from .conftest import TENANT_BULK, TENANT_LIMITED, Socket, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


def uid(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def burst(limit: int) -> int:
    """Calls that must meet a refusal: the window may turn once during a short burst,
    so ``2 * limit + 1`` calls exceed the budget of one of the two windows."""
    return 2 * limit + 1


async def test_rest_answers_429_with_retry_after(users) -> None:
    api = users(TENANT_LIMITED, uid("creator"))
    answers = [
        await api.client.post("/conversations", json={"kind": "group", "member_ids": [uid("peer")]})
        for _ in range(burst(2))
    ]
    statuses = [r.status_code for r in answers]
    assert set(statuses) <= {201, 429} and 429 in statuses, statuses
    refused = next(r for r in answers if r.status_code == 429)
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 10
    error = refused.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["retry_after"] == retry_after


async def test_socket_acks_rate_limited_with_retry_after(users, sockets) -> None:
    alice = uid("alice")
    conv = await users(TENANT_LIMITED, alice).create("group", [uid("peer")])
    sock = await sockets(TENANT_LIMITED, alice)
    acks = [
        await sock.call(
            "message:send",
            {"conversation_id": conv["id"], "text": f"m{i}", "client_msg_id": uid("c")},
        )
        for i in range(burst(3))
    ]
    refused = [a for a in acks if not a["ok"]]
    assert refused and len(refused) < len(acks), acks
    for ack in refused:
        assert ack["error"]["code"] == "rate_limited", ack
        assert 1 <= ack["error"]["retry_after"] <= 10


async def test_connects_over_the_limit_are_refused(fleet) -> None:
    user = uid("reconnector")
    opened: list[Socket] = []
    refusals = 0
    try:
        for _ in range(burst(2)):
            sock = Socket()
            try:
                await sock.connect(fleet.gateway_url(), fleet.token(TENANT_LIMITED, user))
            except socketio.exceptions.ConnectionError:
                refusals += 1
                continue
            opened.append(sock)
    finally:
        for sock in opened:
            await sock.close()
    assert refusals >= 1 and opened


async def test_socket_closes_at_exp_and_refresh_keeps_it_open(fleet, users) -> None:
    alice, bob = uid("alice"), uid("bob")
    conv = await users(TENANT_LIMITED, bob).create("group", [alice])
    short, refreshed = Socket(), Socket()
    await short.connect(fleet.gateway_url(), fleet.token(TENANT_LIMITED, alice, ttl_seconds=2))
    await refreshed.connect(fleet.gateway_url(), fleet.token(TENANT_LIMITED, alice, ttl_seconds=2))
    try:
        ack = await refreshed.call(
            "auth:refresh", {"token": fleet.token(TENANT_LIMITED, alice, ttl_seconds=3600)}
        )
        assert ack["ok"], ack
        mismatch = await refreshed.call(
            "auth:refresh", {"token": fleet.token(TENANT_LIMITED, bob, ttl_seconds=3600)}
        )
        assert mismatch["error"]["code"] == "token_mismatch"

        expired = await short.wait_for("auth:expired", timeout=15)
        assert expired["code"] == "token_expired"
        await eventually(lambda: asyncio.sleep(0), lambda _: not short.sio.connected, timeout=10)
        # Past the first exp, the refreshed socket still hears its conversations.
        assert refreshed.sio.connected
        sent = await users(TENANT_LIMITED, bob).send(conv["id"], "still here", uid("c"))
        assert sent.status_code == 201, sent.text
        await refreshed.wait_for("message:new", lambda m: m["text"] == "still here")
    finally:
        await short.close()
        await refreshed.close()


async def test_a_message_in_the_oldest_of_1000_conversations_arrives_live(users, sockets) -> None:
    owner, reader = uid("owner"), uid("reader")
    api = users(TENANT_BULK, owner)
    ids: list[str] = []
    for start in range(0, 1000, 50):
        batch = await asyncio.gather(
            *(api.create("group", [reader], f"room {i}") for i in range(start, start + 50))
        )
        ids.extend(c["id"] for c in batch)
    # Least recent activity of the 1,000: far outside the 100 most recent rooms that
    # sockets once joined alone.
    oldest = ids[0]

    sock = await sockets(TENANT_BULK, reader)
    sent = await api.send(oldest, "in the oldest", uid("c"))
    assert sent.status_code == 201, sent.text
    message = await sock.wait_for("message:new", lambda m: m["text"] == "in the oldest")
    assert message["conversation_id"] == oldest
