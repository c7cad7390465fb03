"""Pure logic: key layout, input checks, reads, the typing throttle, the event queue
and the publisher's retries."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from aiokafka.errors import KafkaConnectionError
from prometheus_client import REGISTRY

from confab.presence.v1 import presence_pb2 as pb
from confab_core.clock import FakeClock
from confab_core.errors import InvalidArgument
from confab_core.kafka import PRESENCE_EVENTS_TOPIC
from presence import convert
from presence.events import EventQueue, PendingEvent, Publisher
from presence.handlers.validate import custom_status_text, require_id
from presence.storage import keys
from presence.storage.presence import PresenceState, effective
from presence.typing import TypingThrottle


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def ev(key: str, value: str = "", tenant: str = "t") -> PendingEvent:
    return PendingEvent(
        slot=("presence", tenant, key), key=key.encode(), value=(value or key).encode(), headers=()
    )


def test_keys_carry_the_tenant_and_cannot_collide() -> None:
    assert keys.state_key("t1", "alice") == "presence:t1:alice"
    assert keys.conns_key("t1", "alice") == "presence:t1:alice:conns"
    assert keys.state_key("a:b", "c") != keys.state_key("a", "b:c")
    assert keys.conns_key("a", "b:conns") != keys.conns_key("a", "b")
    assert keys.state_key("a%3Ab", "c") != keys.state_key("a:b", "c")
    assert keys.state_key("expiry", "x") != keys.INDEX_KEY


def test_index_member_round_trips() -> None:
    member = keys.index_member("t:1", "u:1")
    assert keys.parse_index_member(member) == ("t:1", "u:1")
    assert keys.parse_index_member("no-separator") is None
    assert keys.parse_index_member("\x1fuser") is None
    assert keys.parse_index_member("a\x1fb\x1fc") is None


@pytest.mark.parametrize("value", ["", "x" * 129, "a\x1fb", "tab\there", "del\x7f"])
def test_require_id_rejects(value: str) -> None:
    with pytest.raises(InvalidArgument):
        require_id("user_id", value)


def test_require_id_accepts_ordinary_ids() -> None:
    for value in ["alice", "auth0|123", "google:42", "x" * 128, "élodie"]:
        assert require_id("user_id", value) == value


def test_convert_leaves_never_seen_without_timestamp() -> None:
    never = convert.presence(PresenceState("u", pb.PRESENCE_STATUS_OFFLINE, 0, None))
    assert not never.HasField("last_active_at")
    seen = convert.presence(PresenceState("u", pb.PRESENCE_STATUS_ONLINE, 2, 1_500))
    assert seen.last_active_at.ToMilliseconds() == 1_500
    assert (seen.status, seen.device_count) == (pb.PRESENCE_STATUS_ONLINE, 2)


def test_queue_keeps_only_the_newest_event_per_user() -> None:
    queue = EventQueue(10)
    before = metric("confab_presence_events_coalesced_total")
    queue.put(ev("t:a", "a1"))
    queue.put(ev("t:b", "b1"))
    queue.put(ev("t:a", "a2"))

    assert [e.value for e in queue.take(10)] == [b"b1", b"a2"]
    assert metric("confab_presence_events_coalesced_total") == before + 1


def test_queue_never_merges_users_whose_kafka_keys_look_alike() -> None:
    queue = EventQueue(10)
    queue.put(PendingEvent(slot=("presence", "a:b", "c"), key=b"a:b:c", value=b"1", headers=()))
    queue.put(PendingEvent(slot=("presence", "a", "b:c"), key=b"a:b:c", value=b"2", headers=()))

    assert len(queue) == 2


def test_full_queue_drops_the_oldest_and_counts_it() -> None:
    queue = EventQueue(3)
    before = metric("confab_presence_events_dropped_total")
    for key in ["a", "b", "c", "d", "e"]:
        queue.put(ev(key))

    assert [e.key for e in queue.take(10)] == [b"c", b"d", b"e"]
    assert metric("confab_presence_events_dropped_total") == before + 2


def test_requeue_goes_first_unless_superseded() -> None:
    queue = EventQueue(10)
    for key in ["a", "b", "c"]:
        queue.put(ev(key, key + "1"))
    batch = queue.take(2)
    queue.put(ev("a", "a2"))
    queue.put(ev("d", "d1"))

    queue.requeue(batch)

    assert [e.value for e in queue.take(10)] == [b"b1", b"c1", b"a2", b"d1"]


def test_requeue_into_a_full_queue_keeps_the_newest() -> None:
    queue = EventQueue(2)
    queue.put(ev("a"))
    queue.put(ev("b"))
    batch = queue.take(2)
    queue.put(ev("c"))
    queue.put(ev("d"))

    queue.requeue(batch)

    assert [e.key for e in queue.take(10)] == [b"c", b"d"]


class FlakyProducer:
    """Stands in for Kafka to drive the publisher's failure paths."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[tuple[str, bytes]] = []
        self.resets = 0

    async def send_many(
        self, topic: str, records: Sequence[tuple[bytes, bytes, Sequence[tuple[str, bytes]]]]
    ) -> None:
        if self.failures:
            self.failures -= 1
            raise KafkaConnectionError("broker down")
        self.sent.extend((topic, key) for key, _, _ in records)

    async def reset(self) -> None:
        self.resets += 1


@pytest.mark.asyncio
async def test_publisher_keeps_events_through_a_failure() -> None:
    queue = EventQueue(10)
    producer = FlakyProducer(failures=1)
    publisher = Publisher(queue, producer, batch_size=2)  # type: ignore[arg-type]
    for key in ["a", "b", "c"]:
        queue.put(ev(key))

    with pytest.raises(KafkaConnectionError):
        await publisher.publish_once()
    assert len(queue) == 3

    published = metric("confab_presence_events_published_total")
    assert await publisher.publish_once() == 2
    assert await publisher.publish_once() == 1
    assert await publisher.publish_once() == 0
    assert producer.sent == [(PRESENCE_EVENTS_TOPIC, k) for k in [b"a", b"b", b"c"]]
    assert metric("confab_presence_events_published_total") == published + 3


@pytest.mark.asyncio
async def test_drain_retries_until_the_queue_is_empty() -> None:
    queue = EventQueue(10)
    producer = FlakyProducer(failures=2)
    publisher = Publisher(queue, producer, min_backoff=0)  # type: ignore[arg-type]
    queue.put(ev("a"))

    await publisher.drain()

    assert producer.sent == [(PRESENCE_EVENTS_TOPIC, b"a")]


def test_convert_carries_chosen_and_custom_status() -> None:
    busy = convert.presence(
        PresenceState("u", pb.PRESENCE_STATUS_BUSY, 1, 1_000, pb.PRESENCE_STATUS_BUSY, "Out", 9_000)
    )
    assert (busy.chosen_status, busy.custom_status) == (pb.PRESENCE_STATUS_BUSY, "Out")
    assert busy.custom_status_expires_at.ToMilliseconds() == 9_000
    plain = convert.presence(PresenceState("u", pb.PRESENCE_STATUS_ONLINE, 1, 1_000))
    assert plain.chosen_status == pb.PRESENCE_STATUS_ONLINE
    assert not plain.HasField("custom_status_expires_at")


def _read(now: int, **stored: object) -> PresenceState:
    fields: dict[str, object] = {
        "live": 0,
        "status": None,
        "last_active": None,
        "chosen": None,
        "custom": None,
        "custom_exp": None,
        "grace_until": None,
    }
    fields.update(stored)
    return effective("u", now_ms=now, **fields)  # type: ignore[arg-type]


def test_effective_status_follows_connections_and_the_grace() -> None:
    online = str(pb.PRESENCE_STATUS_ONLINE)
    busy = str(pb.PRESENCE_STATUS_BUSY)
    assert _read(100).status == pb.PRESENCE_STATUS_OFFLINE
    assert _read(100, status=busy, live=2).status == pb.PRESENCE_STATUS_BUSY
    # Stored present, no live connection, no grace: expired, reads offline.
    assert _read(100, status=online).status == pb.PRESENCE_STATUS_OFFLINE
    assert _read(100, status=busy, grace_until="101").status == pb.PRESENCE_STATUS_BUSY
    assert _read(101, status=busy, grace_until="101").status == pb.PRESENCE_STATUS_OFFLINE
    assert _read(100, status=online, chosen=busy).chosen_status == pb.PRESENCE_STATUS_BUSY
    assert _read(100, chosen="garbage").chosen_status == pb.PRESENCE_STATUS_ONLINE


def test_effective_custom_status_hides_once_expired() -> None:
    shown = _read(99, custom="Lunch", custom_exp="100")
    assert (shown.custom_status, shown.custom_status_expires_ms) == ("Lunch", 100)
    gone = _read(100, custom="Lunch", custom_exp="100")
    assert (gone.custom_status, gone.custom_status_expires_ms) == ("", None)
    forever = _read(10**12, custom="Here")
    assert (forever.custom_status, forever.custom_status_expires_ms) == ("Here", None)


@pytest.mark.parametrize(
    ("raw", "stored"), [("  Lunch ", "Lunch"), ("", ""), ("   ", ""), ("x" * 100, "x" * 100)]
)
def test_custom_status_text_is_trimmed(raw: str, stored: str) -> None:
    assert custom_status_text(raw) == stored


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("x" * 101, "custom_status_too_long"),
        ("a\nb", "invalid_custom_status"),
        ("a\x00b", "invalid_custom_status"),
        ("a\x85b", "invalid_custom_status"),
    ],
)
def test_custom_status_text_rejects(raw: str, code: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        custom_status_text(raw)
    assert exc.value.code == code


def test_typing_throttle_answers_repeats_within_the_window() -> None:
    throttle = TypingThrottle(window_seconds=2.0, capacity=100)
    key = ("t", "u", "c")
    assert throttle.repeat_of(key, True, 0.0) is None
    throttle.published(key, True, 0.0, 6_000)

    assert throttle.repeat_of(key, True, 1.9) == 6_000
    assert throttle.repeat_of(key, False, 1.0) is None  # a change of state
    assert throttle.repeat_of(("t", "u", "other"), True, 1.0) is None
    assert throttle.repeat_of(("t2", "u", "c"), True, 1.0) is None
    assert throttle.repeat_of(key, True, 2.0) is None


def test_typing_throttle_stays_bounded() -> None:
    throttle = TypingThrottle(window_seconds=2.0, capacity=3)
    for i in range(10):
        throttle.published(("t", f"u{i}", "c"), True, 0.0, 1)
    assert len(throttle) == 3
    assert throttle.repeat_of(("t", "u9", "c"), True, 0.5) == 1
    assert throttle.repeat_of(("t", "u0", "c"), True, 0.5) is None

    # Entries past the window go as soon as anything new is published.
    throttle.published(("t", "late", "c"), True, 5.0, 2)
    assert len(throttle) == 1


def test_queue_keeps_typing_and_presence_of_one_user_apart() -> None:
    clock = FakeClock()
    queue = EventQueue(10, clock)
    now = int(clock.now().timestamp() * 1000)
    queue.put(PendingEvent(slot=("presence", "t", "u"), key=b"t:u", value=b"p", headers=()))
    queue.put(
        PendingEvent(
            slot=("typing", "t", "u", "c1"), key=b"t:u", value=b"s", headers=(), expires_ms=now + 1
        )
    )
    queue.put(
        PendingEvent(
            slot=("typing", "t", "u", "c1"), key=b"t:u", value=b"x", headers=(), expires_ms=now + 1
        )
    )

    assert [e.value for e in queue.take(10)] == [b"p", b"x"]
