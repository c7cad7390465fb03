"""Presence events: built from a change, queued in memory, published to Kafka.

A Kafka outage must not fail Connect or Disconnect, so changes wait in a
bounded in-memory queue that a background publisher drains with retries.
Presence is state, not history: a queued event for a user is replaced by that
user's newer one, so an outage costs at most one queued event per user, and
only when more users than the queue holds changed does the oldest get dropped.

Typing events share the topic and the queue but never replace a presence
event: they coalesce per user and conversation (a queued start is replaced by
the stop that followed it), and one that expired while queued is discarded
unsent, since every consumer would ignore it anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka.errors import KafkaError

from confab.presence.v1 import events_pb2
from confab_core.clock import Clock
from confab_core.ids import new_id
from confab_core.kafka import (
    EVENT_TYPE_HEADER,
    PRESENCE_EVENT_TYPE,
    PRESENCE_EVENTS_TOPIC,
    PRESENCE_SEQ_HEADER,
    Producer,
)
from confab_core.telemetry import inject_headers
from presence import convert
from presence.metrics import (
    EVENT_QUEUE_DEPTH,
    EVENTS_COALESCED,
    EVENTS_DROPPED,
    EVENTS_PUBLISHED,
    PUBLISH_FAILURES,
    TYPING_EXPIRED_UNSENT,
)
from presence.storage.presence import Change
from presence.timing import epoch_ms

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PendingEvent:
    # What a newer event replaces: ("presence", tenant, user) or ("typing",
    # tenant, user, conversation). Not the Kafka key, in which tenant "a:b"
    # user "c" and tenant "a" user "b:c" read the same.
    slot: tuple[str, ...]
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    # Epoch ms after which publishing is pointless (typing); None: never.
    expires_ms: int | None = None


def presence_event(tenant_id: str, change: Change) -> PendingEvent:
    event = events_pb2.PresenceEvent(
        event_id=new_id(), tenant_id=tenant_id, presence=convert.presence(change.state)
    )
    return PendingEvent(
        slot=("presence", tenant_id, change.state.user_id),
        key=f"{tenant_id}:{change.state.user_id}".encode(),
        value=event.SerializeToString(),
        # The trace context is taken now, so the span that made the change
        # is the parent of delivery even though publishing happens later.
        headers=(
            (EVENT_TYPE_HEADER, PRESENCE_EVENT_TYPE),
            # Per-user change counter: a consumer keeps the highest it saw per
            # user and ignores lower ones, which two pods' queues may deliver
            # out of order.
            (PRESENCE_SEQ_HEADER, str(change.seq).encode()),
            *inject_headers(),
        ),
    )


def typing_event(
    tenant_id: str, user_id: str, conversation_id: str, typing: bool, expires_ms: int
) -> PendingEvent:
    event = events_pb2.PresenceEvent(
        event_id=new_id(),
        tenant_id=tenant_id,
        typing=events_pb2.Typing(
            user_id=user_id,
            conversation_id=conversation_id,
            typing=typing,
            expires_at=convert.timestamp(expires_ms),
        ),
    )
    return PendingEvent(
        slot=("typing", tenant_id, user_id, conversation_id),
        # The user's key, like their presence events: one partition, in order.
        key=f"{tenant_id}:{user_id}".encode(),
        value=event.SerializeToString(),
        # No seq header: typing is not part of the user's presence state.
        headers=((EVENT_TYPE_HEADER, PRESENCE_EVENT_TYPE), *inject_headers()),
        expires_ms=expires_ms,
    )


class EventQueue:
    """Bounded, coalescing by slot, oldest first.

    With a clock, ``take`` discards events whose ``expires_ms`` has passed.
    """

    def __init__(self, capacity: int, clock: Clock | None = None) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self._clock = clock
        self._items: OrderedDict[tuple[str, ...], PendingEvent] = OrderedDict()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, event: PendingEvent) -> None:
        if self._items.pop(event.slot, None) is not None:
            EVENTS_COALESCED.inc()
        self._items[event.slot] = event
        self._trim()

    def take(self, limit: int) -> list[PendingEvent]:
        now = epoch_ms(self._clock) if self._clock is not None else None
        batch: list[PendingEvent] = []
        expired = 0
        while self._items and len(batch) < limit:
            event = self._items.popitem(last=False)[1]
            if now is not None and event.expires_ms is not None and event.expires_ms <= now:
                expired += 1
                continue
            batch.append(event)
        if expired:
            TYPING_EXPIRED_UNSENT.inc(expired)
        self._changed()
        return batch

    def requeue(self, batch: Sequence[PendingEvent]) -> None:
        """Puts back a batch that failed, ahead of what arrived meanwhile."""
        for event in reversed(batch):
            if event.slot in self._items:
                # A newer state of the same user is already waiting.
                EVENTS_COALESCED.inc()
                continue
            self._items[event.slot] = event
            self._items.move_to_end(event.slot, last=False)
        self._trim()

    async def wait(self) -> None:
        """Returns once the queue holds something."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()

    def _trim(self) -> None:
        dropped = 0
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
            dropped += 1
        if dropped:
            EVENTS_DROPPED.inc(dropped)
            log.warning(
                "presence event queue full; dropped the oldest events",
                extra={"dropped": dropped, "capacity": self.capacity},
            )
        self._changed()

    def _changed(self) -> None:
        EVENT_QUEUE_DEPTH.set(len(self._items))
        if self._items:
            self._ready.set()


class Publisher:
    def __init__(
        self,
        queue: EventQueue,
        producer: Producer,
        *,
        topic: str = PRESENCE_EVENTS_TOPIC,
        batch_size: int = 500,
        send_timeout: float = 30.0,
        min_backoff: float = 0.1,
        max_backoff: float = 5.0,
    ) -> None:
        self._queue = queue
        self._producer = producer
        self._topic = topic
        self._batch = batch_size
        self._send_timeout = send_timeout
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff

    async def publish_once(self) -> int:
        """Publishes one batch; on failure puts it back and raises."""
        batch = self._queue.take(self._batch)
        if not batch:
            return 0
        try:
            async with asyncio.timeout(self._send_timeout):
                await self._producer.send_many(
                    self._topic, [(e.key, e.value, e.headers) for e in batch]
                )
        except BaseException as exc:
            self._queue.requeue(batch)
            if isinstance(exc, TimeoutError):
                # A send cut short leaves the producer's state unknown.
                await self._producer.reset()
            raise
        EVENTS_PUBLISHED.inc(len(batch))
        return len(batch)

    async def run(self) -> None:
        backoff = self._min_backoff
        while True:
            await self._queue.wait()
            try:
                await self.publish_once()
                backoff = self._min_backoff
            except (KafkaError, OSError, TimeoutError) as exc:
                PUBLISH_FAILURES.inc()
                log.warning(
                    "presence events not published, retrying: %s",
                    exc,
                    extra={"queued": len(self._queue)},
                )
                await asyncio.sleep(backoff)
                backoff = min(max(backoff * 2, 0.01), self._max_backoff)

    async def drain(self) -> None:
        """Publishes until the queue is empty; the caller bounds it with a timeout."""
        while len(self._queue):
            try:
                await self.publish_once()
            except (KafkaError, OSError, TimeoutError):
                await asyncio.sleep(self._min_backoff)
