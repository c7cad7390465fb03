"""Builds the conversation service from its settings and runs it."""

from __future__ import annotations

import asyncio

from confab.conversation.v1 import conversation_pb2, conversation_pb2_grpc
from confab_core import mongo
from confab_core.clock import SystemClock
from confab_core.grpcx.server import GrpcServer, run_until_signal
from confab_core.kafka import (
    CONVERSATION_EVENTS_TOPIC,
    Producer,
    TopicSpec,
    ensure_topics_with_retry,
)
from confab_core.logs import setup_logging
from confab_core.metrics import serve_metrics
from confab_core.settings import load_settings
from confab_core.telemetry import setup_tracing
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.messages import MessageHandler
from conversation.relay import OutboxRelay
from conversation.servicer import ConversationServicer
from conversation.settings import ConversationSettings
from conversation.storage.db import Database

SERVICE = "conversation"


async def main() -> None:
    settings = load_settings(ConversationSettings)
    setup_logging(SERVICE, settings.log_level)
    setup_tracing(SERVICE)
    serve_metrics(settings.metrics_port)

    clock = SystemClock()
    client = mongo.connect(settings.mongo_url, SERVICE)
    db = Database(client, settings.mongo_database)
    await db.ensure_indexes()
    wakeup = asyncio.Event()
    producer = Producer(settings.kafka_bootstrap_servers)
    relay = OutboxRelay(
        db,
        producer,
        clock,
        wakeup,
        batch_size=settings.relay_batch_size,
        poll_seconds=settings.relay_poll_seconds,
        lease_seconds=settings.relay_lease_seconds,
    )

    async def topics() -> None:
        await ensure_topics_with_retry(
            settings.kafka_bootstrap_servers, [TopicSpec(CONVERSATION_EVENTS_TOPIC)]
        )
        await relay.run()

    server = GrpcServer(settings.grpc_port)
    servicer = ConversationServicer(
        ConversationHandler(db, clock, wakeup), MessageHandler(db, clock, wakeup)
    )
    server.add(
        lambda s: conversation_pb2_grpc.add_ConversationServiceServicer_to_server(servicer, s),
        conversation_pb2.DESCRIPTOR.services_by_name["ConversationService"].full_name,
    )
    try:
        await run_until_signal(server, [topics], settings.shutdown_grace_seconds)
    finally:
        await producer.stop()
        await client.close()
