"""The bot's data as tenant data: exported with its conversation, gone with it
(deletion, retention), gone when a member is erased, gone with the tenant; and
BotDataService over real gRPC, called the way the bot calls it."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from confab.conversation.v1 import botdata_pb2 as bpb
from confab.conversation.v1 import botdata_pb2_grpc as bpb_grpc
from confab_core import mongo
from confab_core.clock import FakeClock, SystemClock
from confab_core.crypto import LocalKeyFileProvider, blob_key_id
from confab_core.grpcx.client import channel
from confab_core.grpcx.server import GrpcServer
from confab_core.identity import (
    PLATFORM_TENANT_ID,
    ROLE_MEMBER,
    ROLE_SERVICE,
    ROLE_SUPER_ADMIN,
    ROLE_TENANT_ADMIN,
)
from confab_core.servicetoken import BOT, CONVERSATION, GATEWAY, InternalAuth
from confab_devservers import MongoServer
from conversation.botdata_servicer import BotDataServicer
from conversation.handlers.audit import AuditTrail
from conversation.handlers.botdata import BotDataHandler
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.jobs import JobHandler
from conversation.handlers.keys import KeyHandler
from conversation.handlers.messages import MessageHandler
from conversation.handlers.unit import UnitOfWork
from conversation.jobs import erasure, export
from conversation.jobs.policy import ERASE_DELETE, Retention
from conversation.jobs.retention import RetentionScheduler
from conversation.jobs.runner import JobKind, JobRunner
from conversation.reencrypt import ReencryptRunner
from conversation.storage.db import TENANT_COLLECTIONS, Database

from .conftest import ALICE, BOB, TENANT_A, TENANT_B, create, send, user
from .files_support import reaper
from .test_servicer import As, trailing_code

pytestmark = pytest.mark.asyncio

ADMIN = user("root", TENANT_A, ROLE_MEMBER, ROLE_TENANT_ADMIN)
SUPER = user("staff", PLATFORM_TENANT_ID, ROLE_SUPER_ADMIN)
BOT_A = user("confab-bot", TENANT_A, ROLE_SERVICE)
BOT_B = user("confab-bot", TENANT_B, ROLE_SERVICE)
AGENT_BOT_A = user("confab-bot:helper", TENANT_A, ROLE_SERVICE)
BOT_COLLECTIONS = ("bot_memory", "bot_summaries", "bot_usage", "bot_usage_calls")


class Policies:
    def __init__(self, retention: Retention | None = None) -> None:
        self.rules = retention or Retention()

    async def retention(self, tenant_id: str) -> Retention:
        return self.rules

    async def erasure_mode(self, tenant_id: str) -> str:
        return ERASE_DELETE


def _runner(unit: UnitOfWork, clock: FakeClock) -> JobRunner:
    kinds: dict[str, JobKind] = {
        export.KIND: export.ExportJob(unit.database, 3),
        erasure.USER_KIND: erasure.UserErasureJob(
            unit, Policies(), [], 3, files=reaper(unit.database)
        ),
        erasure.TENANT_KIND: erasure.TenantErasureJob(
            unit, KeyHandler(unit.database), [], 3, files=reaper(unit.database)
        ),
    }
    return JobRunner(unit.database, clock, kinds, lease_seconds=30.0, poll_seconds=0.01)


@pytest.fixture
def jobs(unit: UnitOfWork) -> JobHandler:
    return JobHandler(unit, asyncio.Event(), AuditTrail(unit.database, unit.clock))


@pytest.fixture
def bot_data(db: Database, clock: FakeClock) -> BotDataHandler:
    return BotDataHandler(db, clock)


async def _remembered(
    conversations: ConversationHandler,
    messages: MessageHandler,
    bot_data: BotDataHandler,
    members: list[str],
    text: str,
) -> str:
    """A conversation of ALICE's with a message, the bot's memory and a cached summary."""
    conv = (await create(conversations, ALICE, members=members)).conversation.id
    await send(messages, ALICE, conv, text)
    await bot_data.put_memory(AGENT_BOT_A, conv, "helper", f"memory: {text}", 1)
    await bot_data.put_cached_summary(BOT_A, conv, 1, f"summary: {text}")
    return conv


async def _held(db: Database, conversation_id: str) -> int:
    return sum(
        [
            await db.db[name].count_documents({"conversation_id": conversation_id})
            for name in ("bot_memory", "bot_summaries")
        ]
    )


async def test_a_conversation_export_holds_the_bots_memory_and_summary(
    db: Database,
    clock: FakeClock,
    unit: UnitOfWork,
    jobs: JobHandler,
    conversations: ConversationHandler,
    messages: MessageHandler,
    bot_data: BotDataHandler,
) -> None:
    conv = await _remembered(conversations, messages, bot_data, ["bob"], "zebra")
    await _remembered(conversations, messages, bot_data, ["bob"], "not this one")
    job = await jobs.create_export(ADMIN, scope="conversation", key=conv, fmt="ndjson")
    await _runner(unit, clock).run_once()
    first = await jobs.read_chunk(ADMIN, job.id, 0)
    data = b"".join(
        [first.data]
        + [(await jobs.read_chunk(ADMIN, job.id, p)).data for p in range(1, first.parts)]
    )
    records = [json.loads(line) for line in data.decode().splitlines()]
    kept = sorted(
        (r["type"], r["agent_id"], r["summary"], r["through_seq"])
        for r in records
        if r["type"].startswith("bot_")
    )
    assert kept == [
        ("bot_memory", "helper", "memory: zebra", 1),
        ("bot_summary", "", "summary: zebra", 1),
    ]


async def test_a_tenant_export_holds_every_conversations_bot_data(
    db: Database,
    clock: FakeClock,
    unit: UnitOfWork,
    jobs: JobHandler,
    conversations: ConversationHandler,
    messages: MessageHandler,
    bot_data: BotDataHandler,
) -> None:
    for word in ("one", "two"):
        await _remembered(conversations, messages, bot_data, ["bob"], word)
    job = await jobs.create_export(ADMIN, scope="tenant", key="", fmt="ndjson")
    await _runner(unit, clock).run_once()
    first = await jobs.read_chunk(ADMIN, job.id, 0)
    data = b"".join(
        [first.data]
        + [(await jobs.read_chunk(ADMIN, job.id, p)).data for p in range(1, first.parts)]
    )
    summaries = sorted(
        json.loads(line)["summary"]
        for line in data.decode().splitlines()
        if json.loads(line)["type"].startswith("bot_")
    )
    assert summaries == ["memory: one", "memory: two", "summary: one", "summary: two"]


async def test_erasing_a_member_drops_their_conversations_bot_data(
    db: Database,
    clock: FakeClock,
    unit: UnitOfWork,
    jobs: JobHandler,
    conversations: ConversationHandler,
    messages: MessageHandler,
    bot_data: BotDataHandler,
) -> None:
    # Bob wrote nothing in the first: being a member whose words it may retell is enough.
    with_bob = await _remembered(conversations, messages, bot_data, ["bob"], "with bob")
    bobs_words = await _remembered(conversations, messages, bot_data, ["bob"], "x")
    await send(messages, BOB, bobs_words, "bob's secret")
    without_bob = await _remembered(conversations, messages, bot_data, ["carol"], "no bob")
    job = await jobs.create_user_erasure(ADMIN, "bob")
    await _runner(unit, clock).run_once()
    assert (await jobs.get(ADMIN, job.id)).status == "succeeded"
    assert await _held(db, with_bob) == 0
    assert await _held(db, bobs_words) == 0
    assert await _held(db, without_bob) == 2


async def test_a_tenant_erasure_deletes_the_bots_data(
    db: Database,
    clock: FakeClock,
    unit: UnitOfWork,
    jobs: JobHandler,
    conversations: ConversationHandler,
    messages: MessageHandler,
) -> None:
    handler = BotDataHandler(db, clock)
    await _remembered(conversations, messages, handler, ["bob"], "gone")
    await handler.record_usage(
        BOT_A,
        call_id="c1",
        agent_id="",
        conversation_id="",
        purpose="reply",
        tokens_in=1,
        tokens_out=1,
    )
    await handler.record_usage(
        BOT_B,
        call_id="c1",
        agent_id="",
        conversation_id="",
        purpose="reply",
        tokens_in=5,
        tokens_out=5,
    )
    for name in BOT_COLLECTIONS:
        assert name in TENANT_COLLECTIONS
        assert await db.db[name].count_documents({"tenant_id": TENANT_A}) == 1
    job = await jobs.create_tenant_erasure(SUPER, TENANT_A, TENANT_A)
    await _runner(unit, clock).run_once()
    assert (await jobs.get_tenant_job(SUPER, TENANT_A, job.id)).status == "succeeded"
    for name in BOT_COLLECTIONS:
        assert await db.db[name].count_documents({"tenant_id": TENANT_A}) == 0
    # The same call id in another tenant is another call, and it stays.
    assert (await handler.usage(BOT_B, "")).tokens_in == 5


async def test_deleting_a_conversation_drops_its_bot_data(
    db: Database,
    conversations: ConversationHandler,
    messages: MessageHandler,
    bot_data: BotDataHandler,
) -> None:
    conv = await _remembered(conversations, messages, bot_data, ["bob"], "deleted")
    kept = await _remembered(conversations, messages, bot_data, ["bob"], "kept")
    await conversations.delete(ADMIN, conv)
    assert await _held(db, conv) == 0
    assert await _held(db, kept) == 2


async def test_retention_drops_bot_data_with_the_messages_it_retells(
    db: Database,
    clock: FakeClock,
    conversations: ConversationHandler,
    messages: MessageHandler,
    bot_data: BotDataHandler,
) -> None:
    aged = await _remembered(conversations, messages, bot_data, ["bob"], "old words")
    stale = await _remembered(conversations, messages, bot_data, ["bob"], "stale")
    clock.advance(timedelta(days=10).total_seconds())
    await send(messages, ALICE, stale, "keeps it active")
    fresh = await _remembered(conversations, messages, bot_data, ["bob"], "fresh")
    clock.advance(timedelta(days=25).total_seconds())
    # Messages older than 30 days go; so does what the bot retold of them.
    await send(messages, ALICE, aged, "new words")
    scheduler = RetentionScheduler(
        db,
        clock,
        Policies(Retention(message_days=30)),
        files=reaper(db),
        batch_size=10,
        period_seconds=60,
        lease_seconds=30.0,
    )
    report = await scheduler.run_pass()
    assert report is not None and report.messages >= 2
    assert await _held(db, aged) == 0
    assert await _held(db, fresh) == 2
    # A whole conversation gone takes its bot data with it.
    clock.advance(timedelta(days=40).total_seconds())
    await bot_data.put_memory(AGENT_BOT_A, fresh, "helper", "again", 1)
    inactive = RetentionScheduler(
        db,
        clock,
        Policies(Retention(inactive_days=30)),
        files=reaper(db),
        batch_size=10,
        period_seconds=60,
        lease_seconds=30.0,
    )
    report = await inactive.run_pass()
    assert report is not None and report.conversations == 3
    assert await db.db["bot_memory"].count_documents({}) == 0
    assert await db.db["bot_summaries"].count_documents({}) == 0


KEY = b"conversation-tests-internal-key-32b"


@pytest_asyncio.fixture
async def rpc(db: Database) -> AsyncIterator[tuple[grpc.aio.Channel, grpc.aio.Channel]]:
    """BotDataService over loopback gRPC: a channel as the bot, one as the gateway."""
    server = GrpcServer(0, InternalAuth(CONVERSATION, KEY, SystemClock()), host="127.0.0.1")
    servicer = BotDataServicer(BotDataHandler(db, SystemClock()))
    server.add(
        lambda s: bpb_grpc.add_BotDataServiceServicer_to_server(servicer, s),
        bpb.DESCRIPTOR.services_by_name["BotDataService"].full_name,
    )
    port = await server.start()
    bot = channel(f"127.0.0.1:{port}", InternalAuth(BOT, KEY, SystemClock()), CONVERSATION)
    gw = channel(f"127.0.0.1:{port}", InternalAuth(GATEWAY, KEY, SystemClock()), CONVERSATION)
    try:
        yield bot, gw
    finally:
        await bot.close()
        await gw.close()
        await server.stop(0)


async def test_the_bot_over_grpc(
    rpc: tuple[grpc.aio.Channel, grpc.aio.Channel],
    conversations: ConversationHandler,
    messages: MessageHandler,
) -> None:
    bot_channel, gateway_channel = rpc
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    for _ in range(3):
        await send(messages, ALICE, conv)
    bot = bpb_grpc.BotDataServiceStub(bot_channel)
    with As(AGENT_BOT_A):
        empty = await bot.GetMemory(bpb.GetMemoryRequest(conversation_id=conv, agent_id="helper"))
        assert not empty.HasField("memory")
        put = await bot.PutMemory(
            bpb.PutMemoryRequest(
                memory=bpb.BotMemory(
                    conversation_id=conv, agent_id="helper", summary="so far", through_seq=2
                )
            )
        )
        assert put.stored and put.memory.through_seq == 2 and put.memory.HasField("updated_at")
        older = await bot.PutMemory(
            bpb.PutMemoryRequest(
                memory=bpb.BotMemory(
                    conversation_id=conv, agent_id="helper", summary="less", through_seq=1
                )
            )
        )
        assert not older.stored and older.memory.summary == "so far"
        await bot.PutCachedSummary(
            bpb.PutCachedSummaryRequest(conversation_id=conv, last_seq=3, summary="all three")
        )
        cached = await bot.GetCachedSummary(
            bpb.GetCachedSummaryRequest(conversation_id=conv, last_seq=3)
        )
        assert (cached.found, cached.summary) == (True, "all three")
        request = bpb.RecordUsageRequest(
            call_id="call-1",
            agent_id="helper",
            conversation_id=conv,
            purpose=bpb.USAGE_PURPOSE_REPLY,
            tokens_in=12,
            tokens_out=8,
        )
        first, again = await asyncio.gather(bot.RecordUsage(request), bot.RecordUsage(request))
        assert first.usage == again.usage
        assert (first.usage.tokens_in, first.usage.tokens_out) == (12, 8)
        assert [(a.agent_id, a.calls) for a in first.usage.agents] == [("helper", 1)]
    with As(BOT_B), pytest.raises(grpc.aio.AioRpcError) as err:
        await bot.GetMemory(bpb.GetMemoryRequest(conversation_id=conv, agent_id="helper"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert trailing_code(err.value) == "conversation_not_found"
    gateway = bpb_grpc.BotDataServiceStub(gateway_channel)
    with As(ADMIN):
        usage = await gateway.GetUsage(bpb.GetUsageRequest())
        assert usage.usage.tokens_in == 12
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await gateway.GetUsage(bpb.GetUsageRequest(month="2026-13"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert trailing_code(err.value) == "invalid_month"
    with As(ALICE), pytest.raises(grpc.aio.AioRpcError) as err:
        await gateway.GetMemory(bpb.GetMemoryRequest(conversation_id=conv, agent_id="helper"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert trailing_code(err.value) == "forbidden"


@pytest_asyncio.fixture
async def clocked(
    mongo_server: MongoServer, key_file: Path
) -> AsyncIterator[tuple[Database, FakeClock]]:
    """A database on its own clock, with short key caching and rotation delays."""
    clock = FakeClock()
    client = mongo.connect(mongo_server.url, "test")
    name = f"conv_{uuid.uuid4().hex[:12]}"
    database = Database(
        client,
        name,
        LocalKeyFileProvider(key_file),
        clock,
        key_cache_ttl=timedelta(seconds=60),
        rotation_delay=timedelta(seconds=120),
    )
    await database.ensure_indexes()
    try:
        yield database, clock
    finally:
        await client.drop_database(name)
        await client.close()


async def test_a_key_rotation_reseals_the_bots_data(
    clocked: tuple[Database, FakeClock],
) -> None:
    db, clock = clocked
    unit = UnitOfWork(db, clock, asyncio.Event())
    handler = BotDataHandler(db, clock)
    conv = await _remembered(
        ConversationHandler(unit), MessageHandler(unit), handler, ["bob"], "rotated"
    )
    await KeyHandler(db).rotate(TENANT_A)
    # Past the rotation delay (the new key writes) and the job's own wait.
    clock.advance(121)
    clock.advance(61)
    runner = ReencryptRunner(db, batch_size=50, poll_seconds=1, lease_seconds=30, owner="a")
    while await runner.run_once():
        pass
    for name in ("bot_memory", "bot_summaries"):
        raw = await db.db[name].find_one({"conversation_id": conv})
        assert raw is not None and blob_key_id(raw["summary"]) == "k2"
    found = await handler.memory(AGENT_BOT_A, conv, "helper")
    assert found is not None and found.summary == "memory: rotated"
    assert await handler.cached_summary(BOT_A, conv, 1) == "summary: rotated"
