"""The offline grace: a user whose last device disconnected stays present for
offline_grace_seconds, so a quick reconnect publishes nothing."""

from __future__ import annotations

import asyncio
import random

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from confab.presence.v1 import presence_pb2 as pb
from confab_core.clock import FakeClock
from confab_core.identity import ROLE_AGENT, Caller
from confab_core.kafka import PRESENCE_SEQ_HEADER
from presence.events import EventQueue
from presence.handlers.presence import PresenceHandler
from presence.storage.presence import PresenceDb
from presence.sweeper import Sweeper

# Staff read the whole tenant: these tests are about presence, not visibility.
STAFF = frozenset({ROLE_AGENT})

ONLINE = pb.PRESENCE_STATUS_ONLINE
BUSY = pb.PRESENCE_STATUS_BUSY
AWAY = pb.PRESENCE_STATUS_AWAY
OFFLINE = pb.PRESENCE_STATUS_OFFLINE

ALICE = Caller(tenant_id="t1", user_id="alice", roles=STAFF)
BOB = Caller(tenant_id="t1", user_id="bob", roles=STAFF)
GRACE = 10  # the conftest's, the service's default


def ms(clock: FakeClock) -> int:
    return int(clock.now().timestamp() * 1000)


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def status_of(handler: PresenceHandler, user_id: str = "alice") -> tuple[int, int]:
    [state] = await handler.get(BOB, [user_id])
    return state.status, state.device_count


@pytest.mark.asyncio
async def test_reconnect_within_the_grace_publishes_nothing(
    graceful: PresenceHandler, sweeper: Sweeper, clock: FakeClock, events
) -> None:
    await graceful.connect(ALICE, "c1", "gw1")
    events()
    reconnects = metric("confab_presence_offline_grace_reconnects_total")

    gone = await graceful.disconnect(ALICE, "c1")
    assert (gone.status, gone.device_count) == (ONLINE, 0)
    assert await status_of(graceful) == (ONLINE, 0)

    clock.advance(GRACE - 0.001)
    assert await sweeper.sweep_once() == 0
    assert await status_of(graceful) == (ONLINE, 0)

    back = await graceful.connect(ALICE, "c2", "gw2")
    assert (back.status, back.device_count) == (ONLINE, 1)
    assert events() == []
    assert metric("confab_presence_offline_grace_reconnects_total") == reconnects + 1

    # The cancelled grace leaves nothing behind for the sweeper.
    clock.advance(GRACE * 3)
    assert await sweeper.sweep_once() == 0
    assert await status_of(graceful) == (ONLINE, 1)
    assert events() == []


@pytest.mark.asyncio
async def test_grace_end_goes_offline_once_last_seen_at_the_disconnect(
    graceful: PresenceHandler, sweeper: Sweeper, clock: FakeClock, events
) -> None:
    await graceful.connect(ALICE, "c1", "gw1")
    events()
    ended = metric("confab_presence_offline_grace_ended_total")
    clock.advance(30)
    disconnected_at = ms(clock)
    await graceful.disconnect(ALICE, "c1")
    assert events() == []

    clock.advance(GRACE)
    # Reads are exact even before the sweeper catches up.
    assert await status_of(graceful) == (OFFLINE, 0)
    assert events() == []

    clock.advance(3)  # the sweeper runs on its own interval
    assert await sweeper.sweep_once() == 1
    [(pending, event)] = events()
    assert (event.presence.status, event.presence.device_count) == (OFFLINE, 0)
    assert event.presence.last_active_at.ToMilliseconds() == disconnected_at
    assert dict(pending.headers)[PRESENCE_SEQ_HEADER] == b"2"
    assert metric("confab_presence_offline_grace_ended_total") == ended + 1

    assert await sweeper.sweep_once() == 0
    assert events() == []
    [state] = await graceful.get(BOB, ["alice"])
    assert (state.status, state.last_active_ms) == (OFFLINE, disconnected_at)


@pytest.mark.asyncio
async def test_several_devices_with_the_grace(
    graceful: PresenceHandler, sweeper: Sweeper, clock: FakeClock, events
) -> None:
    await graceful.connect(ALICE, "phone", "gw1")
    await graceful.connect(ALICE, "laptop", "gw2")
    assert len(events()) == 1

    one_left = await graceful.disconnect(ALICE, "phone")
    assert (one_left.status, one_left.device_count) == (ONLINE, 1)
    clock.advance(GRACE * 2)
    assert await sweeper.sweep_once() == 0  # a device is still here: no grace ran

    await graceful.disconnect(ALICE, "laptop")
    clock.advance(GRACE / 2)
    await graceful.connect(ALICE, "phone", "gw1")
    assert await status_of(graceful) == (ONLINE, 1)

    clock.advance(1)
    await graceful.connect(ALICE, "laptop", "gw2")
    await graceful.disconnect(ALICE, "laptop")
    clock.advance(1)
    last_disconnect = ms(clock)
    await graceful.disconnect(ALICE, "phone")
    assert events() == []

    # The grace runs from the last device's disconnect, not the first one's.
    clock.advance(GRACE - 0.001)
    assert await sweeper.sweep_once() == 0
    clock.advance(0.001)
    assert await sweeper.sweep_once() == 1
    [(_, event)] = events()
    assert event.presence.status == OFFLINE
    assert event.presence.last_active_at.ToMilliseconds() == last_disconnect


@pytest.mark.asyncio
async def test_the_grace_keeps_the_chosen_status(
    graceful: PresenceHandler, sweeper: Sweeper, clock: FakeClock, events
) -> None:
    await graceful.connect(ALICE, "c1", "gw1")
    await graceful.set_status(ALICE, BUSY)
    events()

    held = await graceful.disconnect(ALICE, "c1")
    assert (held.status, held.device_count) == (BUSY, 0)
    await graceful.connect(ALICE, "c1", "gw1")
    assert events() == []

    await graceful.disconnect(ALICE, "c1")
    clock.advance(GRACE)
    assert await sweeper.sweep_once() == 1
    assert [(e.presence.status, e.presence.chosen_status) for _, e in events()] == [(OFFLINE, BUSY)]
    again = await graceful.connect(ALICE, "c1", "gw1")
    assert again.status == BUSY
    assert [e.presence.status for _, e in events()] == [BUSY]


@pytest.mark.asyncio
async def test_set_status_within_the_grace(
    graceful: PresenceHandler, sweeper: Sweeper, clock: FakeClock, events
) -> None:
    await graceful.connect(ALICE, "c1", "gw1")
    events()
    await graceful.disconnect(ALICE, "c1")
    clock.advance(3)
    set_at = ms(clock)

    away = await graceful.set_status(ALICE, AWAY)
    assert (away.status, away.device_count) == (AWAY, 0)
    [(_, event)] = events()
    assert event.presence.status == AWAY

    # The grace still ends when it was due; last seen at the SetStatus.
    clock.advance(GRACE - 3)
    assert await sweeper.sweep_once() == 1
    [(_, offline)] = events()
    assert offline.presence.status == OFFLINE
    assert offline.presence.last_active_at.ToMilliseconds() == set_at


@pytest.mark.asyncio
async def test_a_crashed_gateways_connections_skip_the_grace(
    graceful: PresenceHandler, sweeper: Sweeper, clock: FakeClock, events
) -> None:
    connected_at = ms(clock)
    await graceful.connect(ALICE, "c1", "gw-crashed")
    events()
    ended = metric("confab_presence_offline_grace_ended_total")

    clock.advance(61)
    assert await sweeper.sweep_once() == 1
    [(_, event)] = events()
    assert event.presence.status == OFFLINE
    assert event.presence.last_active_at.ToMilliseconds() == connected_at
    assert metric("confab_presence_offline_grace_ended_total") == ended


@pytest.mark.asyncio
async def test_connect_after_the_grace_but_before_the_sweep_publishes_nothing(
    graceful: PresenceHandler, sweeper: Sweeper, clock: FakeClock, redis: Redis, events
) -> None:
    await graceful.connect(ALICE, "c1", "gw1")
    events()
    await graceful.disconnect(ALICE, "c1")
    clock.advance(GRACE + 2)
    assert await status_of(graceful) == (OFFLINE, 0)

    back = await graceful.connect(ALICE, "c1", "gw1")
    # Consumers never heard of an offline, so there is no online to tell either.
    assert (back.status, back.device_count) == (ONLINE, 1)
    assert events() == []
    assert await sweeper.sweep_once() == 0
    assert await redis.hget("presence:stats", "present_users") == "1"
    assert await redis.hget("presence:t1:alice", "grace_until") is None


@pytest.mark.asyncio
async def test_the_grace_spans_pods(redis: Redis, make_handler, clock: FakeClock) -> None:
    queue_a, queue_b = EventQueue(100, clock), EventQueue(100, clock)
    pod_a = make_handler(PresenceDb(redis), queue_a, grace=GRACE)
    pod_b = make_handler(PresenceDb(redis), queue_b, grace=GRACE)
    await pod_a.connect(ALICE, "c1", "gw-a")
    queue_a.take(10)

    await pod_a.disconnect(ALICE, "c1")
    clock.advance(2)
    await pod_b.connect(ALICE, "c2", "gw-b")

    assert (len(queue_a), len(queue_b)) == (0, 0)


@pytest.mark.asyncio
async def test_concurrent_devices_with_the_grace_settle_right(
    graceful: PresenceHandler, sweeper: Sweeper, clock: FakeClock, redis: Redis, events
) -> None:
    rng = random.Random(11)
    devices = [f"d{i}" for i in range(10)]
    for _ in range(12):
        ops = [
            graceful.connect(ALICE, d, "gw")
            if rng.random() < 0.5
            else graceful.disconnect(ALICE, d)
            for d in devices
        ]
        rng.shuffle(ops)
        await asyncio.gather(*ops)
        clock.advance(1)
        status, count = await status_of(graceful)
        # Within a second of any disconnect: never offline mid-storm.
        assert status == ONLINE, count

    await asyncio.gather(*(graceful.disconnect(ALICE, d) for d in devices))
    # Online from the first connect, offline after the grace: nothing between.
    assert [e.presence.status for _, e in events()] == [ONLINE]
    clock.advance(GRACE)
    assert await sweeper.sweep_once() == 1
    assert [e.presence.status for _, e in events()] == [OFFLINE]
    assert await redis.hmget("presence:stats", ["connections", "present_users"]) == ["0", "0"]


@pytest.mark.asyncio
async def test_grace_started_metric(graceful: PresenceHandler) -> None:
    started = metric("confab_presence_offline_grace_started_total")
    await graceful.connect(ALICE, "c1", "gw1")
    await graceful.connect(ALICE, "c2", "gw1")
    await graceful.disconnect(ALICE, "c1")
    await graceful.disconnect(ALICE, "c2")
    await graceful.disconnect(ALICE, "c2")  # already gone: nothing more

    assert metric("confab_presence_offline_grace_started_total") == started + 1
