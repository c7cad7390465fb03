"""BotDataService's rules against the real database: the bot's memory (never
moves back), the summary cache (latest only), usage (idempotent by call id,
per month and agent, against the tenant's quota), who may call what, sealing
at rest, and tenant isolation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from confab.conversation.v1 import conversation_pb2 as pb
from confab_core.clock import FakeClock
from confab_core.errors import InvalidArgument, NotFound, PermissionDenied
from confab_core.identity import (
    PLATFORM_TENANT_ID,
    ROLE_AGENT,
    ROLE_MEMBER,
    ROLE_SERVICE,
    ROLE_SUPER_ADMIN,
    ROLE_TENANT_ADMIN,
    Caller,
)
from conversation.handlers.botdata import MAX_SUMMARY_CHARS, BotDataHandler
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.messages import MessageHandler
from conversation.handlers.platformaccess import in_tenant
from conversation.handlers.unit import UnitOfWork
from conversation.storage.db import Database

from .conftest import create, fresh_tenant, send, user

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRET_WORDS = "the quartz flamingo plan"


class World:
    def __init__(self, db: Database, tenant: str) -> None:
        self.db = db
        self.tenant = tenant
        self.clock = FakeClock(datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
        unit = UnitOfWork(db, self.clock, asyncio.Event())
        self.conversations = ConversationHandler(unit)
        self.messages = MessageHandler(unit)
        self.h = BotDataHandler(db, self.clock)
        self.bot = user("confab-bot", tenant, ROLE_SERVICE)
        self.alice = user("alice", tenant)
        self.admin = user("root", tenant, ROLE_MEMBER, ROLE_TENANT_ADMIN)

    async def conversation(self, messages: int = 3) -> str:
        created = await create(self.conversations, self.alice, pb.CONVERSATION_KIND_GROUP, ["bob"])
        for i in range(messages):
            await send(self.messages, self.alice, created.conversation.id, f"message {i}")
        return created.conversation.id


def world(db: Database) -> World:
    return World(db, fresh_tenant())


async def test_memory_round_trip_and_never_moves_back(shared_db: Database) -> None:
    w = world(shared_db)
    conv = await w.conversation(5)
    assert await w.h.memory(w.bot, conv, "helper") is None
    stored, put = await w.h.put_memory(w.bot, conv, "helper", "up to three", 3)
    assert put and (stored.summary, stored.through_seq) == ("up to three", 3)
    stored, put = await w.h.put_memory(w.bot, conv, "helper", "up to two", 2)
    # A slower writer with an older summary is ignored, and told what is stored.
    assert not put and (stored.summary, stored.through_seq) == ("up to three", 3)
    stored, put = await w.h.put_memory(w.bot, conv, "helper", "up to five", 5)
    assert put
    found = await w.h.memory(w.bot, conv, "helper")
    assert found is not None and (found.summary, found.through_seq) == ("up to five", 5)
    # Each agent has its own memory of the conversation; "" is the implicit assistant.
    assert await w.h.memory(w.bot, conv, "") is None


async def test_concurrent_memory_writes_keep_the_furthest(shared_db: Database) -> None:
    w = world(shared_db)
    conv = await w.conversation(8)
    seqs = [3, 8, 1, 5, 7, 2, 6, 4]
    await asyncio.gather(*(w.h.put_memory(w.bot, conv, "a", f"to {s}", s) for s in seqs))
    found = await w.h.memory(w.bot, conv, "a")
    assert found is not None and (found.summary, found.through_seq) == ("to 8", 8)
    assert await shared_db.db["bot_memory"].count_documents({"tenant_id": w.tenant}) == 1


async def test_summary_cache_is_by_last_seq_and_keeps_the_latest(shared_db: Database) -> None:
    w = world(shared_db)
    conv = await w.conversation(3)
    assert await w.h.cached_summary(w.bot, conv, 2) is None
    assert await w.h.put_cached_summary(w.bot, conv, 2, "as of two")
    assert await w.h.cached_summary(w.bot, conv, 2) == "as of two"
    # A conversation that moved on is summarized again.
    assert await w.h.cached_summary(w.bot, conv, 3) is None
    assert await w.h.put_cached_summary(w.bot, conv, 3, "as of three")
    assert not await w.h.put_cached_summary(w.bot, conv, 1, "as of one")
    assert await w.h.cached_summary(w.bot, conv, 3) == "as of three"
    assert await w.h.cached_summary(w.bot, conv, 2) is None
    assert await shared_db.db["bot_summaries"].count_documents({"tenant_id": w.tenant}) == 1


async def test_memory_and_summaries_are_sealed_at_rest(shared_db: Database) -> None:
    w = world(shared_db)
    conv = await w.conversation(2)
    await w.h.put_memory(w.bot, conv, "helper", SECRET_WORDS, 2)
    await w.h.put_cached_summary(w.bot, conv, 2, SECRET_WORDS)
    for name in ("bot_memory", "bot_summaries"):
        raw = await shared_db.db[name].find_one({"tenant_id": w.tenant})
        assert raw is not None and isinstance(raw["summary"], bytes)
        assert b"flamingo" not in repr(raw).encode() and "flamingo" not in repr(raw)


async def test_bot_data_is_for_service_callers_only(shared_db: Database) -> None:
    w = world(shared_db)
    conv = await w.conversation(1)
    for caller in (w.alice, w.admin, user("ada", w.tenant, ROLE_AGENT)):
        for call in (
            w.h.memory(caller, conv, ""),
            w.h.put_memory(caller, conv, "", "x", 1),
            w.h.cached_summary(caller, conv, 1),
            w.h.put_cached_summary(caller, conv, 1, "x"),
            w.h.record_usage(
                caller,
                call_id="c",
                agent_id="",
                conversation_id=conv,
                purpose="reply",
                tokens_in=1,
                tokens_out=1,
            ),
        ):
            with pytest.raises(PermissionDenied) as err:
                await call
            assert err.value.code == "forbidden"
    assert await shared_db.db["bot_memory"].count_documents({"tenant_id": w.tenant}) == 0
    assert await shared_db.db["bot_usage"].count_documents({"tenant_id": w.tenant}) == 0


async def test_bad_input_is_refused_and_writes_nothing(shared_db: Database) -> None:
    w = world(shared_db)
    conv = await w.conversation(2)
    cases = [
        (w.h.put_memory(w.bot, conv, "a", "x", 3), "invalid_seq"),
        (w.h.put_memory(w.bot, conv, "a", "x", -1), "invalid_seq"),
        (w.h.put_memory(w.bot, conv, "a", "x" * (MAX_SUMMARY_CHARS + 1), 1), "summary_too_long"),
        (w.h.put_memory(w.bot, conv, "a" * 200, "x", 1), "invalid_agent_id"),
        (w.h.put_memory(w.bot, "", "a", "x", 1), "invalid_conversation_id"),
        (w.h.put_cached_summary(w.bot, conv, 9, "x"), "invalid_seq"),
        (w.h.memory(w.bot, "x" * 200, ""), "invalid_conversation_id"),
    ]
    for call, code in cases:
        with pytest.raises(InvalidArgument) as err:
            await call
        assert err.value.code == code
    for tokens_in, tokens_out, call_id, code in (
        (-1, 0, "c1", "invalid_tokens"),
        (0, 10**9, "c1", "invalid_tokens"),
        (1, 1, "", "invalid_call_id"),
    ):
        with pytest.raises(InvalidArgument) as err:
            await w.h.record_usage(
                w.bot,
                call_id=call_id,
                agent_id="",
                conversation_id=conv,
                purpose="reply",
                tokens_in=tokens_in,
                tokens_out=tokens_out,
            )
        assert err.value.code == code
    for name in ("bot_memory", "bot_summaries", "bot_usage", "bot_usage_calls"):
        assert await shared_db.db[name].count_documents({"tenant_id": w.tenant}) == 0


async def test_another_tenants_conversation_and_memory_are_not_found(
    shared_db: Database,
) -> None:
    a, b = world(shared_db), world(shared_db)
    conv = await a.conversation(2)
    await a.h.put_memory(a.bot, conv, "helper", SECRET_WORDS, 2)
    await a.h.put_cached_summary(a.bot, conv, 2, SECRET_WORDS)
    for call in (
        b.h.memory(b.bot, conv, "helper"),
        b.h.put_memory(b.bot, conv, "helper", "overwrite", 2),
        b.h.cached_summary(b.bot, conv, 2),
        b.h.put_cached_summary(b.bot, conv, 2, "overwrite"),
        a.h.memory(a.bot, "no-such-conversation", "helper"),
    ):
        with pytest.raises(NotFound) as err:
            await call
        assert err.value.code == "conversation_not_found"
    found = await a.h.memory(a.bot, conv, "helper")
    assert found is not None and found.summary == SECRET_WORDS
    assert await a.h.cached_summary(a.bot, conv, 2) == SECRET_WORDS


async def _record(w: World, call_id: str, agent: str, tokens_in: int, tokens_out: int) -> bool:
    recorded = await w.h.record_usage(
        w.bot,
        call_id=call_id,
        agent_id=agent,
        conversation_id="",
        purpose="reply",
        tokens_in=tokens_in,
        tokens_out=tokens_out,
    )
    return recorded.counted


async def test_usage_counts_per_agent_and_month_once_per_call(shared_db: Database) -> None:
    w = world(shared_db)
    assert await _record(w, "call-1", "helper", 10, 5)
    assert not await _record(w, "call-1", "helper", 10, 5)
    assert await _record(w, "call-2", "", 1, 2)
    usage = await w.h.usage(w.admin, "")
    assert (usage.month, usage.tokens_in, usage.tokens_out) == ("2026-11", 11, 7)
    assert [(a.agent_id, a.tokens_in, a.tokens_out, a.calls) for a in usage.agents] == [
        ("", 1, 2, 1),
        ("helper", 10, 5, 1),
    ]
    assert (usage.quota_tokens, usage.over_quota) == (0, False)
    # The month turns at midnight UTC, by the injected clock.
    w.clock.advance(60)
    assert await _record(w, "call-3", "helper", 100, 0)
    # A redelivery after the month turned is still the same call.
    assert not await _record(w, "call-2", "", 1, 2)
    december = await w.h.usage(w.admin, "")
    assert (december.month, december.tokens_in, december.tokens_out) == ("2026-12", 100, 0)
    november = await w.h.usage(w.admin, "2026-11")
    assert (november.tokens_in, november.tokens_out) == (11, 7)
    assert (await w.h.usage(w.admin, "2025-01")).agents == []


async def test_concurrent_records_of_one_call_count_once(shared_db: Database) -> None:
    w = world(shared_db)
    results = await asyncio.gather(*(_record(w, "same-call", "helper", 7, 3) for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    usage = await w.h.usage(w.admin, "")
    assert (usage.tokens_in, usage.tokens_out) == (7, 3)
    assert [a.calls for a in usage.agents] == [1]


async def test_quota_comes_from_the_tenant_settings(shared_db: Database) -> None:
    w = world(shared_db)
    await shared_db.db["tenant_settings"].insert_one(
        {"_id": w.tenant, "tenant_id": w.tenant, "ai_quota": {"monthly_tokens": 100}}
    )
    recorded = await w.h.record_usage(
        w.bot,
        call_id="q1",
        agent_id="",
        conversation_id="",
        purpose="summary",
        tokens_in=60,
        tokens_out=39,
    )
    assert (recorded.usage.quota_tokens, recorded.usage.over_quota) == (100, False)
    recorded = await w.h.record_usage(
        w.bot,
        call_id="q2",
        agent_id="",
        conversation_id="",
        purpose="reply",
        tokens_in=1,
        tokens_out=0,
    )
    # At the quota is over it: the next call would pass it.
    assert (recorded.usage.tokens_in + recorded.usage.tokens_out, recorded.usage.over_quota) == (
        100,
        True,
    )
    # Another tenant's quota and usage are its own.
    other = world(shared_db)
    usage = await other.h.usage(other.admin, "")
    assert (usage.tokens_in, usage.quota_tokens, usage.over_quota) == (0, 0, False)


async def test_who_reads_usage(shared_db: Database) -> None:
    w = world(shared_db)
    await _record(w, "r1", "", 3, 4)
    staff = in_tenant(user("staff", PLATFORM_TENANT_ID, ROLE_SUPER_ADMIN), w.tenant)
    for caller in (w.admin, w.bot, staff):
        assert (await w.h.usage(caller, "")).tokens_out == 4
    outsiders: list[Caller] = [
        w.alice,
        user("ada", w.tenant, ROLE_MEMBER, ROLE_AGENT),
        # A tenant user holding the role is not platform staff.
        user("mimic", w.tenant, ROLE_SUPER_ADMIN),
    ]
    for caller in outsiders:
        with pytest.raises(PermissionDenied) as err:
            await w.h.usage(caller, "")
        assert err.value.code == "forbidden"
    for bad in ("2026-13", "2026-1", "26-11", "2026-11-01", "november", "2026-00"):
        with pytest.raises(InvalidArgument) as bad_err:
            await w.h.usage(w.admin, bad)
        assert bad_err.value.code == "invalid_month"
