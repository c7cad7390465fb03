"""One channel and stub per peer service, opened in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from confab.bot.v1 import bot_pb2_grpc
from confab.conversation.v1 import conversation_pb2_grpc
from confab.notification.v1 import notification_pb2_grpc
from confab.presence.v1 import presence_pb2_grpc
from confab_core.grpcx.client import channel

if TYPE_CHECKING:
    from confab.bot.v1.bot_pb2_grpc import BotServiceAsyncStub
    from confab.conversation.v1.conversation_pb2_grpc import ConversationServiceAsyncStub
    from confab.notification.v1.notification_pb2_grpc import NotificationServiceAsyncStub
    from confab.presence.v1.presence_pb2_grpc import PresenceServiceAsyncStub


@dataclass
class Backends:
    conversation: ConversationServiceAsyncStub
    presence: PresenceServiceAsyncStub
    notification: NotificationServiceAsyncStub
    bot: BotServiceAsyncStub
    channels: list[grpc.aio.Channel]
    timeout: float

    @classmethod
    def open(
        cls, *, conversation: str, presence: str, notification: str, bot: str, timeout: float
    ) -> Backends:
        chans = [channel(conversation), channel(presence), channel(notification), channel(bot)]
        return cls(
            conversation=conversation_pb2_grpc.ConversationServiceStub(chans[0]),
            presence=presence_pb2_grpc.PresenceServiceStub(chans[1]),
            notification=notification_pb2_grpc.NotificationServiceStub(chans[2]),
            bot=bot_pb2_grpc.BotServiceStub(chans[3]),
            channels=chans,
            timeout=timeout,
        )

    async def close(self) -> None:
        for chan in self.channels:
            await chan.close()
