"""Real servers for the bot tests.

MongoDB (SecantusDB) and Kafka run as child processes for the whole session;
the conversation service runs in-process per test (built like its app.py)
against a fresh database; the model is the fake OpenAI-compatible server,
spoken to through the real openai SDK.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
import pytest_asyncio
from aiokafka import ConsumerRecord

import conversation.app as conversation_app
from bot.agents import AgentDefaults
from bot.clients.botdata import BotDataClient
from bot.clients.conversation import ConversationClient
from bot.clients.keys import key_client
from bot.clients.support import SupportClient
from bot.handlers.replies import ReplyConfig, ReplyHandler
from bot.handlers.summaries import SummaryHandler
from bot.memory import BpeCounter
from bot.model import ChatModel, ClientPool, OpenAIChat, RetryPolicy
from bot.replier import PlainReplier
from bot.servicer import BotServicer
from confab.bot.v1 import bot_pb2 as pb
from confab.bot.v1 import bot_pb2_grpc as pb_grpc
from confab.conversation.v1 import conversation_pb2 as conv_pb
from confab.conversation.v1 import conversation_pb2_grpc as conv_grpc
from confab.conversation.v1 import events_pb2
from confab.conversation.v1 import settings_pb2 as spb
from confab_core.clock import SystemClock
from confab_core.crypto import CachingKeySource
from confab_core.grpcx.client import channel
from confab_core.grpcx.server import GrpcServer
from confab_core.identity import Caller, reset_caller, set_caller
from confab_core.ids import new_id
from confab_core.kafka import (
    CONVERSATION_EVENTS_TOPIC,
    consume_forever,
)
from confab_core.sealed_events import EventOpener
from confab_core.servicetoken import BOT, CONVERSATION, GATEWAY, InternalAuth
from confab_devservers import ChildServer, FakeOpenAI, KafkaServer, MongoServer, dev_key_file
from conversation.settings import ConversationSettings

HOST = "127.0.0.1"
INTERNAL_KEY = "bot-tests-internal-key-of-32-bytes-at-least"
BOT_AUTH = InternalAuth(BOT, INTERNAL_KEY.encode(), SystemClock())
GATEWAY_AUTH = InternalAuth(GATEWAY, INTERNAL_KEY.encode(), SystemClock())
SYSTEM_PROMPT = "You are the Confab test assistant."


@dataclass(frozen=True)
class Servers:
    mongo_url: str
    kafka: str


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    workdir = tmp_path_factory.mktemp("bot-servers")
    mongo_server = MongoServer(workdir / "mongo")
    kafka_server = KafkaServer(workdir / "kafka")
    started: list[ChildServer] = []
    try:
        for server in (mongo_server, kafka_server):
            server.start()
            started.append(server)
        yield Servers(mongo_server.url, kafka_server.bootstrap_servers)
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@contextlib.contextmanager
def acting_as(caller: Caller) -> Iterator[None]:
    token = set_caller(caller)
    try:
        yield
    finally:
        reset_caller(token)


@pytest.fixture
def conversation_db() -> str:
    return f"conv_{new_id()}"


@pytest_asyncio.fixture
async def conversation_addr(servers: Servers, conversation_db: str) -> AsyncIterator[str]:
    """The real conversation service, with its outbox relay publishing to Kafka."""
    settings = ConversationSettings(
        internal_key=INTERNAL_KEY,
        mongo_url=servers.mongo_url,
        kafka_bootstrap_servers=servers.kafka,
        grpc_port=0,
        mongo_database=conversation_db,
        key_file=dev_key_file(),
        # No virus scanner here: new files would stay pending.
        clamd_required=False,
    )
    async with conversation_app.running(settings, host=HOST) as port:
        yield f"{HOST}:{port}"


async def eventually(
    probe: Callable[[], Any] | Callable[[], Awaitable[Any]], within: float, what: str
) -> Any:
    """Polls ``probe`` until it returns something truthy, or fails after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class LocalSettings:
    """The tenant settings the test configured. Until the conversation service
    serves SettingsService (engineer `settings`), the bot's TenantSettingsSource
    is fed from here and the same agents are written to the tenant_settings
    document the conversation service reads."""

    def __init__(self, by_tenant: dict[str, spb.TenantSettings]) -> None:
        self._by_tenant = by_tenant

    async def get(self, tenant_id: str) -> spb.TenantSettings:
        return self._by_tenant.get(tenant_id, spb.TenantSettings())


@dataclass
class Stack:
    """The bot's parts, wired to a real conversation service, plus test helpers."""

    servers: Servers
    fake: FakeOpenAI
    conversations: conv_grpc.ConversationServiceStub
    client: ConversationClient
    events: EventOpener
    channel: grpc.aio.Channel
    database: str
    tenant_id: str = "t1"
    # Tenant settings as the bot sees them (see LocalSettings).
    tenant_settings: dict[str, spb.TenantSettings] = field(default_factory=dict)
    handled: list[ConsumerRecord[bytes, bytes]] = field(default_factory=list)
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    system_prompt = SYSTEM_PROMPT
    acting_as = staticmethod(acting_as)

    def user(self, user_id: str, tenant_id: str = "") -> Caller:
        return Caller(
            tenant_id=tenant_id or self.tenant_id,
            user_id=user_id,
            roles=frozenset({"member"}),
            display_name=user_id.capitalize(),
        )

    def model(self, *, max_retries: int = 2, allowed: frozenset[str] = frozenset()) -> OpenAIChat:
        clients = ClientPool(self.fake.base_url, "test-key", 10.0, allowed)
        self._closers.append(clients.close)
        # No backoff: the tests count attempts, not seconds.
        return OpenAIChat(clients, "test-model", RetryPolicy(max_retries + 1, 0.0, 0.0))

    def botdata(self) -> BotDataClient:
        return BotDataClient(self.channel)

    def replies(
        self,
        *,
        configured: bool = True,
        max_retries: int = 2,
        token_budget: int = 4000,
        memory_refresh_tokens: int = 1000,
        handoff_after_turns: int = 5,
        model: ChatModel | None = None,
    ) -> ReplyHandler:
        if model is None and configured:
            model = self.model(max_retries=max_retries)
        return ReplyHandler(
            conversations=self.client,
            support=SupportClient(self.channel),
            botdata=self.botdata(),
            settings=LocalSettings(self.tenant_settings),
            model=model,
            replier=None if model is None else PlainReplier(self.client, model),
            counter=BpeCounter(),
            config=ReplyConfig(
                defaults=AgentDefaults(
                    display_name="Confab Assistant",
                    system_prompt=SYSTEM_PROMPT,
                    token_budget=token_budget,
                    max_reply_tokens=800,
                    handoff_after_turns=handoff_after_turns,
                ),
                history_messages=100,
                memory_refresh_tokens=memory_refresh_tokens,
            ),
            events=self.events,
        )

    async def serve_bot(self, *, configured: bool = True) -> pb_grpc.BotServiceStub:
        """BotService on its own port, as app.py serves it."""
        server = GrpcServer(0, BOT_AUTH, host=HOST)
        servicer = BotServicer(
            SummaryHandler(
                self.client,
                self.model() if configured else None,
                max_messages=100,
                botdata=self.botdata(),
                settings=LocalSettings(self.tenant_settings),
            )
        )
        server.add(
            lambda s: pb_grpc.add_BotServiceServicer_to_server(servicer, s),
            pb.DESCRIPTOR.services_by_name["BotService"].full_name,
        )
        port = await server.start()
        # The gateway is who calls the bot service.
        ch = channel(f"{HOST}:{port}", GATEWAY_AUTH, BOT)

        async def close() -> None:
            await ch.close()
            await server.stop(0)

        self._closers.append(close)
        return pb_grpc.BotServiceStub(ch)

    async def create(
        self, caller: Caller, kind: int, members: list[str] | None = None, title: str = ""
    ) -> conv_pb.Conversation:
        with acting_as(caller):
            resp = await self.conversations.CreateConversation(
                conv_pb.CreateConversationRequest(kind=kind, title=title, member_ids=members or [])
            )
        return resp.conversation

    async def send(self, caller: Caller, conversation_id: str, text: str) -> conv_pb.Message:
        with acting_as(caller):
            resp = await self.conversations.SendMessage(
                conv_pb.SendMessageRequest(
                    conversation_id=conversation_id, client_msg_id=new_id(), text=text
                )
            )
        return resp.message

    async def messages(self, caller: Caller, conversation_id: str) -> list[conv_pb.Message]:
        with acting_as(caller):
            resp = await self.conversations.ListMessages(
                conv_pb.ListMessagesRequest(conversation_id=conversation_id, limit=100)
            )
        return list(resp.messages)

    async def bot_messages(self, caller: Caller, conversation_id: str) -> list[conv_pb.Message]:
        return [
            m
            for m in await self.messages(caller, conversation_id)
            if m.kind == conv_pb.MESSAGE_KIND_BOT
        ]

    async def eventually(
        self, probe: Callable[[], Any] | Callable[[], Awaitable[Any]], what: str, within: float = 60
    ) -> Any:
        return await eventually(probe, within, what)

    def event_for(
        self, message: conv_pb.Message, kind: int, tenant_id: str = ""
    ) -> events_pb2.ConversationEvent:
        """The event the conversation service publishes for ``message``."""
        return events_pb2.ConversationEvent(
            event_id=f"evt-{message.id}",
            tenant_id=tenant_id or self.tenant_id,
            conversation_id=message.conversation_id,
            actor_id=message.sender_id,
            message_created=events_pb2.MessageCreated(message=message, conversation_kind=kind),
        )

    async def start_consumer(self, handler: ReplyHandler) -> None:
        """Runs ``handler`` as the service does, in a consumer group of its own."""

        async def handle(record: ConsumerRecord[bytes, bytes]) -> None:
            await handler.handle_record(record)
            self.handled.append(record)

        ready = asyncio.Event()
        task = asyncio.create_task(
            consume_forever(
                bootstrap=self.servers.kafka,
                topics=[CONVERSATION_EVENTS_TOPIC],
                group_id=f"bot-test-{new_id()}",
                handler=handle,
                # From the earliest offset, like the service: a rebalance before
                # the first commit would otherwise skip to the log end. Older
                # tests' events name conversations this test's database lacks,
                # so the handler skips them.
                ready=ready,
                retry_delay=0.1,
            )
        )
        self._tasks.append(task)
        waiter = asyncio.create_task(ready.wait())
        done, _ = await asyncio.wait({waiter, task}, timeout=60, return_when="FIRST_COMPLETED")
        if waiter not in done:
            waiter.cancel()
            if task in done:
                task.result()
            raise TimeoutError("consumer not ready in time")

    async def handled_message(self, message_id: str) -> ConsumerRecord[bytes, bytes]:
        """The consumed record of ``message_id``, once the handler has finished it."""

        async def find() -> ConsumerRecord[bytes, bytes] | None:
            for record in self.handled:
                event = await self.events.open(record)
                if event is not None and event.message_created.message.id == message_id:
                    return record
            return None

        return await eventually(find, 60, f"message {message_id} handled")


@pytest_asyncio.fixture
async def stack(
    servers: Servers, conversation_addr: str, conversation_db: str, fake_openai: FakeOpenAI
) -> AsyncIterator[Stack]:
    conversation_channel = channel(conversation_addr, BOT_AUTH, CONVERSATION)
    stack = Stack(
        servers=servers,
        fake=fake_openai,
        conversations=conv_grpc.ConversationServiceStub(conversation_channel),
        client=ConversationClient(conversation_channel),
        channel=conversation_channel,
        database=conversation_db,
        # Sealed events opened with keys from the real KeyService, as the service does.
        events=EventOpener(CachingKeySource(key_client(conversation_channel)), "bot-test"),
    )
    try:
        yield stack
    finally:
        for task in stack._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for close in reversed(stack._closers):
            await close()
        await conversation_channel.close()
