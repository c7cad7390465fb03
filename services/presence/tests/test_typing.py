"""Typing: published with an expiry, throttled, never stored."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from confab.conversation.v1 import conversation_pb2 as cpb
from confab.presence.v1 import presence_pb2 as pb
from confab_core import redisx
from confab_core.clock import FakeClock
from confab_core.errors import InvalidArgument, NotFound, PermissionDenied
from confab_core.identity import Caller
from confab_core.kafka import EVENT_TYPE_HEADER, PRESENCE_EVENT_TYPE, PRESENCE_SEQ_HEADER
from confab_devservers import free_port
from presence.events import EventQueue
from presence.handlers.presence import PresenceHandler
from presence.storage.presence import PresenceDb

ALICE = Caller(tenant_id="t1", user_id="alice")
TTL_MS = 6_000  # the conftest's typing TTL, the service's default


@pytest_asyncio.fixture
async def convs(conversation_addr: str, kit: Any) -> dict[str, str]:
    """Real conversations by test name: alice and bob are in each of t1's; the
    other alice is in t2's "t2:conv-1"."""
    out = {
        name: await kit.create_group(conversation_addr, ALICE, ["bob"])
        for name in ("conv-1", "conv-2", "conv-m")
    }
    t2_alice = Caller(tenant_id="t2", user_id="alice")
    out["t2:conv-1"] = await kit.create_group(conversation_addr, t2_alice, [])
    return out


@pytest.fixture
def handler(db, queue: EventQueue, make_handler, real_memberships) -> PresenceHandler:
    """Asks the real conversation service who may type where."""
    return make_handler(db, queue, members=real_memberships)


def ms(clock: FakeClock) -> int:
    return int(clock.now().timestamp() * 1000)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def snapshot(redis: Redis) -> dict[str, Any]:
    """Every key with its whole value."""
    out: dict[str, Any] = {}
    for key in sorted(await redis.keys("*")):
        kind = await redis.type(key)
        if kind == "hash":
            out[key] = await redis.hgetall(key)
        elif kind == "zset":
            out[key] = await redis.zrange(key, 0, -1, withscores=True)
        else:
            out[key] = (kind, await redis.dump(key))
    return out


@pytest.mark.asyncio
async def test_typing_is_published_with_its_expiry_and_never_stored(
    convs, handler: PresenceHandler, clock: FakeClock, redis: Redis, events
) -> None:
    await handler.connect(ALICE, "c1", "gw1")
    await handler.set_status(ALICE, pb.PRESENCE_STATUS_BUSY, "Deep work")
    events()
    before = await snapshot(redis)
    assert before  # presence itself is stored

    expires = await handler.set_typing(ALICE, convs["conv-1"], True)
    stopped = await handler.set_typing(ALICE, convs["conv-1"], False)

    assert expires == ms(clock) + TTL_MS
    assert stopped == ms(clock) + TTL_MS
    assert await snapshot(redis) == before
    assert await redis.keys("*typing*") == []
    # Queued start and stop of one conversation coalesce: the stop is what counts.
    [(pending, event)] = events()
    assert pending.key == b"t1:alice"
    assert event.event_id
    assert event.tenant_id == "t1"
    assert event.WhichOneof("payload") == "typing"
    assert (event.typing.user_id, event.typing.conversation_id, event.typing.typing) == (
        "alice",
        convs["conv-1"],
        False,
    )
    assert event.typing.expires_at.ToMilliseconds() == stopped
    headers = dict(pending.headers)
    assert headers[EVENT_TYPE_HEADER] == PRESENCE_EVENT_TYPE
    assert PRESENCE_SEQ_HEADER not in headers  # not part of the presence state's order


@pytest.mark.asyncio
async def test_typing_needs_no_store_at_all(
    convs, queue: EventQueue, make_handler, real_memberships, clock
) -> None:
    dead = redisx.connect(f"redis://127.0.0.1:{free_port()}/0")
    try:
        handler = make_handler(PresenceDb(dead), queue, members=real_memberships)
        expires = await handler.set_typing(ALICE, convs["conv-1"], True)
    finally:
        await dead.aclose()
    assert expires == ms(clock) + TTL_MS
    assert len(queue) == 1


@pytest.mark.asyncio
async def test_typing_never_replaces_a_queued_presence_event(
    convs, handler: PresenceHandler, events
) -> None:
    await handler.connect(ALICE, "c1", "gw1")
    await handler.set_typing(ALICE, convs["conv-1"], True)
    await handler.set_typing(ALICE, convs["conv-2"], True)

    kinds = [(e.WhichOneof("payload"), e.typing.conversation_id) for _, e in events()]
    assert kinds == [("presence", ""), ("typing", convs["conv-1"]), ("typing", convs["conv-2"])]


@pytest.mark.asyncio
async def test_a_repeated_start_within_two_seconds_is_not_published_again(
    convs, handler: PresenceHandler, clock: FakeClock, events
) -> None:
    throttled = metric("confab_presence_typing_throttled_total")
    first = await handler.set_typing(ALICE, convs["conv-1"], True)
    assert len(events()) == 1

    clock.advance(1.999)
    assert await handler.set_typing(ALICE, convs["conv-1"], True) == first
    assert events() == []
    assert metric("confab_presence_typing_throttled_total") == throttled + 1

    clock.advance(0.001)
    renewed = await handler.set_typing(ALICE, convs["conv-1"], True)
    assert renewed == ms(clock) + TTL_MS > first
    [(_, event)] = events()
    assert event.typing.expires_at.ToMilliseconds() == renewed


@pytest.mark.asyncio
async def test_a_stop_is_published_at_once_and_a_new_start_after_it(
    convs, handler: PresenceHandler, clock: FakeClock, events
) -> None:
    await handler.set_typing(ALICE, convs["conv-1"], True)
    events()

    clock.advance(0.5)
    await handler.set_typing(ALICE, convs["conv-1"], False)
    assert [e.typing.typing for _, e in events()] == [False]
    # The same stop again is throttled like a start...
    stop = await handler.set_typing(ALICE, convs["conv-1"], False)
    assert events() == []
    clock.advance(0.5)
    assert await handler.set_typing(ALICE, convs["conv-1"], False) == stop
    assert events() == []
    # ...but a change of state never is.
    await handler.set_typing(ALICE, convs["conv-1"], True)
    assert [e.typing.typing for _, e in events()] == [True]


@pytest.mark.asyncio
async def test_the_throttle_is_per_tenant_user_and_conversation(
    convs, handler: PresenceHandler, events
) -> None:
    await handler.set_typing(ALICE, convs["conv-1"], True)
    await handler.set_typing(ALICE, convs["conv-2"], True)
    await handler.set_typing(Caller(tenant_id="t1", user_id="bob"), convs["conv-1"], True)
    await handler.set_typing(Caller(tenant_id="t2", user_id="alice"), convs["t2:conv-1"], True)

    published = [(p.key, e.tenant_id, e.typing.conversation_id) for p, e in events()]
    assert published == [
        (b"t1:alice", "t1", convs["conv-1"]),
        (b"t1:alice", "t1", convs["conv-2"]),
        (b"t1:bob", "t1", convs["conv-1"]),
        (b"t2:alice", "t2", convs["t2:conv-1"]),
    ]


@pytest.mark.asyncio
async def test_a_typing_event_that_expired_in_the_queue_is_not_sent(
    convs, handler: PresenceHandler, clock: FakeClock, queue: EventQueue
) -> None:
    await handler.connect(ALICE, "c1", "gw1")
    await handler.set_typing(ALICE, convs["conv-1"], True)
    dropped = metric("confab_presence_typing_expired_unsent_total")

    clock.advance(6)  # as if Kafka had been down meanwhile
    [presence] = queue.take(10)
    assert presence.slot == ("presence", "t1", "alice")
    assert metric("confab_presence_typing_expired_unsent_total") == dropped + 1


@pytest.mark.asyncio
async def test_set_typing_validation(handler: PresenceHandler, events) -> None:
    async def code(caller: Caller, conversation_id: str) -> str:
        with pytest.raises(InvalidArgument) as exc:
            await handler.set_typing(caller, conversation_id, True)
        return exc.value.code

    assert await code(ALICE, "") == "missing_conversation_id"
    assert await code(ALICE, "c" * 129) == "invalid_conversation_id"
    assert await code(ALICE, "conv\x00") == "invalid_conversation_id"
    assert await code(Caller(tenant_id="t1", user_id=""), "conv-1") == "missing_user_id"
    assert await code(Caller(tenant_id="", user_id="alice"), "conv-1") == "missing_tenant_id"
    assert events() == []

    # Valid, so it reaches the membership check: no such conversation.
    with pytest.raises(NotFound):
        await handler.set_typing(ALICE, "c" * 128, True)
    assert events() == []


@pytest.mark.asyncio
async def test_typing_metrics(convs, handler: PresenceHandler) -> None:
    starts = metric("confab_presence_typing_events_total", state="start")
    stops = metric("confab_presence_typing_events_total", state="stop")
    await handler.set_typing(ALICE, convs["conv-m"], True)
    await handler.set_typing(ALICE, convs["conv-m"], True)
    await handler.set_typing(ALICE, convs["conv-m"], False)

    assert metric("confab_presence_typing_events_total", state="start") == starts + 1
    assert metric("confab_presence_typing_events_total", state="stop") == stops + 1


@pytest.mark.asyncio
async def test_only_members_may_type(
    handler: PresenceHandler, convs, conversation_addr: str, clock: FakeClock, events
) -> None:
    mallory = Caller(tenant_id="t1", user_id="mallory")
    # A private group: to a non-member it does not exist.
    with pytest.raises(NotFound) as hidden:
        await handler.set_typing(mallory, convs["conv-1"], True)
    assert hidden.value.code == "conversation_not_found"
    # Another tenant's conversation is the same 404.
    with pytest.raises(NotFound):
        await handler.set_typing(ALICE, convs["t2:conv-1"], True)
    assert events() == []


@pytest.mark.asyncio
async def test_a_visible_conversation_still_needs_membership(
    handler: PresenceHandler, conversation_addr: str, events, kit: Any
) -> None:
    admin = Caller(tenant_id="t1", user_id="root", roles=frozenset({"tenant_admin"}))
    channel_id = await kit.create_group(
        conversation_addr, admin, [], kind=cpb.CONVERSATION_KIND_PUBLIC_CHANNEL
    )
    with pytest.raises(PermissionDenied) as refused:
        await handler.set_typing(ALICE, channel_id, True)
    assert refused.value.code == "not_a_member"
    assert events() == []
