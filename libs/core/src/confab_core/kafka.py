"""Kafka producer and consumer helpers on aiokafka.

Consumers commit only after their handler succeeded, and a failing handler is
retried on the same record instead of skipping it: a fault delays work, it
never loses it. Handlers must therefore be idempotent (events carry ids).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context
from google.protobuf.message import DecodeError, Message
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Gauge

from confab_core.telemetry import extract_headers, inject_headers, tracer

log = logging.getLogger(__name__)

CONVERSATION_EVENTS_TOPIC = "confab.conversation.events.v1"
PRESENCE_EVENTS_TOPIC = "confab.presence.events.v1"
# Streamed bot replies (confab.bot.v1.StreamEvent, sealed), keyed by conversation
# id, and the bot pods' control topic (StreamControl: cancel, snapshot request).
BOT_STREAMS_TOPIC = "confab.bot-streams"
BOT_STREAM_CONTROL_TOPIC = "confab.bot-stream-control"

# Record headers, besides the trace context: the payload's protobuf type, so a
# consumer can drop what it cannot decode, and presence's per-user order.
EVENT_TYPE_HEADER = "confab-event-type"
CONVERSATION_EVENT_TYPE = b"confab.conversation.v1.ConversationEvent"
PRESENCE_EVENT_TYPE = b"confab.presence.v1.PresenceEvent"
PRESENCE_SEQ_HEADER = "confab-presence-seq"
# A conversation event's value is sealed with its tenant's data key
# (confab_core.sealed_events); these say which tenant's keys open it, and the
# event id its associated data is bound to.
TENANT_ID_HEADER = "confab-tenant-id"
EVENT_ID_HEADER = "confab-event-id"

CONSUMED = Counter(
    "confab_kafka_consumed_total", "Kafka records handled", ["topic", "group", "outcome"]
)
CONSUMER_LAG = Gauge("confab_kafka_consumer_lag", "Records behind the log end", ["topic", "group"])


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """How every client of one service reaches the brokers: TLS, SASL, both or neither.

    ``ca_file`` is the CA the brokers' certificates are checked against (the
    system's store when None); ``cert_file``/``key_file`` are for brokers that
    authenticate clients by certificate (SSL with ssl.client.auth=required).
    """

    protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    def __post_init__(self) -> None:
        sasl = self.protocol.startswith("SASL_")
        if sasl and not (self.sasl_mechanism and self.sasl_username and self.sasl_password):
            raise ValueError(f"{self.protocol} needs a SASL mechanism, username and password")
        if not sasl and (self.sasl_mechanism or self.sasl_username or self.sasl_password):
            raise ValueError(f"SASL credentials are set but the protocol is {self.protocol}")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("a Kafka client certificate needs both its cert and key file")
        if not self.tls and (self.ca_file or self.cert_file):
            raise ValueError(f"TLS files are set but the protocol is {self.protocol}")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for every aiokafka producer, consumer and admin client."""
        options: dict[str, Any] = {"security_protocol": self.protocol}
        if self.tls:
            # create_ssl_context verifies the broker's certificate and host name.
            options["ssl_context"] = create_ssl_context(
                cafile=None if self.ca_file is None else str(self.ca_file),
                certfile=None if self.cert_file is None else str(self.cert_file),
                keyfile=None if self.key_file is None else str(self.key_file),
            )
        if self.sasl_mechanism is not None:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password
        return options


PLAINTEXT = KafkaSecurity()


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 8


async def ensure_topics(
    bootstrap: str, topics: Sequence[TopicSpec], security: KafkaSecurity = PLAINTEXT
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security.client_options())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(t.name, num_partitions=t.partitions, replication_factor=1)
            for t in topics
            if t.name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()


async def ensure_topics_with_retry(
    bootstrap: str,
    topics: Sequence[TopicSpec],
    delay: float = 1.0,
    security: KafkaSecurity = PLAINTEXT,
) -> None:
    while True:
        try:
            await ensure_topics(bootstrap, topics, security)
            return
        except (KafkaError, OSError) as exc:
            log.warning("kafka not ready for topic setup: %s", exc)
            await asyncio.sleep(delay)


class Producer:
    """An idempotent producer that stamps the trace context into headers."""

    def __init__(self, bootstrap: str, security: KafkaSecurity = PLAINTEXT) -> None:
        self._bootstrap = bootstrap
        self._security = security
        self._producer: AIOKafkaProducer | None = None

    async def _get(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap,
                enable_idempotence=True,
                acks="all",
                linger_ms=2,
                request_timeout_ms=10_000,
                **self._security.client_options(),
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def send_many(
        self, topic: str, records: Sequence[tuple[bytes, bytes, Sequence[tuple[str, bytes]]]]
    ) -> None:
        """Sends (key, value, headers) records and waits for every ack, in order."""
        producer = await self._get()
        futures = [
            await producer.send(topic, value=value, key=key, headers=list(headers))
            for key, value, headers in records
        ]
        try:
            await asyncio.gather(*futures)
        except KafkaError:
            # A producer whose batches failed may hold a fenced sequence; a
            # fresh one is cheaper than reasoning about its state.
            await self.reset()
            raise

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        await self.send_many(topic, [(key, value, inject_headers())])

    async def reset(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await producer.stop()
            except KafkaError:
                log.warning("error while stopping kafka producer", exc_info=True)

    async def stop(self) -> None:
        await self.reset()


M = TypeVar("M", bound=Message)


def decode(record: ConsumerRecord[bytes, bytes], message_type: type[M]) -> M | None:
    """The record's protobuf payload, or None (logged) when it cannot be parsed.

    Retrying cannot make such bytes parse, and consumers retry failing records
    forever; so a poison record is dropped here rather than holding the partition.
    """
    message = message_type()
    try:
        message.ParseFromString(record.value or b"")
    except DecodeError:
        CONSUMED.labels(record.topic, "-", "undecodable").inc()
        log.error(
            "dropping undecodable record",
            extra={"topic": record.topic, "offset": record.offset},
        )
        return None
    return message


RecordHandler = Callable[[ConsumerRecord[bytes, bytes]], Awaitable[None]]


async def consume_forever(
    *,
    bootstrap: str,
    topics: Sequence[str],
    group_id: str,
    handler: RecordHandler,
    from_latest: bool = False,
    retry_delay: float = 0.5,
    ready: asyncio.Event | None = None,
    security: KafkaSecurity = PLAINTEXT,
) -> None:
    """Feeds every record to ``handler`` in partition order, committing after it.

    ``from_latest`` is for consumers that only care about live events (a
    gateway pod's fan-out); durable consumers start from the earliest offset.
    """
    await ensure_topics_with_retry(bootstrap, [TopicSpec(t) for t in topics], security=security)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        **security.client_options(),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="latest" if from_latest else "earliest",
        metadata_max_age_ms=30_000,
        max_poll_records=500,
    )
    assigned = asyncio.Event()
    consumer.subscribe(list(topics), listener=_AssignedListener(assigned))
    while True:
        try:
            await consumer.start()
            break
        except KafkaError as exc:
            log.warning("kafka consumer cannot start yet: %s", exc)
            await asyncio.sleep(retry_delay)
    try:
        if ready is not None:
            # Waiting for the assignment makes "ready" mean "will see events
            # published from now on", which start-up ordering relies on.
            await assigned.wait()
            for tp in consumer.assignment():
                await consumer.position(tp)
            ready.set()
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            offsets: dict[TopicPartition, int] = {}
            for tp, records in batches.items():
                await _handle_partition(records, group_id, handler, retry_delay)
                if records:
                    offsets[tp] = records[-1].offset + 1
            # One commit for every partition of the poll: a round trip each was
            # most of a busy consumer's time. A crash before it replays the poll,
            # which every handler tolerates (they drop what they have seen).
            if offsets:
                await _commit(consumer, offsets, retry_delay)
            await _record_lag(consumer, group_id)
    finally:
        await consumer.stop()


class _AssignedListener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, assigned: asyncio.Event) -> None:
        self._assigned = assigned

    async def on_partitions_revoked(self, revoked: object) -> None:
        return None

    async def on_partitions_assigned(self, assigned: object) -> None:
        self._assigned.set()


async def _handle_partition(
    records: list[ConsumerRecord[bytes, bytes]],
    group_id: str,
    handler: RecordHandler,
    retry_delay: float,
) -> None:
    for record in records:
        while True:
            try:
                with tracer().start_as_current_span(
                    f"{record.topic} process",
                    context=extract_headers(record.headers),
                    kind=SpanKind.CONSUMER,
                    attributes={
                        "messaging.system": "kafka",
                        "messaging.destination.name": record.topic,
                        "messaging.consumer.group.name": group_id,
                        "messaging.kafka.offset": record.offset,
                    },
                ):
                    await handler(record)
                CONSUMED.labels(record.topic, group_id, "ok").inc()
                break
            except asyncio.CancelledError:
                raise
            except Exception:
                CONSUMED.labels(record.topic, group_id, "retry").inc()
                log.exception(
                    "handler failed; retrying the same record",
                    extra={"topic": record.topic, "offset": record.offset},
                )
                await asyncio.sleep(retry_delay)


async def _commit(
    consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int], retry_delay: float
) -> None:
    while True:
        try:
            await consumer.commit(offsets)
            return
        except KafkaError as exc:
            log.warning("commit failed, retrying: %s", exc)
            await asyncio.sleep(retry_delay)


async def _record_lag(consumer: AIOKafkaConsumer, group_id: str) -> None:
    for tp in consumer.assignment():
        end = consumer.highwater(tp)
        if end is None:
            continue
        position = await consumer.position(tp)
        CONSUMER_LAG.labels(tp.topic, group_id).set(max(0, end - position))
