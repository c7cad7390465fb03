"""Builds the conversation service from its settings and runs it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pymongo import AsyncMongoClient

from confab.conversation.v1 import (
    analytics_pb2,
    analytics_pb2_grpc,
    assignment_pb2,
    assignment_pb2_grpc,
    botdata_pb2,
    botdata_pb2_grpc,
    canned_pb2,
    canned_pb2_grpc,
    conversation_pb2,
    conversation_pb2_grpc,
    files_pb2,
    files_pb2_grpc,
    governance_pb2,
    governance_pb2_grpc,
    jobs_pb2,
    jobs_pb2_grpc,
    keys_pb2,
    keys_pb2_grpc,
    membership_pb2,
    membership_pb2_grpc,
    platform_pb2,
    platform_pb2_grpc,
    policy_pb2,
    policy_pb2_grpc,
    settings_pb2,
    settings_pb2_grpc,
    sla_pb2,
    sla_pb2_grpc,
    staff_pb2,
    staff_pb2_grpc,
    support_admin_pb2,
    support_admin_pb2_grpc,
    support_pb2,
    support_pb2_grpc,
)
from confab_core import mongo
from confab_core.clock import Clock, SystemClock
from confab_core.crypto import AwsKmsProvider, KeyProvider, LocalKeyFileProvider
from confab_core.grpcx.client import channel
from confab_core.grpcx.server import GrpcServer, run_until_signal
from confab_core.kafka import (
    CONVERSATION_EVENTS_TOPIC,
    PRESENCE_EVENTS_TOPIC,
    Producer,
    TopicSpec,
    consume_forever,
    ensure_topics_with_retry,
)
from confab_core.logs import setup_logging
from confab_core.metrics import serve_metrics
from confab_core.mongo import Doc
from confab_core.servicetoken import NOTIFICATION, PRESENCE
from confab_core.settings import internal_auth, load_settings
from confab_core.telemetry import setup_tracing
from confab_core.tenant_settings import TENANT_SETTINGS_TOPIC
from conversation.analytics_consumer import AnalyticsConsumer
from conversation.analytics_servicer import AnalyticsServicer
from conversation.assignment_servicer import AssignmentServicer
from conversation.autoassign import AutoAssigner, PresenceWatcher, Wakeups
from conversation.botdata_servicer import BotDataServicer
from conversation.canned_servicer import CannedReplyServicer, SupportProfileServicer
from conversation.clients.compliance import MissingPeer, NotificationPeer, PresencePeer
from conversation.clients.presence import NoPresence, OnlineAgents, PresenceClient
from conversation.clients.scanner import ClamdScanner
from conversation.files_servicer import FileServicer
from conversation.files_worker import FileWorker
from conversation.governance_servicer import AuditServicer, ModerationServicer
from conversation.handlers.analytics import AnalyticsHandler
from conversation.handlers.assignment import AssignmentHandler
from conversation.handlers.audit import AuditTrail
from conversation.handlers.botdata import BotDataHandler
from conversation.handlers.canned import CannedHandler
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.fileprocess import FileProcessor, FileWork, image_policies
from conversation.handlers.files import FileHandler
from conversation.handlers.jobs import JobHandler
from conversation.handlers.keys import KeyHandler
from conversation.handlers.membership import MembershipHandler
from conversation.handlers.messages import MessageHandler
from conversation.handlers.moderation import ModerationHandler
from conversation.handlers.platform import PlatformHandler
from conversation.handlers.policy import PolicyHandler
from conversation.handlers.sla import SlaEngine
from conversation.handlers.sla_policy import SlaPolicyHandler
from conversation.handlers.staff import StaffHandler
from conversation.handlers.support import SupportHandler
from conversation.handlers.support_admin import SupportAdminHandler
from conversation.handlers.tenant_settings import SettingsHandler
from conversation.handlers.unit import UnitOfWork
from conversation.jobs import erasure, export
from conversation.jobs.files import FileReaper
from conversation.jobs.policy import TenantPolicies
from conversation.jobs.retention import RetentionScheduler
from conversation.jobs.runner import JobRunner
from conversation.jobs_servicer import JobServicer
from conversation.keys_servicer import KeyServicer
from conversation.membership_servicer import MembershipServicer
from conversation.platform_servicer import PlatformServicer
from conversation.policy_servicer import PolicyServicer
from conversation.reencrypt import ReencryptRunner
from conversation.relay import OutboxRelay
from conversation.servicer import ConversationServicer
from conversation.settings import ConversationSettings
from conversation.settings_servicer import SettingsServicer
from conversation.sla_scheduler import SlaScheduler
from conversation.sla_servicer import SlaServicer
from conversation.staff_servicer import StaffServicer
from conversation.storage.blobs import build_blob_store
from conversation.storage.db import Database
from conversation.storage.filebytes import FileBytes
from conversation.support_admin_servicer import SupportAdminServicer
from conversation.support_assign import AssignmentObserver, SystemAssign, TicketView
from conversation.support_servicer import SupportServicer

SERVICE = "conversation"


@dataclass
class Service:
    """The built service: its gRPC server, the loops to run beside it, and cleanup."""

    server: GrpcServer
    background: list[Callable[[], Coroutine[Any, Any, None]]]
    close: Callable[[], Awaitable[None]]
    servicer: ConversationServicer
    # File bytes, sealed, in the configured object store (docs/files.md#storage).
    files: FileBytes


def key_provider(settings: ConversationSettings) -> KeyProvider:
    """The provider settings name; a missing key file or KMS key stops the start."""
    if settings.key_provider == "aws-kms":
        return AwsKmsProvider(
            settings.kms_key_id,
            region=settings.kms_region,
            endpoint_url=settings.kms_endpoint_url,
        )
    if settings.key_file is None:
        raise ValueError("CONVERSATION_KEY_FILE is required with the local key provider")
    return LocalKeyFileProvider(settings.key_file)


def scanner(settings: ConversationSettings) -> ClamdScanner | None:
    """None only when the settings allow no scanner (files then stay pending)."""
    if not settings.clamd_host:
        return None
    return ClamdScanner(settings.clamd_host, settings.clamd_port, settings.clamd_timeout_seconds)


def database(
    settings: ConversationSettings, client: AsyncMongoClient[Doc], clock: Clock
) -> Database:
    return Database(
        client,
        settings.mongo_database,
        key_provider(settings),
        clock,
        key_cache_ttl=timedelta(seconds=settings.key_cache_seconds),
        rotation_delay=timedelta(seconds=settings.key_rotation_delay_seconds),
    )


async def build(
    settings: ConversationSettings, clock: Clock | None = None, host: str = "0.0.0.0"
) -> Service:
    clock = clock or SystemClock()
    client = mongo.connect(settings.mongo_url, SERVICE)
    db = database(settings, client, clock)
    await db.ensure_indexes()
    # Its clients live as long as the service: close() ends them.
    files = FileBytes(await build_blob_store(settings, db.db), db.keys)
    wakeup = asyncio.Event()
    producer = Producer(settings.kafka_bootstrap_servers, settings.kafka_security())
    relay = OutboxRelay(
        db,
        producer,
        clock,
        wakeup,
        batch_size=settings.relay_batch_size,
        poll_seconds=settings.relay_poll_seconds,
        lease_seconds=settings.relay_lease_seconds,
    )

    async def publish() -> None:
        await ensure_topics_with_retry(
            settings.kafka_bootstrap_servers,
            [TopicSpec(CONVERSATION_EVENTS_TOPIC), TopicSpec(TENANT_SETTINGS_TOPIC)],
            security=settings.kafka_security(),
        )
        await relay.run()

    server = GrpcServer(
        settings.grpc_port,
        internal_auth(SERVICE, settings, clock),
        host=host,
        health_port=settings.grpc_health_port,
    )
    # One unit of work, so one writer-lock table, for every handler of the process.
    unit = UnitOfWork(db, clock, wakeup)
    # One policy cache per process, shared by the policy API and message writes.
    policies = PolicyHandler(db, clock)
    # The support desk; its observers (SLA, auto-assignment) are added here.
    sla = SlaEngine(unit)
    # Auto-assignment's wake-ups: its observer and settings API ring them, the
    # assigner (built once the presence peer is known) answers.
    assign_wakeups = Wakeups()
    tickets = SupportHandler(
        unit, policies, observers=[sla, AssignmentObserver(assign_wakeups.wake)]
    )
    sla.attach(tickets)
    conversations = ConversationHandler(unit)
    conversations.tickets = tickets
    messages = MessageHandler(unit, policies, tickets=tickets)
    servicer = ConversationServicer(conversations, messages)
    server.add(
        lambda s: conversation_pb2_grpc.add_ConversationServiceServicer_to_server(servicer, s),
        conversation_pb2.DESCRIPTOR.services_by_name["ConversationService"].full_name,
    )
    support = SupportServicer(tickets)
    server.add(
        lambda s: support_pb2_grpc.add_SupportServiceServicer_to_server(support, s),
        support_pb2.DESCRIPTOR.services_by_name["SupportService"].full_name,
    )
    # Platform staff: escalated tickets of every tenant, through the support desk.
    platform_handler = PlatformHandler(tickets)
    platform = PlatformServicer(platform_handler)
    server.add(
        lambda s: platform_pb2_grpc.add_PlatformServiceServicer_to_server(platform, s),
        platform_pb2.DESCRIPTOR.services_by_name["PlatformService"].full_name,
    )
    # The tenant's chat settings; the desk's categories are one of their sections.
    chat_settings = SettingsHandler(
        db, clock, AuditTrail(db, clock, unit.locks), wakeup, settings.bot_allowed_base_urls
    )
    settings_servicer = SettingsServicer(chat_settings)
    server.add(
        lambda s: settings_pb2_grpc.add_SettingsServiceServicer_to_server(settings_servicer, s),
        settings_pb2.DESCRIPTOR.services_by_name["SettingsService"].full_name,
    )
    # Files: uploads ring the processor's wake-up once a file waits.
    file_work = FileWork()
    file_servicer = FileServicer(
        FileHandler(unit, files, chat_settings, file_work, platform_handler, policies)
    )
    server.add(
        lambda s: files_pb2_grpc.add_FileServiceServicer_to_server(file_servicer, s),
        files_pb2.DESCRIPTOR.services_by_name["FileService"].full_name,
    )
    desk = SupportAdminServicer(
        SupportAdminHandler(db, clock, AuditTrail(db, clock, unit.locks), chat_settings)
    )
    server.add(
        lambda s: support_admin_pb2_grpc.add_SupportAdminServiceServicer_to_server(desk, s),
        support_admin_pb2.DESCRIPTOR.services_by_name["SupportAdminService"].full_name,
    )
    sla_policies = SlaServicer(SlaPolicyHandler(db, clock, AuditTrail(db, clock, unit.locks)))
    server.add(
        lambda s: sla_pb2_grpc.add_SlaServiceServicer_to_server(sla_policies, s),
        sla_pb2.DESCRIPTOR.services_by_name["SlaService"].full_name,
    )
    sla_scheduler = SlaScheduler(
        db,
        sla,
        clock,
        batch_size=settings.sla_batch_size,
        poll_seconds=settings.sla_poll_seconds,
        lease_seconds=settings.sla_lease_seconds,
    )
    canned_handler = CannedHandler(unit, messages, policies)
    canned = CannedReplyServicer(canned_handler)
    server.add(
        lambda s: canned_pb2_grpc.add_CannedReplyServiceServicer_to_server(canned, s),
        canned_pb2.DESCRIPTOR.services_by_name["CannedReplyService"].full_name,
    )
    support_profile = SupportProfileServicer(canned_handler)
    server.add(
        lambda s: canned_pb2_grpc.add_SupportProfileServiceServicer_to_server(support_profile, s),
        canned_pb2.DESCRIPTOR.services_by_name["SupportProfileService"].full_name,
    )
    bot_data = BotDataServicer(BotDataHandler(db, clock))
    server.add(
        lambda s: botdata_pb2_grpc.add_BotDataServiceServicer_to_server(bot_data, s),
        botdata_pb2.DESCRIPTOR.services_by_name["BotDataService"].full_name,
    )
    audit = AuditServicer(AuditTrail(db, clock, unit.locks))
    server.add(
        lambda s: governance_pb2_grpc.add_AuditServiceServicer_to_server(audit, s),
        governance_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name,
    )
    moderation = ModerationServicer(ModerationHandler(unit))
    server.add(
        lambda s: governance_pb2_grpc.add_ModerationServiceServicer_to_server(moderation, s),
        governance_pb2.DESCRIPTOR.services_by_name["ModerationService"].full_name,
    )
    membership = MembershipServicer(MembershipHandler(db, unit.roles))
    server.add(
        lambda s: membership_pb2_grpc.add_MembershipServiceServicer_to_server(membership, s),
        membership_pb2.DESCRIPTOR.services_by_name["MembershipService"].full_name,
    )
    staff = StaffServicer(StaffHandler(db))
    server.add(
        lambda s: staff_pb2_grpc.add_StaffServiceServicer_to_server(staff, s),
        staff_pb2.DESCRIPTOR.services_by_name["StaffService"].full_name,
    )
    policy = PolicyServicer(policies)
    server.add(
        lambda s: policy_pb2_grpc.add_PolicyServiceServicer_to_server(policy, s),
        policy_pb2.DESCRIPTOR.services_by_name["PolicyService"].full_name,
    )

    jobs_wakeup = asyncio.Event()
    jobs = JobServicer(JobHandler(unit, jobs_wakeup, AuditTrail(db, clock)))
    server.add(
        lambda s: jobs_pb2_grpc.add_JobServiceServicer_to_server(jobs, s),
        jobs_pb2.DESCRIPTOR.services_by_name["JobService"].full_name,
    )
    compliance = TenantPolicies(policies)
    auth = internal_auth(SERVICE, settings, clock)
    peer_channels = []
    notifications: NotificationPeer | MissingPeer = MissingPeer("notification")
    presence: PresencePeer | MissingPeer = MissingPeer("presence")
    if settings.notification_addr:
        peer_channels.append(channel(settings.notification_addr, auth, NOTIFICATION))
        notifications = NotificationPeer(peer_channels[-1], settings.peer_timeout_seconds)
    if settings.presence_addr:
        peer_channels.append(channel(settings.presence_addr, auth, PRESENCE))
        presence = PresencePeer(peer_channels[-1], settings.peer_timeout_seconds)
    peers = [notifications, presence]
    online: OnlineAgents = NoPresence()
    if settings.presence_addr:
        online = PresenceClient(peer_channels[-1], settings.peer_timeout_seconds)
    ticket_view = TicketView()
    assigner = AutoAssigner(
        db,
        clock,
        online,
        ticket_view,
        SystemAssign(tickets),
        sweep_seconds=settings.assign_sweep_seconds,
        lease_seconds=settings.assign_lease_seconds,
        poll_seconds=settings.assign_poll_seconds,
        wakeups=assign_wakeups,
    )
    assignment = AssignmentServicer(
        AssignmentHandler(
            db, clock, AuditTrail(db, clock, unit.locks), online, ticket_view, assign_wakeups.wake
        )
    )
    server.add(
        lambda s: assignment_pb2_grpc.add_AssignmentServiceServicer_to_server(assignment, s),
        assignment_pb2.DESCRIPTOR.services_by_name["AssignmentService"].full_name,
    )
    watcher = PresenceWatcher(assign_wakeups.wake)

    async def watch_presence() -> None:
        # One group for all replicas: whichever hears an agent come online hands
        # the wake-up to the lease holder (AutoAssigner.run_once).
        await consume_forever(
            bootstrap=settings.kafka_bootstrap_servers,
            topics=[PRESENCE_EVENTS_TOPIC],
            group_id="conversation-autoassign",
            handler=watcher.handle,
            from_latest=True,
            security=settings.kafka_security(),
        )

    trail = AuditTrail(db, clock)
    batch = settings.job_batch_size
    reaper = FileReaper(db, files.blobs)
    runner = JobRunner(
        db,
        clock,
        {
            export.KIND: export.ExportJob(db, batch, notifications),
            erasure.USER_KIND: erasure.UserErasureJob(unit, compliance, peers, batch, files=reaper),
            erasure.TENANT_KIND: erasure.TenantErasureJob(
                unit, KeyHandler(db), peers, batch, files=reaper
            ),
        },
        lease_seconds=settings.job_lease_seconds,
        poll_seconds=settings.job_poll_seconds,
        wakeup=jobs_wakeup,
    )
    retention = RetentionScheduler(
        db,
        clock,
        compliance,
        files=reaper,
        audit=trail,
        peers=[notifications],
        batch_size=settings.retention_batch_size,
        period_seconds=settings.retention_period_seconds,
        lease_seconds=settings.retention_lease_seconds,
        pause=lambda: asyncio.sleep(settings.retention_pause_seconds),
    )

    keys = KeyServicer(KeyHandler(db))
    server.add(
        lambda s: keys_pb2_grpc.add_KeyServiceServicer_to_server(keys, s),
        keys_pb2.DESCRIPTOR.services_by_name["KeyService"].full_name,
    )
    reencrypt = ReencryptRunner(
        db,
        batch_size=settings.reencrypt_batch_size,
        poll_seconds=settings.reencrypt_poll_seconds,
        lease_seconds=settings.reencrypt_lease_seconds,
    )

    # The file processor: scans, previews, purges (docs/files.md#scanning). The
    # upload handlers ring ``file_work`` once a file is committed pending.
    file_worker = FileWorker(
        FileProcessor(
            unit,
            files,
            scanner(settings),
            image_policies(chat_settings),
            AuditTrail(db, clock, unit.locks),
            clock,
            lease_seconds=settings.files_worker_lease_seconds,
            scratch_dir=settings.files_scratch_dir,
        ),
        file_work,
        concurrency=settings.files_worker_concurrency,
        poll_seconds=settings.files_worker_poll_seconds,
    )

    analytics_handler = AnalyticsHandler(db)
    analytics = AnalyticsServicer(analytics_handler)
    server.add(
        lambda s: analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server(analytics, s),
        analytics_pb2.DESCRIPTOR.services_by_name["AnalyticsService"].full_name,
    )
    background = [
        publish,
        reencrypt.run,
        runner.run,
        retention.run,
        sla_scheduler.run,
        assigner.run,
        watch_presence,
        file_worker.run,
    ]
    if settings.analytics_consumer:
        consumer = AnalyticsConsumer(db, analytics_handler)

        async def fold_events() -> None:
            await consumer.run(settings.kafka_bootstrap_servers, settings.kafka_security())

        background.append(fold_events)

    async def close() -> None:
        for peer_channel in peer_channels:
            await peer_channel.close()
        await producer.stop()
        await files.blobs.close()
        await client.close()

    return Service(server, background, close, servicer, files)


@asynccontextmanager
async def running(
    settings: ConversationSettings, clock: Clock | None = None, host: str = "127.0.0.1"
) -> AsyncIterator[int]:
    """Runs the service inside the current event loop (peers' tests); yields its port."""
    service = await build(settings, clock, host)
    port = await service.server.start()
    tasks = [asyncio.create_task(fn()) for fn in service.background]
    try:
        yield port
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await service.server.stop(0)
        await service.close()


async def main() -> None:
    settings = load_settings(ConversationSettings)
    setup_logging(SERVICE, settings.log_level)
    setup_tracing(SERVICE)
    serve_metrics(settings.metrics_port)
    service = await build(settings)
    try:
        await run_until_signal(service.server, service.background, settings.shutdown_grace_seconds)
    finally:
        await service.close()
