"""Chosen status (away, busy, automatic), custom status with expiry, last active time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from confab.presence.v1 import presence_pb2 as pb
from confab_core.clock import FakeClock
from confab_core.errors import InvalidArgument
from confab_core.identity import ROLE_AGENT, Caller
from confab_core.kafka import PRESENCE_SEQ_HEADER
from confab_core.servicetoken import GATEWAY
from presence import convert
from presence.events import PendingEvent
from presence.handlers.presence import HeartbeatEntry, PresenceHandler
from presence.sweeper import Sweeper

# Staff read the whole tenant: these tests are about presence, not visibility.
STAFF = frozenset({ROLE_AGENT})

ONLINE = pb.PRESENCE_STATUS_ONLINE
AWAY = pb.PRESENCE_STATUS_AWAY
BUSY = pb.PRESENCE_STATUS_BUSY
OFFLINE = pb.PRESENCE_STATUS_OFFLINE
UNSPECIFIED = pb.PRESENCE_STATUS_UNSPECIFIED

ALICE = Caller(tenant_id="t1", user_id="alice", roles=STAFF)
BOB = Caller(tenant_id="t1", user_id="bob", roles=STAFF)


def ms(clock: FakeClock, plus_seconds: float = 0) -> int:
    return int((clock.now() + timedelta(seconds=plus_seconds)).timestamp() * 1000)


def seq(pending: PendingEvent) -> int:
    return int(dict(pending.headers)[PRESENCE_SEQ_HEADER])


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def read(handler: PresenceHandler, user_id: str = "alice") -> pb.UserPresence:
    [state] = await handler.get(BOB, [user_id])
    return convert.presence(state)


@pytest.mark.asyncio
async def test_away_busy_and_automatic_publish_each_change_exactly_once(
    handler: PresenceHandler, clock: FakeClock, events
) -> None:
    await handler.connect(ALICE, "c1", "gw1")
    [(first, _)] = events()

    away = await handler.set_status(ALICE, AWAY)
    assert (away.status, away.chosen_status, away.device_count) == (AWAY, AWAY, 1)
    [(p1, e1)] = events()
    assert (e1.presence.status, e1.presence.chosen_status) == (AWAY, AWAY)
    assert p1.key == b"t1:alice"

    again = await handler.set_status(ALICE, AWAY)
    assert again.status == AWAY
    assert events() == []

    await handler.set_status(ALICE, BUSY)
    [(p2, e2)] = events()
    assert (e2.presence.status, e2.presence.chosen_status) == (BUSY, BUSY)

    auto = await handler.set_status(ALICE, ONLINE)
    assert (auto.status, auto.chosen_status) == (ONLINE, ONLINE)
    [(p3, e3)] = events()
    assert (e3.presence.status, e3.presence.chosen_status) == (ONLINE, ONLINE)
    await handler.set_status(ALICE, ONLINE)
    assert events() == []

    # One seq per published change, none skipped, none repeated.
    assert [seq(p) for p in (first, p1, p2, p3)] == [1, 2, 3, 4]
    got = await read(handler)
    assert (got.status, got.chosen_status) == (ONLINE, ONLINE)


@pytest.mark.asyncio
async def test_chosen_status_shows_only_while_connected_and_survives_offline(
    handler: PresenceHandler, events
) -> None:
    offline = await handler.set_status(ALICE, BUSY)
    assert (offline.status, offline.chosen_status, offline.device_count) == (OFFLINE, BUSY, 0)
    # The choice itself is news (for the user's own clients), shown as offline.
    [(_, chosen)] = events()
    assert (chosen.presence.status, chosen.presence.chosen_status) == (OFFLINE, BUSY)

    connected = await handler.connect(ALICE, "c1", "gw1")
    assert connected.status == BUSY
    assert [e.presence.status for _, e in events()] == [BUSY]

    gone = await handler.disconnect(ALICE, "c1")
    assert (gone.status, gone.chosen_status) == (OFFLINE, BUSY)
    assert [e.presence.status for _, e in events()] == [OFFLINE]

    back = await handler.connect(ALICE, "c2", "gw1")
    assert back.status == BUSY
    assert [e.presence.status for _, e in events()] == [BUSY]

    got = await read(handler)
    assert (got.status, got.chosen_status, got.device_count) == (BUSY, BUSY, 1)


@pytest.mark.asyncio
async def test_busy_holds_while_any_device_is_connected(handler: PresenceHandler, events) -> None:
    await handler.connect(ALICE, "phone", "gw1")
    await handler.connect(ALICE, "laptop", "gw2")
    await handler.set_status(ALICE, BUSY)
    events()

    one_left = await handler.disconnect(ALICE, "phone")
    assert (one_left.status, one_left.device_count) == (BUSY, 1)
    assert events() == []
    third = await handler.connect(ALICE, "tablet", "gw1")
    assert (third.status, third.device_count) == (BUSY, 2)
    assert events() == []


@pytest.mark.asyncio
async def test_status_changes_among_present_do_not_move_the_online_count(
    handler: PresenceHandler, redis: Redis
) -> None:
    await handler.connect(ALICE, "c1", "gw1")
    for status in (AWAY, BUSY, AWAY, ONLINE, BUSY):
        await handler.set_status(ALICE, status)
    assert await redis.hget("presence:stats", "present_users") == "1"

    await handler.disconnect(ALICE, "c1")
    await handler.set_status(ALICE, AWAY)
    assert await redis.hget("presence:stats", "present_users") == "0"


@pytest.mark.asyncio
async def test_custom_status_set_kept_and_cleared(handler: PresenceHandler, events) -> None:
    await handler.connect(ALICE, "c1", "gw1")
    events()

    state = await handler.set_status(ALICE, ONLINE, "  In a meeting  ")
    assert (state.custom_status, state.custom_status_expires_ms) == ("In a meeting", None)
    [(_, set_event)] = events()
    assert set_event.presence.custom_status == "In a meeting"
    assert not set_event.presence.HasField("custom_status_expires_at")

    # None keeps the text: only the chosen status moves.
    kept = await handler.set_status(ALICE, AWAY)
    assert (kept.status, kept.custom_status) == (AWAY, "In a meeting")
    [(_, away_event)] = events()
    assert away_event.presence.custom_status == "In a meeting"

    same = await handler.set_status(ALICE, AWAY, "In a meeting")
    assert same.custom_status == "In a meeting"
    assert events() == []

    cleared = await handler.set_status(ALICE, AWAY, "")
    assert cleared.custom_status == ""
    [(_, cleared_event)] = events()
    assert cleared_event.presence.custom_status == ""

    # Whitespace only is no text: clears (already clear: no event).
    await handler.set_status(ALICE, AWAY, "   ")
    assert events() == []
    assert (await read(handler)).custom_status == ""


@pytest.mark.asyncio
async def test_custom_status_expiry_hides_before_any_sweep_then_the_sweep_publishes(
    handler: PresenceHandler, sweeper: Sweeper, clock: FakeClock, redis: Redis, events
) -> None:
    await handler.connect(ALICE, "c1", "gw1")
    expires = ms(clock, 30)
    state = await handler.set_status(ALICE, ONLINE, "Lunch", expires)
    assert (state.custom_status, state.custom_status_expires_ms) == ("Lunch", expires)
    [(_, set_event)] = events()[-1:]
    assert set_event.presence.custom_status_expires_at.ToMilliseconds() == expires

    clock.advance(29.999)
    shown = await read(handler)
    assert shown.custom_status == "Lunch"
    assert shown.custom_status_expires_at.ToMilliseconds() == expires
    assert await sweeper.sweep_once() == 0

    clock.advance(0.001)
    hidden = await read(handler)
    assert hidden.custom_status == ""
    assert not hidden.HasField("custom_status_expires_at")
    assert hidden.status == ONLINE
    assert events() == []  # reading changes nothing

    expired_before = metric("confab_presence_custom_status_expired_total")
    assert await sweeper.sweep_once() == 1
    [(pending, swept)] = events()
    assert (swept.presence.status, swept.presence.custom_status) == (ONLINE, "")
    assert not swept.presence.HasField("custom_status_expires_at")
    assert seq(pending) == 3
    assert metric("confab_presence_custom_status_expired_total") == expired_before + 1
    assert await redis.hmget("presence:t1:alice", ["custom", "custom_exp"]) == [None, None]

    assert await sweeper.sweep_once() == 0
    assert events() == []
    # The connection keeps the user on the sweeper's index, at its own expiry.
    assert await redis.zscore("presence:expiry", "t1\x1falice") == ms(clock, 30)


@pytest.mark.asyncio
async def test_custom_status_of_an_offline_user_expires_too(
    handler: PresenceHandler, sweeper: Sweeper, clock: FakeClock, redis: Redis, events
) -> None:
    await handler.set_status(ALICE, ONLINE, "On holiday", ms(clock, 3600))
    [(_, set_event)] = events()
    assert (set_event.presence.status, set_event.presence.custom_status) == (
        OFFLINE,
        "On holiday",
    )

    clock.advance(3600)
    assert await sweeper.sweep_once() == 1
    [(_, swept)] = events()
    assert (swept.presence.status, swept.presence.custom_status) == (OFFLINE, "")
    # Nothing left to wait for: off the index.
    assert await redis.zscore("presence:expiry", "t1\x1falice") is None


@pytest.mark.asyncio
async def test_an_expiry_noticed_by_another_call_is_published_once(
    handler: PresenceHandler, sweeper: Sweeper, clock: FakeClock, events
) -> None:
    await handler.connect(ALICE, "c1", "gw1")
    await handler.set_status(ALICE, ONLINE, "Brb", ms(clock, 10))
    events()
    clock.advance(11)

    # The expiry and the new choice land in one change, one event.
    state = await handler.set_status(ALICE, AWAY)
    assert (state.status, state.custom_status) == (AWAY, "")
    [(_, event)] = events()
    assert (event.presence.status, event.presence.custom_status) == (AWAY, "")

    assert await sweeper.sweep_once() == 0
    assert events() == []


@pytest.mark.asyncio
async def test_a_new_custom_status_replaces_the_expiry(
    handler: PresenceHandler, sweeper: Sweeper, clock: FakeClock, events
) -> None:
    await handler.connect(ALICE, "c1", "gw1")
    await handler.set_status(ALICE, ONLINE, "Brb", ms(clock, 10))
    # No expiry given: kept until changed.
    await handler.set_status(ALICE, ONLINE, "Working from home")
    events()

    clock.advance(30)
    assert await sweeper.sweep_once() == 0
    got = await read(handler)
    assert got.custom_status == "Working from home"
    assert not got.HasField("custom_status_expires_at")


@pytest.mark.asyncio
async def test_connection_and_custom_status_deadlines_share_the_sweep_index(
    handler: PresenceHandler, sweeper: Sweeper, clock: FakeClock, events
) -> None:
    await handler.connect(ALICE, "c1", "gw-crashing")
    clock.advance(5)
    set_at = ms(clock)
    await handler.set_status(ALICE, BUSY, "Focus", ms(clock, 20))
    await handler.set_status(BOB, ONLINE, "Later", ms(clock, 500))
    events()

    clock.advance(20)
    assert await sweeper.sweep_once() == 1
    [(_, first)] = events()
    assert (first.presence.user_id, first.presence.status, first.presence.custom_status) == (
        "alice",
        BUSY,
        "",
    )

    clock.advance(36)  # the connection's TTL: its gateway never beat
    assert await sweeper.sweep_once() == 1
    [(_, second)] = events()
    assert (second.presence.user_id, second.presence.status) == ("alice", OFFLINE)
    # Last active: the SetStatus, a later sign of life than the connect.
    assert second.presence.last_active_at.ToMilliseconds() == set_at

    clock.advance(500)
    assert await sweeper.sweep_once() == 1
    [(_, third)] = events()
    assert (third.presence.user_id, third.presence.custom_status) == ("bob", "")


@pytest.mark.asyncio
async def test_last_active_moves_on_connect_disconnect_set_status_and_heartbeat(
    handler: PresenceHandler, clock: FakeClock
) -> None:
    await handler.connect(ALICE, "phone", "gw1")
    assert (await read(handler)).last_active_at.ToMilliseconds() == ms(clock)

    clock.advance(5)
    await handler.connect(ALICE, "laptop", "gw1")
    assert (await read(handler)).last_active_at.ToMilliseconds() == ms(clock)

    clock.advance(5)
    state = await handler.disconnect(ALICE, "phone")
    assert state.last_active_ms == ms(clock)

    clock.advance(5)
    state = await handler.set_status(ALICE, AWAY)
    assert state.last_active_ms == ms(clock)
    set_at = ms(clock)

    # Heartbeats: at most one write of last_active_at per minute per user.
    beat = [HeartbeatEntry("t1", "alice", "laptop")]
    clock.advance(20)
    await handler.heartbeat(GATEWAY, "gw1", beat)
    assert (await read(handler)).last_active_at.ToMilliseconds() == set_at
    clock.advance(39.999)
    await handler.heartbeat(GATEWAY, "gw1", beat)
    assert (await read(handler)).last_active_at.ToMilliseconds() == set_at
    clock.advance(0.001)
    await handler.heartbeat(GATEWAY, "gw1", beat)
    moved = ms(clock)
    assert (await read(handler)).last_active_at.ToMilliseconds() == moved
    clock.advance(30)
    await handler.heartbeat(GATEWAY, "gw1", beat)
    assert (await read(handler)).last_active_at.ToMilliseconds() == moved


@pytest.mark.asyncio
async def test_set_status_validation_has_stable_codes_and_writes_nothing(
    handler: PresenceHandler, clock: FakeClock, redis: Redis, events
) -> None:
    async def code(*args: object) -> str:
        with pytest.raises(InvalidArgument) as exc:
            await handler.set_status(*args)  # type: ignore[arg-type]
        return exc.value.code

    assert await code(ALICE, OFFLINE) == "invalid_status"
    assert await code(ALICE, UNSPECIFIED) == "invalid_status"
    assert await code(ALICE, 99) == "invalid_status"
    assert await code(ALICE, AWAY, "x" * 101) == "custom_status_too_long"
    assert await code(ALICE, AWAY, "line\nbreak") == "invalid_custom_status"
    assert await code(ALICE, AWAY, "Lunch", ms(clock)) == "invalid_expiry"
    assert await code(ALICE, AWAY, "Lunch", ms(clock, -60)) == "invalid_expiry"
    assert await code(ALICE, AWAY, None, ms(clock, 60)) == "invalid_expiry"
    assert await code(ALICE, AWAY, "", ms(clock, 60)) == "invalid_expiry"
    assert await code(ALICE, AWAY, "Lunch", 10**18) == "invalid_expiry"
    assert await code(Caller(tenant_id="t1", user_id="", roles=STAFF), AWAY) == "missing_user_id"
    assert (
        await code(Caller(tenant_id="", user_id="alice", roles=STAFF), AWAY) == "missing_tenant_id"
    )
    assert await redis.keys("*") == []
    assert events() == []

    # The limits themselves are fine; length counts characters, not bytes.
    state = await handler.set_status(ALICE, AWAY, "é" * 100, ms(clock, 0.001))
    assert state.custom_status == "é" * 100
    state = await handler.set_status(ALICE, AWAY, "🌴 " + "x" * 98)
    assert len(state.custom_status) == 100


@pytest.mark.asyncio
async def test_set_status_is_per_tenant(handler: PresenceHandler, clock: FakeClock, events) -> None:
    t2_alice = Caller(tenant_id="t2", user_id="alice", roles=STAFF)
    await handler.connect(ALICE, "c1", "gw1")
    await handler.connect(t2_alice, "c1", "gw1")
    events()

    await handler.set_status(ALICE, BUSY, "t1 only", ms(clock, 60))

    [in_t2] = await handler.get(Caller(tenant_id="t2", user_id="bob", roles=STAFF), ["alice"])
    assert (in_t2.status, in_t2.chosen_status, in_t2.custom_status) == (ONLINE, ONLINE, "")
    [(pending, event)] = events()
    assert (event.tenant_id, pending.key) == ("t1", b"t1:alice")

    # The other tenant's expiry deadline is its own too.
    await handler.set_status(t2_alice, AWAY)
    [in_t1] = await handler.get(BOB, ["alice"])
    assert (in_t1.status, in_t1.custom_status) == (BUSY, "t1 only")
    assert [(e.tenant_id, e.presence.status) for _, e in events()] == [("t2", AWAY)]


@pytest.mark.asyncio
async def test_status_metrics(handler: PresenceHandler) -> None:
    before_busy = metric("confab_presence_status_set_total", status="busy")
    before_changes = metric("confab_presence_changes_total", status="busy")
    await handler.connect(ALICE, "c1", "gw1")
    await handler.set_status(ALICE, BUSY)
    await handler.set_status(ALICE, BUSY)

    assert metric("confab_presence_status_set_total", status="busy") == before_busy + 2
    assert metric("confab_presence_changes_total", status="busy") == before_changes + 1


@pytest.mark.asyncio
async def test_spans_carry_confab_attributes(
    db,
    queue,
    make_handler,
    real_memberships,
    conversation_addr,
    monkeypatch: pytest.MonkeyPatch,
    kit: Any,
) -> None:
    handler = make_handler(db, queue, members=real_memberships)
    conv_id = await kit.create_group(conversation_addr, ALICE, [])
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(
        "presence.handlers.presence.tracer", lambda: provider.get_tracer("presence-test")
    )

    await handler.connect(ALICE, "c1", "gw1")
    await handler.set_status(ALICE, AWAY, "Secret plans")
    await handler.set_typing(ALICE, conv_id, True)
    await handler.set_typing(ALICE, conv_id, True)

    spans = {s.name: s for s in exporter.get_finished_spans()}
    status = dict(spans["confab.presence.set_status"].attributes or {})
    assert status["confab.tenant_id"] == "t1"
    assert status["confab.user_id"] == "alice"
    assert status["confab.presence.chosen_status"] == "away"
    assert status["confab.presence.custom_status"] == "set"
    assert status["confab.presence.changed"] is True
    # The text itself is the user's, never in traces.
    assert "Secret plans" not in str(status)

    typing = [s for s in exporter.get_finished_spans() if s.name == "confab.presence.set_typing"]
    assert [dict(s.attributes or {})["confab.presence.throttled"] for s in typing] == [
        False,
        True,
    ]
    assert dict(typing[0].attributes or {})["confab.conversation_id"] == conv_id
