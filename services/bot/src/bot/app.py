"""Builds the bot service from its settings and runs it."""

from __future__ import annotations

import logging
import socket

from bot.agents import AgentDefaults
from bot.clients.botdata import BotDataClient
from bot.clients.conversation import ConversationClient
from bot.clients.keys import key_client
from bot.clients.policy import PolicyReader
from bot.clients.settings import SettingsClient, load_as_bot
from bot.clients.support import SupportClient
from bot.handlers.replies import ReplyConfig, ReplyHandler
from bot.handlers.summaries import SummaryHandler
from bot.memory import BpeCounter
from bot.model import ClientPool, MaskingChat, client_pool, model_from
from bot.replier import MaskingReplier, PlainReplier, Replier
from bot.servicer import BotServicer
from bot.settings import BotSettings
from bot.stream_servicer import BotStreamServicer
from bot.streaming import ReplyStreamer, StreamPublisher, StreamSettings
from confab.bot.v1 import bot_pb2, bot_pb2_grpc, stream_pb2, stream_pb2_grpc
from confab_core.clock import SystemClock
from confab_core.crypto import CachingKeySource
from confab_core.grpcx.client import channel
from confab_core.grpcx.server import GrpcServer, run_until_signal
from confab_core.ids import new_id
from confab_core.kafka import (
    BOT_STREAM_CONTROL_TOPIC,
    CONVERSATION_EVENTS_TOPIC,
    Producer,
    consume_forever,
)
from confab_core.logs import setup_logging
from confab_core.metrics import serve_metrics
from confab_core.sealed_events import EventOpener
from confab_core.servicetoken import CONVERSATION
from confab_core.settings import internal_auth, load_settings
from confab_core.telemetry import setup_tracing
from confab_core.tenant_settings import TenantSettingsCache, settings_consumer

log = logging.getLogger(__name__)

SERVICE = "bot"
CONSUMER_GROUP = "bot"


def reply_config(settings: BotSettings) -> ReplyConfig:
    return ReplyConfig(
        defaults=AgentDefaults(
            display_name=settings.display_name,
            system_prompt=settings.system_prompt,
            token_budget=settings.token_budget,
            max_reply_tokens=settings.max_reply_tokens,
            handoff_after_turns=settings.handoff_after_turns,
        ),
        history_messages=settings.history_messages,
        memory_refresh_tokens=settings.memory_refresh_tokens,
    )


async def main() -> None:
    settings = load_settings(BotSettings)
    setup_logging(SERVICE, settings.log_level)
    setup_tracing(SERVICE)
    serve_metrics(settings.metrics_port)

    pool = client_pool(settings)
    base_model = None if pool is None else model_from(settings, pool)
    if base_model is None:
        # Not fatal: the rest of the fleet works, and users are told in-chat.
        log.warning(
            "no AI model configured (BOT_OPENAI_BASE_URL / BOT_OPENAI_API_KEY); "
            "the bot will reply that it is not configured"
        )
    auth = internal_auth(SERVICE, settings, SystemClock())
    conversation_channel = channel(settings.conversation_addr, auth, CONVERSATION)
    conversations = ConversationClient(conversation_channel, settings.peer_timeout_seconds)
    policies = PolicyReader(conversation_channel, SystemClock(), settings.peer_timeout_seconds)
    model = None if base_model is None else MaskingChat(base_model, policies)
    keys = CachingKeySource(
        key_client(conversation_channel, settings.peer_timeout_seconds),
        ttl_seconds=settings.key_cache_seconds,
    )
    timeout = settings.peer_timeout_seconds
    settings_client = SettingsClient(conversation_channel, timeout)
    tenant_settings = TenantSettingsCache(
        lambda tenant_id: load_as_bot(settings_client, tenant_id),
        SystemClock(),
        max_age_seconds=settings.settings_cache_seconds,
    )
    botdata = BotDataClient(conversation_channel, timeout)
    producer = Producer(settings.kafka_bootstrap_servers, settings.kafka_security())
    publisher = StreamPublisher(producer, keys)
    # Without a model nothing streams, but cancels and snapshots still get answers.
    streamer = ReplyStreamer(
        conversations,
        pool or ClientPool("", "", settings.request_timeout_seconds),
        publisher,
        stream_settings(settings),
    )
    replier: Replier | None = None
    if model is not None:
        replier = (
            MaskingReplier(streamer, policies)
            if settings.stream_replies
            else PlainReplier(conversations, model)
        )
    replies = ReplyHandler(
        conversations=conversations,
        support=SupportClient(conversation_channel, timeout),
        botdata=botdata,
        settings=tenant_settings,
        model=model,
        replier=replier,
        counter=BpeCounter(),
        config=reply_config(settings),
        events=EventOpener(keys, CONSUMER_GROUP),
    )

    async def control() -> None:
        # A group per pod, from latest: every pod hears every cancel, and only
        # live ones matter.
        await consume_forever(
            bootstrap=settings.kafka_bootstrap_servers,
            security=settings.kafka_security(),
            topics=[BOT_STREAM_CONTROL_TOPIC],
            group_id=f"bot-control-{new_id()}",
            handler=streamer.handle_control,
            from_latest=True,
        )

    async def consume() -> None:
        await consume_forever(
            bootstrap=settings.kafka_bootstrap_servers,
            security=settings.kafka_security(),
            topics=[CONVERSATION_EVENTS_TOPIC],
            group_id=CONSUMER_GROUP,
            handler=replies.handle_record,
        )

    async def follow_settings() -> None:
        # Every pod forgets a changed tenant's settings: a group of its own.
        await settings_consumer(
            tenant_settings,
            bootstrap=settings.kafka_bootstrap_servers,
            security=settings.kafka_security(),
            group_id=f"{CONSUMER_GROUP}-settings-{socket.gethostname()}-{new_id()[:8]}",
        )

    server = GrpcServer(settings.grpc_port, auth, health_port=settings.grpc_health_port)
    servicer = BotServicer(
        SummaryHandler(
            conversations,
            model,
            max_messages=settings.summary_messages,
            botdata=botdata,
            settings=tenant_settings,
        )
    )
    server.add(
        lambda s: bot_pb2_grpc.add_BotServiceServicer_to_server(servicer, s),
        bot_pb2.DESCRIPTOR.services_by_name["BotService"].full_name,
    )
    stream_servicer = BotStreamServicer(conversations, streamer, publisher)
    server.add(
        lambda s: stream_pb2_grpc.add_BotStreamServiceServicer_to_server(stream_servicer, s),
        stream_pb2.DESCRIPTOR.services_by_name["BotStreamService"].full_name,
    )
    try:
        await run_until_signal(
            server, [consume, control, follow_settings], settings.shutdown_grace_seconds
        )
    finally:
        await producer.stop()
        await conversation_channel.close()
        if base_model is not None:
            await base_model.close()


def stream_settings(settings: BotSettings) -> StreamSettings:
    return StreamSettings(
        model=settings.model,
        coalesce_seconds=settings.stream_coalesce_seconds,
        coalesce_tokens=settings.stream_coalesce_tokens,
        idle_timeout_seconds=settings.stream_idle_timeout_seconds,
        first_token_timeout_seconds=settings.stream_first_token_timeout_seconds,
        attempts=settings.stream_attempts,
        backoff_initial_seconds=settings.stream_backoff_initial_seconds,
        backoff_max_seconds=settings.stream_backoff_max_seconds,
    )
