"""Builds the presence service from its settings and runs it."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from confab.presence.v1 import compliance_pb2, compliance_pb2_grpc, presence_pb2, presence_pb2_grpc
from confab_core import redisx
from confab_core.clock import SystemClock
from confab_core.grpcx.client import channel
from confab_core.grpcx.server import GrpcServer, run_until_signal
from confab_core.kafka import (
    PRESENCE_EVENTS_TOPIC,
    Producer,
    TopicSpec,
    ensure_topics_with_retry,
)
from confab_core.logs import setup_logging
from confab_core.metrics import serve_metrics
from confab_core.servicetoken import CONVERSATION
from confab_core.settings import internal_auth, load_settings
from confab_core.telemetry import setup_tracing
from presence.clients.conversation import MembershipClient
from presence.compliance_servicer import PresenceComplianceServicer
from presence.events import EventQueue, Publisher
from presence.handlers.compliance import PresenceCompliance
from presence.handlers.presence import PresenceHandler
from presence.membership import Memberships
from presence.servicer import PresenceServicer
from presence.settings import PresenceSettings
from presence.storage.presence import PresenceDb
from presence.sweeper import Sweeper

log = logging.getLogger(__name__)

SERVICE = "presence"
# Seconds spent at shutdown publishing what is still queued.
DRAIN_SECONDS = 5.0


async def main() -> None:
    settings = load_settings(PresenceSettings)
    setup_logging(SERVICE, settings.log_level)
    setup_tracing(SERVICE)
    serve_metrics(settings.metrics_port)

    clock = SystemClock()
    auth = internal_auth(SERVICE, settings, clock)
    conversation_channel = channel(settings.conversation_addr, auth, CONVERSATION)
    memberships = Memberships(
        MembershipClient(conversation_channel, settings.rpc_timeout_seconds),
        clock,
        ttl=settings.membership_cache_seconds,
    )
    redis = redisx.connect(settings.redis_url)
    db = PresenceDb(redis)
    queue = EventQueue(settings.event_queue_size, clock)
    producer = Producer(settings.kafka_bootstrap_servers, settings.kafka_security())
    publisher = Publisher(queue, producer)
    sweeper = Sweeper(
        db,
        queue,
        clock,
        ttl_seconds=settings.connection_ttl_seconds,
        interval_seconds=settings.sweep_interval_seconds,
        batch_size=settings.sweep_batch_size,
    )

    async def publish() -> None:
        # Connects are served meanwhile; their events wait in the queue.
        await ensure_topics_with_retry(
            settings.kafka_bootstrap_servers,
            [TopicSpec(PRESENCE_EVENTS_TOPIC)],
            security=settings.kafka_security(),
        )
        await publisher.run()

    server = GrpcServer(settings.grpc_port, auth, health_port=settings.grpc_health_port)
    servicer = PresenceServicer(
        PresenceHandler(
            db,
            queue,
            clock,
            memberships,
            ttl_seconds=settings.connection_ttl_seconds,
            offline_grace_seconds=settings.offline_grace_seconds,
            typing_ttl_seconds=settings.typing_ttl_seconds,
        )
    )
    server.add(
        lambda s: presence_pb2_grpc.add_PresenceServiceServicer_to_server(servicer, s),
        presence_pb2.DESCRIPTOR.services_by_name["PresenceService"].full_name,
    )
    compliance = PresenceComplianceServicer(PresenceCompliance(db))
    server.add(
        lambda s: compliance_pb2_grpc.add_PresenceComplianceServiceServicer_to_server(
            compliance, s
        ),
        compliance_pb2.DESCRIPTOR.services_by_name["PresenceComplianceService"].full_name,
    )
    try:
        await run_until_signal(server, [publish, sweeper.run], settings.shutdown_grace_seconds)
    finally:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_SECONDS):
                await publisher.drain()
        if len(queue):
            log.warning("presence events lost at shutdown", extra={"queued": len(queue)})
        await producer.stop()
        await redis.aclose()
        await conversation_channel.close()
