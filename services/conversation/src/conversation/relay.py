"""Publishes the outbox to Kafka, then marks what Kafka acknowledged as published.

One relay at a time holds a lease in MongoDB, so replicas never interleave a
conversation's events. A crash between publish and delete re-publishes a batch;
consumers drop event ids they have seen, so that costs a duplicate on the wire,
never one in a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from aiokafka.errors import KafkaError
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Gauge, Histogram
from pymongo.errors import PyMongoError

from confab_core.clock import Clock
from confab_core.ids import new_id
from confab_core.kafka import Producer
from confab_core.telemetry import extract_headers, inject_headers, tracer
from conversation.storage.db import Database
from conversation.storage.outbox import PendingRecord

log = logging.getLogger(__name__)

PUBLISHED = Counter("confab_outbox_published_total", "Outbox records published to Kafka")
PENDING = Gauge("confab_outbox_pending", "Outbox records seen waiting in the last poll")
STEP_SECONDS = Histogram(
    "confab_outbox_relay_step_seconds",
    "Time of each step of a relay pass",
    ["step"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
BATCH_RECORDS = Histogram(
    "confab_outbox_relay_batch_records",
    "Records per relay pass that found any",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
LEASE_ID = "outbox-relay"


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        producer: Producer,
        clock: Clock,
        wakeup: asyncio.Event,
        *,
        batch_size: int,
        poll_seconds: float,
        lease_seconds: float,
    ) -> None:
        self._reader = db.outbox_reader()
        self._leases = db.leases()
        self._producer = producer
        self._clock = clock
        self._wakeup = wakeup
        self._batch = batch_size
        self._poll = poll_seconds
        self._lease = lease_seconds
        self._owner = new_id()
        # Until when the lease we hold needs no renewal (clock.monotonic()).
        self._renew_at = float("-inf")

    async def run(self) -> None:
        backoff = self._poll
        while True:
            try:
                with STEP_SECONDS.labels("lease").time():
                    held = await self._hold_lease()
                if held:
                    published = await self.publish_once()
                    backoff = self._poll
                    if published:
                        continue
            except (KafkaError, PyMongoError, OSError) as exc:
                log.warning("outbox relay paused: %s", exc)
                backoff = min(backoff * 2, 5.0)
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancel that lands as the event fires, and the relay never stops.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await self._wakeup.wait()
            self._wakeup.clear()

    async def _hold_lease(self) -> bool:
        # Renewing on every pass cost a write per pass; a third of the lease
        # leaves two thirds of it as margin before any replica may take over.
        if self._clock.monotonic() < self._renew_at:
            return True
        held = await self._take_lease()
        self._renew_at = self._clock.monotonic() + self._lease / 3 if held else float("-inf")
        return held

    async def _take_lease(self) -> bool:
        return await self._leases.take(
            LEASE_ID, self._owner, self._clock.now(), timedelta(seconds=self._lease)
        )

    async def publish_once(self) -> int:
        with STEP_SECONDS.labels("read").time():
            pending = await self._reader.pending(self._batch)
        PENDING.set(len(pending))
        if not pending:
            return 0
        BATCH_RECORDS.observe(len(pending))
        by_topic: dict[str, list[PendingRecord]] = {}
        for doc in pending:
            by_topic.setdefault(doc.topic, []).append(doc)
        with STEP_SECONDS.labels("publish").time():
            for topic, docs in by_topic.items():
                await self._producer.send_many(topic, [_record(topic, doc) for doc in docs])
        with STEP_SECONDS.labels("mark").time():
            await self._reader.mark_published([doc.id for doc in pending], self._clock.now())
        PUBLISHED.inc(len(pending))
        return len(pending)


def _record(topic: str, doc: PendingRecord) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """The Kafka record of an outbox document, under a producer span.

    The span continues the trace stored with the event (the send that caused
    it), and its own context replaces the stored one in the headers, so each
    consumer's span hangs under this publish.
    """
    stored = doc.headers
    with tracer().start_as_current_span(
        f"{topic} publish",
        context=extract_headers(stored),
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
            "confab.conversation_id": doc.conversation_id,
            "confab.event_seq": doc.event_seq,
        },
    ):
        fresh = inject_headers()
    names = {k for k, _ in fresh}
    headers = [(k, v) for k, v in stored if k not in names] + fresh
    return doc.conversation_id.encode(), doc.payload, headers
