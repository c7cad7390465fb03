"""Presence against a real redis-server: devices, expiry, heartbeats, tenancy."""

from __future__ import annotations

import asyncio
import random

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from confab.presence.v1 import presence_pb2 as pb
from confab_core import redisx
from confab_core.clock import FakeClock
from confab_core.errors import InvalidArgument, Unavailable
from confab_core.identity import ROLE_AGENT, Caller
from confab_core.kafka import PRESENCE_SEQ_HEADER
from confab_core.servicetoken import GATEWAY
from confab_devservers import free_port
from presence.events import EventQueue, PendingEvent
from presence.handlers.presence import HeartbeatEntry, PresenceHandler
from presence.storage.presence import PresenceDb
from presence.sweeper import Sweeper

# Staff read the whole tenant: these tests are about presence, not visibility.
STAFF = frozenset({ROLE_AGENT})

ONLINE = pb.PRESENCE_STATUS_ONLINE
OFFLINE = pb.PRESENCE_STATUS_OFFLINE

ALICE = Caller(tenant_id="t1", user_id="alice", roles=STAFF)
BOB = Caller(tenant_id="t1", user_id="bob", roles=STAFF)


def ms(clock: FakeClock) -> int:
    return int(clock.now().timestamp() * 1000)


def headers(pending: PendingEvent) -> dict[str, bytes]:
    return dict(pending.headers)


@pytest.mark.asyncio
async def test_first_device_goes_online_and_publishes(handler, clock, events) -> None:
    state = await handler.connect(ALICE, "c1", "gw1")

    assert (state.status, state.device_count) == (ONLINE, 1)
    assert state.last_active_ms == ms(clock)
    [(pending, event)] = events()
    assert pending.key == b"t1:alice"
    assert headers(pending)[PRESENCE_SEQ_HEADER] == b"1"
    assert event.event_id
    assert event.tenant_id == "t1"
    assert event.presence.user_id == "alice"
    assert event.presence.status == ONLINE
    assert event.presence.device_count == 1


@pytest.mark.asyncio
async def test_online_while_any_device_is_connected(handler, clock, events) -> None:
    await handler.connect(ALICE, "phone", "gw1")
    second = await handler.connect(ALICE, "laptop", "gw2")
    assert (second.status, second.device_count) == (ONLINE, 2)
    assert len(events()) == 1

    clock.advance(5)
    one_left = await handler.disconnect(ALICE, "phone")
    assert (one_left.status, one_left.device_count) == (ONLINE, 1)
    assert events() == []

    clock.advance(5)
    gone = await handler.disconnect(ALICE, "laptop")
    assert (gone.status, gone.device_count) == (OFFLINE, 0)
    assert gone.last_active_ms == ms(clock)
    [(pending, event)] = events()
    assert event.presence.status == OFFLINE
    assert event.presence.last_active_at.ToMilliseconds() == ms(clock)
    assert headers(pending)[PRESENCE_SEQ_HEADER] == b"2"


@pytest.mark.asyncio
async def test_connect_is_idempotent_per_connection(handler, events) -> None:
    await handler.connect(ALICE, "c1", "gw1")
    again = await handler.connect(ALICE, "c1", "gw1")

    assert again.device_count == 1
    assert len(events()) == 1


@pytest.mark.asyncio
async def test_disconnect_unknown_connection_is_a_no_op(handler, redis: Redis, events) -> None:
    state = await handler.disconnect(ALICE, "never-connected")
    assert (state.status, state.device_count, state.last_active_ms) == (OFFLINE, 0, None)
    assert await redis.keys("presence:t1:*") == []

    await handler.connect(ALICE, "c1", "gw1")
    assert [e.presence.status for _, e in events()] == [ONLINE]
    await handler.disconnect(ALICE, "c1")
    again = await handler.disconnect(ALICE, "c1")
    assert again.status == OFFLINE
    assert [e.presence.status for _, e in events()] == [OFFLINE]


@pytest.mark.asyncio
async def test_concurrent_devices_never_leave_a_wrong_status(handler: PresenceHandler) -> None:
    rng = random.Random(7)
    devices = [f"d{i}" for i in range(12)]
    for _ in range(15):
        ops = []
        for device in devices:
            if rng.random() < 0.5:
                ops.append(handler.connect(ALICE, device, "gw1"))
            else:
                ops.append(handler.disconnect(ALICE, device))
        rng.shuffle(ops)
        await asyncio.gather(*ops)

        [state] = await handler.get(BOB, ["alice"])
        assert state.status == (ONLINE if state.device_count else OFFLINE)


@pytest.mark.asyncio
async def test_concurrent_changes_publish_a_consistent_stream(
    handler: PresenceHandler, events
) -> None:
    for round_ in range(10):
        await asyncio.gather(*(handler.connect(ALICE, f"r{round_}d{i}", "gw") for i in range(8)))
        await asyncio.gather(*(handler.disconnect(ALICE, f"r{round_}d{i}") for i in range(8)))

    published = events()
    statuses = [e.presence.status for _, e in published]
    seqs = [int(headers(p)[PRESENCE_SEQ_HEADER]) for p, _ in published]
    # The queue keeps only the newest state per user; its seq counts every
    # transition: exactly one online and one offline per round, no more.
    assert statuses == [OFFLINE]
    assert seqs == [20]


@pytest.mark.asyncio
async def test_sweep_turns_a_crashed_gateways_users_offline(
    handler, sweeper: Sweeper, clock: FakeClock, events
) -> None:
    connected_at = ms(clock)
    await handler.connect(ALICE, "c1", "gw-crashed")
    await handler.connect(BOB, "c2", "gw-crashed")
    events()

    clock.advance(59)
    assert await sweeper.sweep_once() == 0
    clock.advance(2)
    assert await sweeper.sweep_once() == 2

    states = await handler.get(ALICE, ["alice", "bob"])
    assert [(s.status, s.device_count) for s in states] == [(OFFLINE, 0), (OFFLINE, 0)]
    # Last seen is the last sign of life, not when the sweeper noticed.
    assert {s.last_active_ms for s in states} == {connected_at}
    published = events()
    assert sorted(e.presence.user_id for _, e in published) == ["alice", "bob"]
    assert {e.presence.status for _, e in published} == {OFFLINE}
    assert await sweeper.sweep_once() == 0
    assert events() == []


@pytest.mark.asyncio
async def test_sweep_pages_through_many_users(handler, sweeper: Sweeper, clock, db) -> None:
    for i in range(7):
        await handler.connect(
            Caller(tenant_id=f"t{i % 3}", user_id=f"u{i}", roles=STAFF), "c", "gw"
        )
    clock.advance(61)

    assert await sweeper.sweep_once() == 7
    assert await db.due(ms(clock), 100) == []


@pytest.mark.asyncio
async def test_heartbeat_keeps_connections_alive(handler, sweeper, clock, events) -> None:
    await handler.connect(ALICE, "c1", "gw1")
    events()
    clock.advance(40)
    beat_at = ms(clock)
    refreshed = await handler.heartbeat(GATEWAY, "gw1", [HeartbeatEntry("t1", "alice", "c1")])
    assert refreshed == 1

    clock.advance(40)
    assert await sweeper.sweep_once() == 0
    [state] = await handler.get(BOB, ["alice"])
    assert (state.status, state.device_count) == (ONLINE, 1)
    assert events() == []

    clock.advance(21)
    assert await sweeper.sweep_once() == 1
    [state] = await handler.get(BOB, ["alice"])
    assert (state.status, state.last_active_ms) == (OFFLINE, beat_at)


@pytest.mark.asyncio
async def test_heartbeat_spans_tenants_and_skips_unknown_connections(handler, clock) -> None:
    await handler.connect(ALICE, "a1", "gw1")
    await handler.connect(ALICE, "a2", "gw1")
    await handler.connect(Caller(tenant_id="t2", user_id="alice", roles=STAFF), "a1", "gw1")
    await handler.disconnect(ALICE, "a2")

    refreshed = await handler.heartbeat(
        GATEWAY,
        "gw1",
        [
            HeartbeatEntry("t1", "alice", "a1"),
            HeartbeatEntry("t1", "alice", "a2"),  # disconnected: must not come back
            HeartbeatEntry("t2", "alice", "a1"),
            HeartbeatEntry("t3", "alice", "a1"),  # never connected in t3
        ],
    )

    assert refreshed == 2
    [state] = await handler.get(ALICE, ["alice"])
    assert state.device_count == 1


@pytest.mark.asyncio
async def test_one_expired_device_of_two_keeps_the_user_online(
    handler, sweeper, clock, events
) -> None:
    await handler.connect(ALICE, "phone", "gw-crashed")
    await handler.connect(ALICE, "laptop", "gw-alive")
    events()
    clock.advance(30)
    await handler.heartbeat(GATEWAY, "gw-alive", [HeartbeatEntry("t1", "alice", "laptop")])
    clock.advance(31)

    assert await sweeper.sweep_once() == 0
    [state] = await handler.get(ALICE, ["alice"])
    assert (state.status, state.device_count) == (ONLINE, 1)
    assert events() == []


@pytest.mark.asyncio
async def test_expired_but_unswept_user_reads_offline(handler, clock) -> None:
    await handler.connect(ALICE, "c1", "gw1")
    clock.advance(60)

    [state] = await handler.get(BOB, ["alice"])
    assert (state.status, state.device_count) == (OFFLINE, 0)


@pytest.mark.asyncio
async def test_connect_after_expiry_before_sweep_does_not_double_count(
    handler, sweeper, clock, redis: Redis, events
) -> None:
    await handler.connect(ALICE, "c1", "gw1")
    clock.advance(61)
    state = await handler.connect(ALICE, "c2", "gw1")

    assert (state.status, state.device_count) == (ONLINE, 1)
    # Never reported offline, so no second "online" either.
    assert len(events()) == 1
    assert await sweeper.sweep_once() == 0
    assert await redis.hget("presence:stats", "connections") == "1"


@pytest.mark.asyncio
async def test_tenants_are_independent(handler, events) -> None:
    t1 = Caller(tenant_id="t1", user_id="alice", roles=STAFF)
    t2 = Caller(tenant_id="t2", user_id="alice", roles=STAFF)
    await handler.connect(t1, "same-conn", "gw1")

    [seen_from_t2] = await handler.get(
        Caller(tenant_id="t2", user_id="bob", roles=STAFF), ["alice"]
    )
    assert (seen_from_t2.status, seen_from_t2.device_count) == (OFFLINE, 0)

    await handler.connect(t2, "same-conn", "gw1")
    await handler.disconnect(t1, "same-conn")

    [in_t1] = await handler.get(t1, ["alice"])
    [in_t2] = await handler.get(t2, ["alice"])
    assert (in_t1.status, in_t2.status) == (OFFLINE, ONLINE)
    assert in_t2.device_count == 1
    assert [(e.tenant_id, e.presence.status) for _, e in events()] == [
        ("t2", ONLINE),
        ("t1", OFFLINE),
    ]


@pytest.mark.asyncio
async def test_colons_in_ids_cannot_cross_tenants(handler, redis: Redis) -> None:
    await handler.connect(Caller(tenant_id="a:b", user_id="c", roles=STAFF), "c1", "gw1")

    [other] = await handler.get(Caller(tenant_id="a", user_id="x", roles=STAFF), ["b:c"])
    assert other.status == OFFLINE
    assert len(await redis.keys("presence:a%3Ab:c*")) == 2


@pytest.mark.asyncio
async def test_get_presence_of_unknown_users_in_request_order(handler) -> None:
    await handler.connect(BOB, "c1", "gw1")

    states = await handler.get(ALICE, ["zed", "bob", "zed", "alice"])

    assert [(s.user_id, s.status, s.device_count) for s in states] == [
        ("zed", OFFLINE, 0),
        ("bob", ONLINE, 1),
        ("alice", OFFLINE, 0),
    ]


@pytest.mark.asyncio
async def test_get_presence_validation(handler) -> None:
    assert len(await handler.get(ALICE, [f"u{i}" for i in range(500)])) == 500
    with pytest.raises(InvalidArgument) as too_many:
        await handler.get(ALICE, [f"u{i}" for i in range(501)])
    assert too_many.value.code == "too_many_user_ids"
    with pytest.raises(InvalidArgument) as empty:
        await handler.get(ALICE, ["ok", ""])
    assert empty.value.code == "missing_user_id"


@pytest.mark.asyncio
async def test_connect_and_heartbeat_validation(handler) -> None:
    with pytest.raises(InvalidArgument, match="connection_id"):
        await handler.connect(ALICE, "", "gw1")
    with pytest.raises(InvalidArgument, match="gateway_id"):
        await handler.connect(ALICE, "c1", "")
    with pytest.raises(InvalidArgument, match="connection_id"):
        await handler.connect(ALICE, "x" * 129, "gw1")
    with pytest.raises(InvalidArgument, match="connection_id"):
        await handler.disconnect(ALICE, "")
    with pytest.raises(InvalidArgument, match="tenant_id"):
        await handler.heartbeat(GATEWAY, "gw1", [HeartbeatEntry("", "alice", "c1")])
    with pytest.raises(InvalidArgument, match="user_id"):
        await handler.heartbeat(GATEWAY, "gw1", [HeartbeatEntry("t1", "", "c1")])
    with pytest.raises(InvalidArgument, match="user_id"):
        await handler.heartbeat(GATEWAY, "gw1", [HeartbeatEntry("t1", "a\x1fb", "c1")])
    with pytest.raises(InvalidArgument, match="connection_id"):
        await handler.heartbeat(GATEWAY, "gw1", [HeartbeatEntry("t1", "alice", "")])
    with pytest.raises(InvalidArgument, match="gateway_id"):
        await handler.heartbeat(GATEWAY, "", [])
    assert await handler.heartbeat(GATEWAY, "gw1", []) == 0


@pytest.mark.asyncio
async def test_sweep_publishes_fleet_gauges(handler, sweeper, clock) -> None:
    await handler.connect(ALICE, "c1", "gw1")
    await handler.connect(ALICE, "c2", "gw1")
    await handler.connect(BOB, "c3", "gw1")
    await sweeper.sweep_once()
    assert REGISTRY.get_sample_value("confab_presence_connections") == 3
    assert REGISTRY.get_sample_value("confab_presence_online_users") == 2

    await handler.disconnect(BOB, "c3")
    clock.advance(61)
    await sweeper.sweep_once()
    assert REGISTRY.get_sample_value("confab_presence_connections") == 0
    assert REGISTRY.get_sample_value("confab_presence_online_users") == 0


@pytest.mark.asyncio
async def test_devices_on_different_pods_share_one_status(redis: Redis, make_handler) -> None:
    """State lives in Redis, so whichever pod sees the change reports it, once."""
    queue_a, queue_b = EventQueue(100), EventQueue(100)
    pod_a = make_handler(PresenceDb(redis), queue_a)
    pod_b = make_handler(PresenceDb(redis), queue_b)

    await pod_a.connect(ALICE, "phone", "gw-a")
    await pod_b.connect(ALICE, "laptop", "gw-b")
    await pod_a.disconnect(ALICE, "phone")
    assert (len(queue_a), len(queue_b)) == (1, 0)
    queue_a.take(10)

    await pod_b.disconnect(ALICE, "laptop")
    assert len(queue_a) == 0
    [pending] = queue_b.take(10)
    assert dict(pending.headers)[PRESENCE_SEQ_HEADER] == b"2"


@pytest.mark.asyncio
async def test_connection_listed_twice_is_refreshed_once(handler) -> None:
    await handler.connect(ALICE, "c1", "gw1")
    entry = HeartbeatEntry("t1", "alice", "c1")

    assert await handler.heartbeat(GATEWAY, "gw1", [entry, entry]) == 1


@pytest.mark.asyncio
async def test_redis_outage_is_unavailable_not_internal(queue, make_handler) -> None:
    dead = redisx.connect(f"redis://127.0.0.1:{free_port()}/0")
    handler = make_handler(PresenceDb(dead), queue)
    try:
        with pytest.raises(Unavailable) as exc:
            await handler.connect(ALICE, "c1", "gw1")
    finally:
        await dead.aclose()
    assert exc.value.code == "presence_store_unavailable"
