"""One channel and typed client per peer service, opened in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from confab.bot.v1 import bot_pb2_grpc, stream_pb2_grpc
from confab.conversation.v1 import (
    analytics_pb2_grpc,
    assignment_pb2_grpc,
    botdata_pb2_grpc,
    canned_pb2_grpc,
    conversation_pb2_grpc,
    files_pb2_grpc,
    governance_pb2_grpc,
    jobs_pb2_grpc,
    keys_pb2_grpc,
    platform_pb2_grpc,
    policy_pb2_grpc,
    settings_pb2_grpc,
    sla_pb2_grpc,
    support_admin_pb2_grpc,
    support_pb2_grpc,
)
from confab.notification.v1 import notification_pb2_grpc
from confab.presence.v1 import presence_pb2_grpc
from confab_core.grpcx.client import channel
from confab_core.servicetoken import BOT, CONVERSATION, NOTIFICATION, PRESENCE, InternalAuth
from gateway.clients.analytics import AnalyticsClient
from gateway.clients.assignment import AssignmentClient
from gateway.clients.bot import BotClient, BotStreamClient
from gateway.clients.botdata import BotDataClient
from gateway.clients.canned import CannedClient
from gateway.clients.conversation import ConversationClient
from gateway.clients.files import FileClient
from gateway.clients.governance import AuditClient, ModerationClient
from gateway.clients.jobs import JobClient
from gateway.clients.keys import KeyClient
from gateway.clients.notification import NotificationClient
from gateway.clients.platform import PlatformClient
from gateway.clients.policy import PolicyClient
from gateway.clients.presence import PresenceClient
from gateway.clients.settings import SettingsClient
from gateway.clients.sla import SlaClient
from gateway.clients.support import SupportAdminClient, SupportClient


@dataclass
class Backends:
    conversation: ConversationClient
    presence: PresenceClient
    notification: NotificationClient
    bot: BotClient
    policy: PolicyClient
    audit: AuditClient
    moderation: ModerationClient
    keys: KeyClient
    jobs: JobClient
    sla: SlaClient
    canned: CannedClient
    support: SupportClient
    support_admin: SupportAdminClient
    analytics: AnalyticsClient
    platform: PlatformClient
    channels: list[grpc.aio.Channel]
    assignment: AssignmentClient
    bot_data: BotDataClient
    bot_streams: BotStreamClient
    settings: SettingsClient
    files: FileClient

    @classmethod
    def open(
        cls,
        auth: InternalAuth,
        *,
        conversation: str,
        presence: str,
        notification: str,
        bot: str,
        timeout: float,
        transfer_timeout: float = 3600.0,
    ) -> Backends:
        chans = [
            channel(conversation, auth, CONVERSATION),
            channel(presence, auth, PRESENCE),
            channel(notification, auth, NOTIFICATION),
            channel(bot, auth, BOT),
        ]
        return cls(
            conversation=ConversationClient(
                conversation_pb2_grpc.ConversationServiceStub(chans[0]), timeout
            ),
            presence=PresenceClient(presence_pb2_grpc.PresenceServiceStub(chans[1]), timeout),
            notification=NotificationClient(
                notification_pb2_grpc.NotificationServiceStub(chans[2]), timeout
            ),
            bot=BotClient(bot_pb2_grpc.BotServiceStub(chans[3]), timeout),
            policy=PolicyClient(policy_pb2_grpc.PolicyServiceStub(chans[0]), timeout),
            audit=AuditClient(governance_pb2_grpc.AuditServiceStub(chans[0]), timeout),
            moderation=ModerationClient(
                governance_pb2_grpc.ModerationServiceStub(chans[0]), timeout
            ),
            keys=KeyClient(keys_pb2_grpc.KeyServiceStub(chans[0]), timeout),
            jobs=JobClient(jobs_pb2_grpc.JobServiceStub(chans[0]), timeout),
            sla=SlaClient(sla_pb2_grpc.SlaServiceStub(chans[0]), timeout),
            canned=CannedClient(
                canned_pb2_grpc.CannedReplyServiceStub(chans[0]),
                canned_pb2_grpc.SupportProfileServiceStub(chans[0]),
                timeout,
            ),
            support=SupportClient(support_pb2_grpc.SupportServiceStub(chans[0]), timeout),
            support_admin=SupportAdminClient(
                support_admin_pb2_grpc.SupportAdminServiceStub(chans[0]), timeout
            ),
            analytics=AnalyticsClient(analytics_pb2_grpc.AnalyticsServiceStub(chans[0]), timeout),
            platform=PlatformClient(platform_pb2_grpc.PlatformServiceStub(chans[0]), timeout),
            channels=chans,
            assignment=AssignmentClient(
                assignment_pb2_grpc.AssignmentServiceStub(chans[0]), timeout
            ),
            bot_data=BotDataClient(botdata_pb2_grpc.BotDataServiceStub(chans[0]), timeout),
            bot_streams=BotStreamClient(stream_pb2_grpc.BotStreamServiceStub(chans[3]), timeout),
            settings=SettingsClient(settings_pb2_grpc.SettingsServiceStub(chans[0]), timeout),
            files=FileClient(files_pb2_grpc.FileServiceStub(chans[0]), timeout, transfer_timeout),
        )

    async def close(self) -> None:
        for chan in self.channels:
            await chan.close()
