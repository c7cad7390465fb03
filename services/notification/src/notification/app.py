"""Builds the notification service from its settings and runs it."""

from __future__ import annotations

from confab.notification.v1 import (
    compliance_pb2,
    compliance_pb2_grpc,
    notification_pb2,
    notification_pb2_grpc,
)
from confab_core import mongo
from confab_core.clock import SystemClock
from confab_core.crypto import CachingKeySource
from confab_core.grpcx.client import channel
from confab_core.grpcx.server import GrpcServer, run_until_signal
from confab_core.kafka import CONVERSATION_EVENTS_TOPIC, consume_forever
from confab_core.logs import setup_logging
from confab_core.metrics import serve_metrics
from confab_core.sealed_events import EventOpener
from confab_core.servicetoken import CONVERSATION, PRESENCE
from confab_core.settings import internal_auth, load_settings
from confab_core.telemetry import setup_tracing
from notification.clients.conversation import ConversationClient
from notification.clients.keys import key_client
from notification.clients.presence import PresenceClient
from notification.compliance_servicer import NotificationComplianceServicer
from notification.handlers.compliance import NotificationCompliance
from notification.handlers.events import NotificationHandler
from notification.handlers.queries import NotificationQueries
from notification.mail import SmtpMailer
from notification.servicer import NotificationServicer
from notification.settings import NotificationSettings
from notification.storage.db import Database

SERVICE = "notification"
CONSUMER_GROUP = "notification"


def mailer_from(settings: NotificationSettings) -> SmtpMailer:
    return SmtpMailer(
        host=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        start_tls=settings.smtp_starttls,
        timeout=settings.smtp_timeout_seconds,
        connect_attempts=settings.smtp_connect_attempts,
    )


async def main() -> None:
    settings = load_settings(NotificationSettings)
    setup_logging(SERVICE, settings.log_level)
    setup_tracing(SERVICE)
    serve_metrics(settings.metrics_port)

    auth = internal_auth(SERVICE, settings, SystemClock())
    conversation_channel = channel(settings.conversation_addr, auth, CONVERSATION)
    presence_channel = channel(settings.presence_addr, auth, PRESENCE)
    keys = CachingKeySource(
        key_client(conversation_channel, settings.peer_timeout_seconds),
        ttl_seconds=settings.key_cache_seconds,
    )
    client = mongo.connect(settings.mongo_url, SERVICE)
    db = Database(client, settings.mongo_database, keys)
    await db.ensure_indexes()
    handler = NotificationHandler(
        db,
        ConversationClient(conversation_channel, settings.peer_timeout_seconds),
        PresenceClient(presence_channel, settings.peer_timeout_seconds),
        mailer_from(settings),
        SystemClock(),
        settings.smtp_from,
        EventOpener(keys, CONSUMER_GROUP),
    )

    async def consume() -> None:
        await consume_forever(
            bootstrap=settings.kafka_bootstrap_servers,
            security=settings.kafka_security(),
            topics=[CONVERSATION_EVENTS_TOPIC],
            group_id=CONSUMER_GROUP,
            handler=handler.handle_record,
        )

    server = GrpcServer(settings.grpc_port, auth, health_port=settings.grpc_health_port)
    servicer = NotificationServicer(NotificationQueries(db))
    server.add(
        lambda s: notification_pb2_grpc.add_NotificationServiceServicer_to_server(servicer, s),
        notification_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name,
    )
    compliance = NotificationComplianceServicer(NotificationCompliance(db))
    server.add(
        lambda s: compliance_pb2_grpc.add_NotificationComplianceServiceServicer_to_server(
            compliance, s
        ),
        compliance_pb2.DESCRIPTOR.services_by_name["NotificationComplianceService"].full_name,
    )
    try:
        await run_until_signal(server, [consume], settings.shutdown_grace_seconds)
    finally:
        await conversation_channel.close()
        await presence_channel.close()
        await client.close()
