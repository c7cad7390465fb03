"""Real servers for the notification tests.

MongoDB (SecantusDB), Kafka, Redis and the presence service run as child
processes for the whole session; the conversation service runs in-process per
test (built like its app.py) against a fresh database; emails go to a real
SMTP server (aiosmtpd) that records them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from aiokafka import ConsumerRecord
from grpc_health.v1 import health_pb2, health_pb2_grpc

import conversation.app as conversation_app
from confab.conversation.v1 import conversation_pb2 as conv_pb
from confab.conversation.v1 import conversation_pb2_grpc as conv_grpc
from confab.notification.v1 import notification_pb2 as pb
from confab.notification.v1 import notification_pb2_grpc as pb_grpc
from confab.presence.v1 import presence_pb2 as presence_pb
from confab.presence.v1 import presence_pb2_grpc as presence_grpc
from confab_core import mongo
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
from confab_core.servicetoken import (
    CONVERSATION,
    GATEWAY,
    NOTIFICATION,
    PRESENCE,
    InternalAuth,
)
from confab_devservers import (
    ChildServer,
    KafkaServer,
    MongoServer,
    RedisServer,
    SmtpSink,
    dev_key_file,
)
from confab_devservers import free_port as devservers_free_port
from conversation.settings import ConversationSettings
from notification.clients.conversation import ConversationClient
from notification.clients.keys import key_client
from notification.clients.presence import PresenceClient
from notification.handlers.events import NotificationHandler
from notification.handlers.queries import NotificationQueries
from notification.mail import SmtpMailer
from notification.servicer import NotificationServicer
from notification.storage.db import Database

HOST = "127.0.0.1"
INTERNAL_KEY = "notification-tests-internal-key-32-bytes"
FROM_ADDRESS = "Confab <no-reply@confab.test>"


class PresenceProcess(ChildServer):
    """The real presence service, ``python -m presence``, ready when its health says so."""

    name = "presence"

    def __init__(self, workdir: Path, redis_url: str, kafka: str) -> None:
        super().__init__(workdir)
        self.port = devservers_free_port()
        self._env_vars = {
            "PRESENCE_REDIS_URL": redis_url,
            "PRESENCE_KAFKA_BOOTSTRAP_SERVERS": kafka,
            "PRESENCE_GRPC_PORT": str(self.port),
            "PRESENCE_INTERNAL_KEY": INTERNAL_KEY,
            # Only the notification service calls this presence, with the service
            # role, which never needs to ask the conversation service.
            "PRESENCE_CONVERSATION_ADDR": f"{HOST}:9",
            "OTEL_TRACES_EXPORTER": "none",
        }

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "presence"]

    def _env(self) -> dict[str, str]:
        return {**os.environ, **self._env_vars}

    def _probe(self, timeout: float) -> None:
        with grpc.insecure_channel(self.address) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            resp = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
            if resp.status != health_pb2.HealthCheckResponse.SERVING:
                raise RuntimeError(f"presence health is {resp.status}")


@dataclass(frozen=True)
class Servers:
    mongo_url: str
    kafka: str
    presence_addr: str


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    workdir = tmp_path_factory.mktemp("notification-servers")
    mongo_server = MongoServer(workdir / "mongo")
    kafka_server = KafkaServer(workdir / "kafka")
    redis_server = RedisServer(workdir / "redis")
    started: list[ChildServer] = []
    try:
        for server in (mongo_server, redis_server, kafka_server):
            server.start()
            started.append(server)
        presence = PresenceProcess(
            workdir / "presence", redis_server.url, kafka_server.bootstrap_servers
        )
        presence.start(timeout=120)
        started.append(presence)
        yield Servers(mongo_server.url, kafka_server.bootstrap_servers, presence.address)
    finally:
        for server in reversed(started):
            server.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@contextlib.contextmanager
def acting_as(caller: Caller) -> Iterator[None]:
    token = set_caller(caller)
    try:
        yield
    finally:
        reset_caller(token)


@pytest_asyncio.fixture
async def conversation_addr(servers: Servers) -> AsyncIterator[str]:
    """The real conversation service, with its outbox relay publishing to Kafka."""
    settings = ConversationSettings(
        internal_key=INTERNAL_KEY,
        mongo_url=servers.mongo_url,
        kafka_bootstrap_servers=servers.kafka,
        grpc_port=0,
        mongo_database=f"conv_{new_id()}",
        key_file=dev_key_file(),
        # No virus scanner here: new files would stay pending.
        clamd_required=False,
    )
    async with conversation_app.running(settings, host=HOST) as port:
        yield f"{HOST}:{port}"


@dataclass
class Stack:
    """The notification service's parts, wired to real peers, plus test helpers."""

    servers: Servers
    db: Database
    handler: NotificationHandler
    conversations: conv_grpc.ConversationServiceStub
    presence: presence_grpc.PresenceServiceStub
    notifications: pb_grpc.NotificationServiceStub
    events: EventOpener
    tenant_id: str = "t1"
    handled: list[ConsumerRecord[bytes, bytes]] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    acting_as = staticmethod(acting_as)

    def user(self, user_id: str, email: str = "", tenant_id: str = "") -> Caller:
        return Caller(
            tenant_id=tenant_id or self.tenant_id,
            user_id=user_id,
            roles=frozenset({"member"}),
            display_name=user_id.capitalize(),
            email=email,
        )

    async def eventually(
        self, probe: Callable[[], Any] | Callable[[], Awaitable[Any]], what: str, within: float = 60
    ) -> Any:
        return await eventually(probe, within, what)

    def make_handler(self, mailer: SmtpMailer) -> NotificationHandler:
        return NotificationHandler(
            self.db,
            self.handler._conversations,
            self.handler._presence,
            mailer,
            SystemClock(),
            FROM_ADDRESS,
            self.events,
        )

    async def register(self, caller: Caller) -> None:
        """Makes the conversation service store the caller's name and email.

        It learns profiles from the callers of writes (create, send), not of
        reads, so the user starts an assistant conversation of their own.
        """
        with acting_as(caller):
            await self.conversations.CreateConversation(
                conv_pb.CreateConversationRequest(kind=conv_pb.CONVERSATION_KIND_AI_ASSISTANT)
            )

    async def create(
        self, caller: Caller, kind: int, members: list[str], title: str = ""
    ) -> conv_pb.Conversation:
        with acting_as(caller):
            resp = await self.conversations.CreateConversation(
                conv_pb.CreateConversationRequest(kind=kind, title=title, member_ids=members)
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

    async def edit(
        self, caller: Caller, conversation_id: str, message_id: str, text: str
    ) -> conv_pb.Message:
        with acting_as(caller):
            resp = await self.conversations.EditMessage(
                conv_pb.EditMessageRequest(
                    conversation_id=conversation_id, message_id=message_id, text=text
                )
            )
        return resp.message

    async def delete(self, caller: Caller, conversation_id: str, message_id: str) -> None:
        with acting_as(caller):
            await self.conversations.DeleteMessage(
                conv_pb.DeleteMessageRequest(conversation_id=conversation_id, message_id=message_id)
            )

    async def mention_count(self, caller: Caller, conversation_id: str) -> int:
        with acting_as(caller):
            resp = await self.conversations.GetConversation(
                conv_pb.GetConversationRequest(conversation_id=conversation_id)
            )
        return resp.conversation.mention_count

    async def connect(self, caller: Caller) -> None:
        with acting_as(caller):
            await self.presence.Connect(
                presence_pb.ConnectRequest(connection_id=new_id(), gateway_id="gw-test")
            )

    async def list_notifications(self, caller: Caller, limit: int = 0) -> list[pb.Notification]:
        with acting_as(caller):
            resp = await self.notifications.ListNotifications(
                pb.ListNotificationsRequest(limit=limit)
            )
        return list(resp.notifications)

    async def start_consumer(self) -> None:
        """Runs the handler as the service does, in a consumer group of its own."""

        async def handle(record: ConsumerRecord[bytes, bytes]) -> None:
            await self.handler.handle_record(record)
            self.handled.append(record)

        ready = asyncio.Event()
        task = asyncio.create_task(
            consume_forever(
                bootstrap=self.servers.kafka,
                topics=[CONVERSATION_EVENTS_TOPIC],
                group_id=f"notification-test-{new_id()}",
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
        await wait_until_event(ready, task, 60)

    async def handled_message(
        self, message_id: str, within: float = 60
    ) -> ConsumerRecord[bytes, bytes]:
        """The consumed record of ``message_id``, once the handler has finished it."""

        async def find() -> ConsumerRecord[bytes, bytes] | None:
            for record in self.handled:
                event = await self.events.open(record)
                if event is not None and event.message_created.message.id == message_id:
                    return record
            return None

        return await eventually(find, within, f"message {message_id} handled")

    async def handled_event(
        self, payload: str, message_id: str, within: float = 60
    ) -> ConsumerRecord[bytes, bytes]:
        """The consumed record whose ``payload`` (e.g. "message_deleted") is about
        ``message_id``, once the handler has finished it."""

        async def find() -> ConsumerRecord[bytes, bytes] | None:
            for record in self.handled:
                event = await self.events.open(record)
                if event is None:
                    continue
                if (
                    event.WhichOneof("payload") == payload
                    and getattr(event, payload).message.id == message_id
                ):
                    return record
            return None

        return await eventually(find, within, f"{payload} of {message_id} handled")


async def wait_until_event(event: asyncio.Event, task: asyncio.Task[None], within: float) -> None:
    waiter = asyncio.create_task(event.wait())
    done, _ = await asyncio.wait({waiter, task}, timeout=within, return_when="FIRST_COMPLETED")
    if waiter not in done:
        waiter.cancel()
        if task in done:
            task.result()
        raise TimeoutError("consumer not ready in time")


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


@pytest_asyncio.fixture
async def stack(servers: Servers, conversation_addr: str, smtp: SmtpSink) -> AsyncIterator[Stack]:
    auth = InternalAuth(NOTIFICATION, INTERNAL_KEY.encode(), SystemClock())
    conversation_channel = channel(conversation_addr, auth, CONVERSATION)
    presence_channel = channel(servers.presence_addr, auth, PRESENCE)
    # The tenants' keys from the real KeyService, as the service gets them.
    keys = CachingKeySource(key_client(conversation_channel))
    events = EventOpener(keys, "notification-test")
    client = mongo.connect(servers.mongo_url, "notification-under-test")
    db = Database(client, f"notif_{new_id()}", keys)
    await db.ensure_indexes()
    handler = NotificationHandler(
        db,
        ConversationClient(conversation_channel),
        PresenceClient(presence_channel),
        SmtpMailer(host=smtp.host, port=smtp.port, timeout=5.0),
        SystemClock(),
        FROM_ADDRESS,
        events,
    )
    server = GrpcServer(0, auth, host=HOST)
    servicer = NotificationServicer(NotificationQueries(db))
    server.add(
        lambda s: pb_grpc.add_NotificationServiceServicer_to_server(servicer, s),
        pb.DESCRIPTOR.services_by_name["NotificationService"].full_name,
    )
    port = await server.start()
    # The gateway is who calls the notification service.
    gateway = InternalAuth(GATEWAY, INTERNAL_KEY.encode(), SystemClock())
    own_channel = channel(f"{HOST}:{port}", gateway, NOTIFICATION)
    stack = Stack(
        servers=servers,
        db=db,
        handler=handler,
        conversations=conv_grpc.ConversationServiceStub(conversation_channel),
        presence=presence_grpc.PresenceServiceStub(presence_channel),
        notifications=pb_grpc.NotificationServiceStub(own_channel),
        events=events,
        # Presence (Redis) lives for the whole session: a tenant of its own
        # keeps one test's connected users from being online in the next.
        tenant_id=f"t-{new_id()[:12]}",
    )
    try:
        yield stack
    finally:
        for task in stack._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await server.stop(0)
        for ch in (own_channel, conversation_channel, presence_channel):
            await ch.close()
        await client.close()
