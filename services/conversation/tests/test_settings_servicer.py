"""SettingsService over a real loopback gRPC connection with the production
interceptors: translation both ways, the stable error codes, who reads what,
and the relay publishing the change event keyed by the tenant."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from confab.conversation.v1 import settings_pb2 as pb
from confab.conversation.v1 import settings_pb2_grpc as pb_grpc
from confab_core.clock import SystemClock
from confab_core.errors import ERROR_CODE_METADATA_KEY
from confab_core.grpcx.client import channel
from confab_core.grpcx.server import GrpcServer
from confab_core.identity import (
    PLATFORM_TENANT_ID,
    ROLE_MEMBER,
    ROLE_SERVICE,
    ROLE_SUPER_ADMIN,
    ROLE_TENANT_ADMIN,
    Caller,
    reset_caller,
    set_caller,
)
from confab_core.kafka import Producer, TopicSpec, ensure_topics
from confab_core.servicetoken import BOT, CONVERSATION, GATEWAY, InternalAuth
from confab_core.tenant_settings import (
    TENANT_SETTINGS_TOPIC,
    TenantSettingsCache,
    settings_consumer,
)
from confab_devservers import KafkaServer
from conversation.handlers.audit import AuditTrail
from conversation.handlers.tenant_settings import SettingsHandler
from conversation.handlers.unit import UnitOfWork
from conversation.relay import OutboxRelay
from conversation.settings_servicer import SettingsServicer

from .conftest import TENANT_A, TENANT_B, user

pytestmark = pytest.mark.asyncio

KEY = b"conversation-tests-internal-key-32b"
AUTH = InternalAuth(CONVERSATION, KEY, SystemClock())
GATEWAY_AUTH = InternalAuth(GATEWAY, KEY, SystemClock())
BOT_AUTH = InternalAuth(BOT, KEY, SystemClock())
ROOT = user("root", TENANT_A, ROLE_MEMBER, ROLE_TENANT_ADMIN)
ROOT_B = user("root", TENANT_B, ROLE_MEMBER, ROLE_TENANT_ADMIN)
MIA = user("mia")
STAFF = user("pf", PLATFORM_TENANT_ID, ROLE_SUPER_ADMIN)
BOT_CALLER = user("confab-bot", TENANT_A, ROLE_SERVICE)


@pytest_asyncio.fixture
async def stubs(
    unit: UnitOfWork, wakeup: asyncio.Event
) -> AsyncIterator[tuple[pb_grpc.SettingsServiceStub, pb_grpc.SettingsServiceStub]]:
    server = GrpcServer(0, AUTH, host="127.0.0.1")
    handler = SettingsHandler(
        unit.database, unit.clock, AuditTrail(unit.database, unit.clock), wakeup
    )
    servicer = SettingsServicer(handler)
    server.add(
        lambda s: pb_grpc.add_SettingsServiceServicer_to_server(servicer, s),
        pb.DESCRIPTOR.services_by_name["SettingsService"].full_name,
    )
    port = await server.start()
    gateway = channel(f"127.0.0.1:{port}", GATEWAY_AUTH, CONVERSATION)
    bot = channel(f"127.0.0.1:{port}", BOT_AUTH, CONVERSATION)
    try:
        yield pb_grpc.SettingsServiceStub(gateway), pb_grpc.SettingsServiceStub(bot)
    finally:
        await gateway.close()
        await bot.close()
        await server.stop(0)


@contextlib.contextmanager
def acting(caller: Caller) -> Iterator[None]:
    token = set_caller(caller)
    try:
        yield
    finally:
        reset_caller(token)


def code(err: grpc.aio.AioRpcError) -> str | None:
    return next(
        (str(v) for k, v in err.trailing_metadata() or () if k == ERROR_CODE_METADATA_KEY), None
    )


SETTINGS = pb.TenantSettings(
    branding=pb.Branding(display_name="Acme", primary_color="#000000", welcome_message="Hi"),
    agents=[
        pb.BotAgent(
            id="helper",
            display_name="Helper",
            role=pb.AGENT_ROLE_SUPPORT,
            system_prompt="Be kind",
            temperature=0.5,
            enabled=True,
            topics=pb.Topics(forbidden=[pb.TopicRule(name="law", keywords=["lawsuit"])]),
        ),
        pb.BotAgent(id="hidden", role=pb.AGENT_ROLE_PICKABLE, enabled=False),
    ],
    ticket_categories=["billing"],
    role_permissions=[pb.RolePermissions(role="member", permissions=["chat.create_direct"])],
)


async def test_round_trip_codes_and_the_public_part(
    stubs: tuple[pb_grpc.SettingsServiceStub, pb_grpc.SettingsServiceStub],
) -> None:
    stub, bot = stubs
    with acting(ROOT):
        first = (await stub.GetSettings(pb.GetSettingsRequest(), timeout=10)).settings
        assert first.version == 0 and first.canned_replies_path == "/api/v1/canned-replies"
        assert [r.role for r in first.role_permissions] == ["member", "agent", "tenant_admin"]
        saved = (
            await stub.UpdateSettings(
                pb.UpdateSettingsRequest(settings=SETTINGS, expected_version=0), timeout=10
            )
        ).settings
        assert saved.version == 1 and saved.updated_by == "root" and saved.HasField("updated_at")
        assert saved.agents[0].topics.forbidden[0].keywords == ["lawsuit"]
        assert saved.agents[0].role == pb.AGENT_ROLE_SUPPORT
        assert list(saved.role_permissions[0].permissions) == ["chat.create_direct"]
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.UpdateSettings(
                pb.UpdateSettingsRequest(settings=SETTINGS, expected_version=0), timeout=10
            )
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert code(err.value) == "version_mismatch"
        bad = pb.TenantSettings()
        bad.CopyFrom(SETTINGS)
        bad.agents[1].role = pb.AGENT_ROLE_SUPPORT
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.UpdateSettings(
                pb.UpdateSettingsRequest(
                    settings=bad, sections=[pb.SETTINGS_SECTION_AGENTS], expected_version=1
                ),
                timeout=10,
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert code(err.value) == "two_support_agents"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.UpdateSettings(
                pb.UpdateSettingsRequest(settings=SETTINGS, sections=[42], expected_version=1),
                timeout=10,
            )
        assert code(err.value) == "invalid_section"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetSettings(pb.GetSettingsRequest(tenant_id=TENANT_B), timeout=10)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetServiceSettings(pb.GetServiceSettingsRequest(), timeout=10)
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with acting(MIA):
        public = (await stub.GetPublicSettings(pb.GetPublicSettingsRequest(), timeout=10)).settings
        assert public.version == 1 and public.branding.welcome_message == "Hi"
        assert [(a.id, a.user_id, a.role) for a in public.agents] == [
            ("helper", "confab-bot:helper", pb.AGENT_ROLE_SUPPORT)
        ]
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetSettings(pb.GetSettingsRequest(), timeout=10)
        assert code(err.value) == "forbidden"
    with acting(BOT_CALLER):
        service = (
            await bot.GetServiceSettings(pb.GetServiceSettingsRequest(), timeout=10)
        ).settings
        assert service.agents[0].system_prompt == "Be kind"
    with acting(ROOT_B):
        theirs = (await stub.GetSettings(pb.GetSettingsRequest(), timeout=10)).settings
        assert theirs.version == 0 and not theirs.agents
    with acting(STAFF):
        quota = pb.TenantSettings(ai_quota=pb.AiQuota(monthly_tokens=5000))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.UpdateSettings(
                pb.UpdateSettingsRequest(
                    settings=quota, sections=[pb.SETTINGS_SECTION_AI_QUOTA], expected_version=1
                ),
                timeout=10,
            )
        assert code(err.value) == "invalid_tenant_id"
        done = (
            await stub.UpdateSettings(
                pb.UpdateSettingsRequest(
                    settings=quota,
                    sections=[pb.SETTINGS_SECTION_AI_QUOTA],
                    expected_version=1,
                    tenant_id=TENANT_A,
                ),
                timeout=10,
            )
        ).settings
        assert done.ai_quota.monthly_tokens == 5000 and done.branding.display_name == "Acme"


async def test_the_relay_publishes_the_change_keyed_by_tenant(
    stubs: tuple[pb_grpc.SettingsServiceStub, pb_grpc.SettingsServiceStub],
    unit: UnitOfWork,
    kafka_server: KafkaServer,
    wakeup: asyncio.Event,
) -> None:
    bootstrap = kafka_server.bootstrap_servers
    await ensure_topics(bootstrap, [TopicSpec(TENANT_SETTINGS_TOPIC)])
    consumer = AIOKafkaConsumer(
        TENANT_SETTINGS_TOPIC,
        bootstrap_servers=bootstrap,
        group_id=f"test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    producer = Producer(bootstrap)
    try:
        stub, _ = stubs
        with acting(ROOT):
            await stub.UpdateSettings(
                pb.UpdateSettingsRequest(
                    settings=SETTINGS,
                    sections=[pb.SETTINGS_SECTION_BRANDING],
                    expected_version=0,
                ),
                timeout=10,
            )
        assert wakeup.is_set()
        relay = OutboxRelay(
            unit.database,
            producer,
            unit.clock,
            wakeup,
            batch_size=100,
            poll_seconds=0.05,
            lease_seconds=10.0,
        )
        assert await relay.publish_once() == 1
        async with asyncio.timeout(30):
            while True:
                record = await consumer.getone()
                if record.key == TENANT_A.encode():
                    break
        event = pb.TenantSettingsChanged.FromString(record.value or b"")
        assert (event.tenant_id, event.version) == (TENANT_A, 1)
        assert list(event.sections) == [pb.SETTINGS_SECTION_BRANDING]
    finally:
        await consumer.stop()
        await producer.stop()


class Observed(TenantSettingsCache):
    """The real cache, announcing each tenant an event named."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handled: asyncio.Queue[bytes] = asyncio.Queue()

    async def handle_record(self, record: ConsumerRecord[bytes, bytes]) -> None:
        await super().handle_record(record)
        self.handled.put_nowait(record.key or b"")


async def test_a_service_cache_sees_a_change_through_the_relay(
    stubs: tuple[pb_grpc.SettingsServiceStub, pb_grpc.SettingsServiceStub],
    unit: UnitOfWork,
    kafka_server: KafkaServer,
    wakeup: asyncio.Event,
) -> None:
    stub, bot = stubs

    async def load(tenant_id: str) -> pb.TenantSettings:
        with acting(user("confab-bot", tenant_id, ROLE_SERVICE)):
            return (
                await bot.GetServiceSettings(pb.GetServiceSettingsRequest(), timeout=10)
            ).settings

    cache = Observed(load, unit.clock)
    ready = asyncio.Event()
    consumer = asyncio.create_task(
        settings_consumer(
            cache,
            bootstrap=kafka_server.bootstrap_servers,
            group_id=f"pod-{uuid.uuid4().hex[:8]}",
            ready=ready,
        )
    )
    producer = Producer(kafka_server.bootstrap_servers)
    relay = OutboxRelay(
        unit.database,
        producer,
        unit.clock,
        wakeup,
        batch_size=100,
        poll_seconds=0.05,
        lease_seconds=10.0,
    )
    try:
        async with asyncio.timeout(30):
            await ready.wait()
            assert (await cache.get(TENANT_A)).version == 0
            assert (await cache.get(TENANT_B)).version == 0
            with acting(ROOT):
                await stub.UpdateSettings(
                    pb.UpdateSettingsRequest(settings=SETTINGS, expected_version=0), timeout=10
                )
            started = time.monotonic()
            assert await relay.publish_once() == 1
            while await cache.handled.get() != TENANT_A.encode():
                pass
            seen = await cache.get(TENANT_A)
            assert time.monotonic() - started < 1.0
            assert seen.version == 1 and seen.agents[0].system_prompt == "Be kind"
            assert (await cache.get(TENANT_B)).version == 0
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await producer.stop()
