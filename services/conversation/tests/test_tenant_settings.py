"""The tenant's chat settings on a real MongoDB-wire server: defaults, versioned
writes, validation codes, who may do what, sealing at rest, the audit record,
the change event in the outbox, and the desk's categories as one section."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from confab.conversation.v1 import settings_pb2
from confab_core import mongo
from confab_core.clock import FakeClock
from confab_core.crypto import LocalKeyFileProvider, blob_key_id
from confab_core.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from confab_core.identity import (
    PLATFORM_TENANT_ID,
    ROLE_AGENT,
    ROLE_MEMBER,
    ROLE_SERVICE,
    ROLE_SUPER_ADMIN,
    ROLE_TENANT_ADMIN,
)
from confab_core.tenant_settings import TENANT_SETTINGS_TOPIC
from confab_devservers import MongoServer
from conversation.handlers import rolematrix
from conversation.handlers.audit import AuditTrail
from conversation.handlers.jobs import JobHandler
from conversation.handlers.keys import KeyHandler
from conversation.handlers.platformaccess import in_tenant
from conversation.handlers.support import SupportHandler
from conversation.handlers.support_admin import SupportAdminHandler
from conversation.handlers.tenant_settings import (
    AGENTS,
    AI_QUOTA,
    BRANDING,
    ROLE_PERMISSIONS,
    TICKET_CATEGORIES,
    TOPICS,
    SettingsHandler,
)
from conversation.handlers.unit import UnitOfWork
from conversation.jobs import export
from conversation.jobs.runner import JobRunner
from conversation.reencrypt import ReencryptRunner
from conversation.storage.db import TENANT_COLLECTIONS, Database
from conversation.storage.keys import SEALED
from conversation.storage.settings import (
    AgentRecord,
    BrandingRecord,
    SettingsRecord,
    TopicRuleRecord,
    TopicsRecord,
)

from .conftest import TENANT_A, TENANT_B, user

pytestmark = pytest.mark.asyncio

ADMIN = user("root", TENANT_A, ROLE_MEMBER, ROLE_TENANT_ADMIN)
ADMIN_B = user("root", TENANT_B, ROLE_MEMBER, ROLE_TENANT_ADMIN)
AGENT = user("ada", TENANT_A, ROLE_MEMBER, ROLE_AGENT)
MEMBER = user("mia", TENANT_A, ROLE_MEMBER)
BOT = user("confab-bot", TENANT_A, ROLE_SERVICE)
STAFF = user("pf", PLATFORM_TENANT_ID, ROLE_SUPER_ADMIN)
ALLOWED_URL = "https://llm.example.com/v1"

SECRET_PROMPT = "You are Zephyrine, the vault keeper"
SECRET_PHRASE = "quasarwidget refund"

SUPPORT_AGENT = AgentRecord(
    id="helper",
    display_name="Helper",
    role="support",
    system_prompt=SECRET_PROMPT,
    temperature=0.3,
    token_budget=4000,
    topics=TopicsRecord(allowed=(TopicRuleRecord("billing", keywords=("invoice",)),)),
    enabled=True,
)
FULL = SettingsRecord(
    branding=BrandingRecord(
        display_name="Acme",
        primary_color="#112233",
        accent_color="#AABBCC",
        logo_url="https://cdn.example.com/logo.png",
        welcome_message="Welcome to Acme support",
    ),
    agents=(
        SUPPORT_AGENT,
        AgentRecord(id="writer", role="assistant", base_url=ALLOWED_URL + "/", enabled=True),
        AgentRecord(id="legal", display_name="Legal", role="pickable", enabled=False),
    ),
    topics=TopicsRecord(
        forbidden=(TopicRuleRecord("refunds", phrases=(SECRET_PHRASE,), patterns=(r"\bkyc\b",)),),
        model_check=True,
    ),
    ticket_categories=("billing", "bugs"),
    role_permissions=(("member", (rolematrix.ACCESS_CHANNELS,)),),
)


@pytest.fixture
def trail(unit: UnitOfWork) -> AuditTrail:
    return AuditTrail(unit.database, unit.clock, unit.locks)


@pytest.fixture
def relay_wakeup() -> asyncio.Event:
    return asyncio.Event()


@pytest.fixture
def handler(unit: UnitOfWork, trail: AuditTrail, relay_wakeup: asyncio.Event) -> SettingsHandler:
    return SettingsHandler(unit.database, unit.clock, trail, relay_wakeup, [ALLOWED_URL])


async def _audit(db: Database, tenant: str, action: str) -> list[dict[str, object]]:
    cursor = db.db["audit"].find({"tenant_id": tenant, "action": action}).sort("seq", 1)
    return [d async for d in cursor]


async def test_defaults_before_any_save(handler: SettingsHandler) -> None:
    view = await handler.get(ADMIN)
    s = view.settings
    assert (s.version, s.agents, s.branding, s.topics) == (0, (), BrandingRecord(), TopicsRecord())
    assert dict(s.role_permissions) == {
        "member": (
            rolematrix.ACCESS_CHANNELS,
            rolematrix.ACCESS_PRIVATE,
            rolematrix.SEND_FILES,
            rolematrix.CREATE_DIRECT,
        ),
        "agent": (
            rolematrix.ACCESS_CHANNELS,
            rolematrix.CREATE_CHANNELS,
            rolematrix.ACCESS_PRIVATE,
            rolematrix.SEND_FILES,
            rolematrix.CREATE_DIRECT,
        ),
        "tenant_admin": rolematrix.PERMISSIONS,
    }
    assert (s.ai_quota_monthly_tokens, view.canned_reply_count) == (0, 0)


async def test_a_versioned_round_trip_sealed_at_rest_audited_and_announced(
    handler: SettingsHandler, db: Database, relay_wakeup: asyncio.Event
) -> None:
    view = await handler.update(ADMIN, FULL, [], 0)
    s = view.settings
    assert s.version == 1 and s.updated_by == "root" and relay_wakeup.is_set()
    assert s.branding.accent_color == "#aabbcc"
    assert [a.id for a in s.agents] == ["helper", "writer", "legal"]
    # An empty display name is the agent's id; a base URL loses its trailing slash.
    assert (s.agents[1].display_name, s.agents[1].base_url) == ("writer", ALLOWED_URL)
    assert s.agents[0].system_prompt == SECRET_PROMPT
    assert s.topics.forbidden[0].phrases == (SECRET_PHRASE,)
    # Roles left out keep their defaults.
    assert dict(s.role_permissions)["member"] == (rolematrix.ACCESS_CHANNELS,)
    assert dict(s.role_permissions)["agent"] == rolematrix.ordered(
        rolematrix.DEFAULT_MATRIX["agent"]
    )
    assert (await handler.get(ADMIN)).settings == s

    raw = await db.db["tenant_settings"].find_one({"tenant_id": TENANT_A})
    assert raw is not None and raw["_id"] == TENANT_A and raw["version"] == 1
    # The shape the permission checks read, plain.
    assert raw["role_permissions"] == {"member": [rolematrix.ACCESS_CHANNELS]}
    assert isinstance(raw["text"], bytes)
    for secret in (SECRET_PROMPT, SECRET_PHRASE, "Welcome to Acme", "kyc", "invoice"):
        assert secret.encode() not in repr(raw).encode()
    assert SEALED["tenant_settings"] == ("_id", ("text",))

    [record] = await _audit(db, TENANT_A, "settings.update")
    assert record["actor_id"] == "root"

    [event_doc] = [d async for d in db.db["outbox"].find({"topic": TENANT_SETTINGS_TOPIC})]
    assert event_doc["sealed"] is False and event_doc["conversation_id"] == TENANT_A
    event = settings_pb2.TenantSettingsChanged.FromString(bytes(event_doc["payload"]))
    assert (event.tenant_id, event.version) == (TENANT_A, 1)
    assert len(event.sections) == 7 and event.event_id == event_doc["_id"]


async def test_a_section_write_keeps_the_others_and_a_stale_one_writes_nothing(
    handler: SettingsHandler, db: Database
) -> None:
    await handler.update(ADMIN, FULL, [], 0)
    renamed = replace(FULL, branding=BrandingRecord(display_name="Acme 2"), agents=())
    after = (await handler.update(ADMIN, renamed, [BRANDING], 1)).settings
    assert after.version == 2 and after.branding.display_name == "Acme 2"
    assert [a.id for a in after.agents] == ["helper", "writer", "legal"]
    audits, events = (
        len(await _audit(db, TENANT_A, "settings.update")),
        await db.db["outbox"].count_documents({}),
    )
    for stale in (0, 1, 3):
        with pytest.raises(FailedPrecondition) as err:
            await handler.update(ADMIN, renamed, [AGENTS], stale)
        assert err.value.code == "version_mismatch"
    with pytest.raises(InvalidArgument) as bad:
        await handler.update(ADMIN, renamed, [AGENTS], -1)
    assert bad.value.code == "invalid_version"
    assert (await handler.get(ADMIN)).settings == after
    assert len(await _audit(db, TENANT_A, "settings.update")) == audits
    assert await db.db["outbox"].count_documents({}) == events


def _agent(**changes: object) -> SettingsRecord:
    return SettingsRecord(agents=(replace(SUPPORT_AGENT, **changes),))  # type: ignore[arg-type]


def _rule(**changes: object) -> SettingsRecord:
    rule = replace(TopicRuleRecord("x", keywords=("k",)), **changes)  # type: ignore[arg-type]
    return SettingsRecord(topics=TopicsRecord(allowed=(rule,)))


INVALID: list[tuple[str, SettingsRecord, str]] = [
    (BRANDING, SettingsRecord(branding=BrandingRecord(primary_color="red")), "invalid_color"),
    (BRANDING, SettingsRecord(branding=BrandingRecord(accent_color="#12345")), "invalid_color"),
    (BRANDING, SettingsRecord(branding=BrandingRecord(logo_url="http://x.example")), "invalid_url"),
    (BRANDING, SettingsRecord(branding=BrandingRecord(logo_url="javascript:x")), "invalid_url"),
    (BRANDING, SettingsRecord(branding=BrandingRecord(display_name="x" * 201)), "text_too_long"),
    (
        BRANDING,
        SettingsRecord(branding=BrandingRecord(welcome_message="x" * 4001)),
        "text_too_long",
    ),
    (AGENTS, _agent(id="Bad_Id"), "invalid_agent_id"),
    (AGENTS, _agent(id=""), "invalid_agent_id"),
    (AGENTS, _agent(id="x" * 33), "invalid_agent_id"),
    (AGENTS, _agent(role=""), "invalid_agent_role"),
    (AGENTS, _agent(avatar_url="ftp://a.example/x.png"), "invalid_url"),
    (AGENTS, _agent(system_prompt="x" * 16_001), "text_too_long"),
    (AGENTS, _agent(temperature=2.5), "invalid_temperature"),
    (AGENTS, _agent(temperature=float("nan")), "invalid_temperature"),
    (AGENTS, _agent(token_budget=100), "invalid_token_budget"),
    (AGENTS, _agent(token_budget=200_000), "invalid_token_budget"),
    (AGENTS, _agent(max_reply_tokens=-1), "invalid_token_budget"),
    (AGENTS, _agent(handoff_after_turns=101), "invalid_handoff_turns"),
    (AGENTS, _agent(base_url="https://evil.example/v1"), "base_url_not_allowed"),
    (AGENTS, _agent(base_url="http://llm.example.com/v1"), "invalid_url"),
    (AGENTS, _agent(topics=TopicsRecord(forbidden=(TopicRuleRecord("x"),))), "empty_rule"),
    (
        AGENTS,
        SettingsRecord(agents=(SUPPORT_AGENT, replace(SUPPORT_AGENT, display_name="again"))),
        "duplicate_agent",
    ),
    (
        AGENTS,
        SettingsRecord(agents=(SUPPORT_AGENT, replace(SUPPORT_AGENT, id="other"))),
        "two_support_agents",
    ),
    (
        AGENTS,
        SettingsRecord(
            agents=(
                replace(SUPPORT_AGENT, role="assistant"),
                replace(SUPPORT_AGENT, id="other", role="assistant"),
            )
        ),
        "two_assistant_agents",
    ),
    (
        AGENTS,
        SettingsRecord(
            agents=tuple(replace(SUPPORT_AGENT, id=f"a{i}", role="pickable") for i in range(21))
        ),
        "too_many_agents",
    ),
    (TOPICS, _rule(patterns=("(unclosed",)), "invalid_pattern"),
    (TOPICS, _rule(patterns=("a" * 201,)), "invalid_pattern"),
    (TOPICS, _rule(phrases=("x" * 201,)), "text_too_long"),
    (TOPICS, _rule(keywords=tuple(f"k{i}" for i in range(101))), "too_many_rules"),
    (
        TOPICS,
        SettingsRecord(
            topics=TopicsRecord(
                forbidden=tuple(TopicRuleRecord(f"r{i}", ("p",)) for i in range(51))
            )
        ),
        "too_many_rules",
    ),
    (TICKET_CATEGORIES, SettingsRecord(ticket_categories=("",)), "invalid_category"),
    (TICKET_CATEGORIES, SettingsRecord(ticket_categories=("a", "a")), "duplicate_category"),
    (ROLE_PERMISSIONS, SettingsRecord(role_permissions=(("owner", ()),)), "unknown_role"),
    (ROLE_PERMISSIONS, SettingsRecord(role_permissions=(("super_admin", ()),)), "unknown_role"),
    (
        ROLE_PERMISSIONS,
        SettingsRecord(role_permissions=(("member", ("chat.fly",)),)),
        "unknown_permission",
    ),
    (
        ROLE_PERMISSIONS,
        SettingsRecord(role_permissions=(("member", ()), ("member", ()))),
        "duplicate_role",
    ),
]


@pytest.mark.parametrize(("section", "draft", "code"), INVALID)
async def test_invalid_values_get_a_stable_code_and_write_nothing(
    handler: SettingsHandler, db: Database, section: str, draft: SettingsRecord, code: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        await handler.update(ADMIN, draft, [section], 0)
    assert err.value.code == code
    assert await db.db["tenant_settings"].count_documents({}) == 0
    assert await db.db["outbox"].count_documents({}) == 0


async def test_only_admins_read_and_write_members_read_the_public_part(
    handler: SettingsHandler,
) -> None:
    await handler.update(ADMIN, FULL, [], 0)
    for caller in (AGENT, MEMBER, BOT, STAFF):
        with pytest.raises(PermissionDenied):
            await handler.get(caller)
        with pytest.raises(PermissionDenied):
            await handler.update(caller, FULL, [BRANDING], 1)
    for caller in (ADMIN, AGENT, MEMBER):
        with pytest.raises(PermissionDenied):
            await handler.for_service(caller)
    assert (await handler.for_service(BOT)).settings.agents[0].system_prompt == SECRET_PROMPT
    assert (await handler.public(MEMBER)).branding.display_name == "Acme"
    # Another tenant's admin sees only its own (default) document, and writes only there.
    theirs = await handler.get(ADMIN_B)
    assert theirs.settings.version == 0 and theirs.settings.agents == ()
    assert (await handler.update(ADMIN_B, FULL, [BRANDING], 0)).settings.version == 1
    assert (await handler.get(ADMIN)).settings.version == 1
    assert (await handler.public(user("bo", TENANT_B))).agents == ()


async def test_only_platform_staff_change_the_ai_quota(
    handler: SettingsHandler, db: Database
) -> None:
    quota = SettingsRecord(ai_quota_monthly_tokens=1_000_000)
    with pytest.raises(PermissionDenied) as err:
        await handler.update(ADMIN, quota, [AI_QUOTA], 0)
    assert err.value.code == "forbidden"
    # The whole document, sent back unchanged by an admin, is fine.
    await handler.update(ADMIN, FULL, [], 0)
    staff = in_tenant(STAFF, TENANT_A)
    with pytest.raises(PermissionDenied):
        await handler.update(staff, FULL, [BRANDING], 1)
    with pytest.raises(InvalidArgument) as bad:
        await handler.update(staff, SettingsRecord(ai_quota_monthly_tokens=-1), [AI_QUOTA], 1)
    assert bad.value.code == "invalid_quota"
    after = (await handler.update(staff, quota, [AI_QUOTA], 1)).settings
    assert after.ai_quota_monthly_tokens == 1_000_000 and after.branding.display_name == "Acme"
    read = await handler.get(ADMIN)
    assert read.settings.ai_quota_monthly_tokens == 1_000_000
    # The admin's whole document now carries the quota back unchanged; a changed one is refused.
    resent = replace(FULL, ai_quota_monthly_tokens=1_000_000)
    assert (await handler.update(ADMIN, resent, [], 2)).settings.version == 3
    with pytest.raises(PermissionDenied):
        await handler.update(ADMIN, FULL, [], 3)
    assert (await handler.get(staff)).settings.version == 3
    assert [r["actor_id"] for r in await _audit(db, TENANT_A, "platform.settings_read")] == [
        "confab-platform:pf"
    ]


async def test_categories_are_the_settings_section(
    handler: SettingsHandler, unit: UnitOfWork, trail: AuditTrail, db: Database
) -> None:
    desk = SupportAdminHandler(db, unit.clock, trail, handler)
    assert await desk.put_categories(ADMIN, ["billing", " bugs "]) == ("billing", "bugs")
    s = (await handler.get(ADMIN)).settings
    assert (s.version, s.ticket_categories) == (1, ("billing", "bugs"))
    await handler.update(
        ADMIN, SettingsRecord(ticket_categories=("sales",)), [TICKET_CATEGORIES], 1
    )
    assert await desk.categories(AGENT) == ("sales",)
    # The desk's tickets take the categories the settings name.
    support = SupportHandler(unit)
    opened = await support.open(MEMBER, subject="Quote", category="sales")
    assert opened.ticket.category == "sales"
    with pytest.raises(InvalidArgument):
        await support.open(MEMBER, subject="Bill", category="billing")
    # Through the desk's API too: versioned and announced.
    await desk.put_categories(ADMIN, ["sales", "legal"])
    assert (await handler.get(ADMIN)).settings.version == 3
    assert await db.db["outbox"].count_documents({"topic": TENANT_SETTINGS_TOPIC}) == 3
    assert "tenant_settings" in TENANT_COLLECTIONS


async def test_legacy_categories_are_the_starting_value(
    handler: SettingsHandler, db: Database, unit: UnitOfWork
) -> None:
    await db.db["support_settings"].insert_one(
        {"_id": TENANT_A, "tenant_id": TENANT_A, "categories": ["old"]}
    )
    assert (await handler.get(ADMIN)).settings.ticket_categories == ("old",)
    await handler.update(ADMIN, FULL, [BRANDING], 0)
    assert (await handler.get(ADMIN)).settings.ticket_categories == ("old",)


async def test_a_key_rotation_moves_the_sealed_text(
    mongo_server: MongoServer, key_file: Path
) -> None:
    clock = FakeClock()
    client = mongo.connect(mongo_server.url, "test")
    name = f"conv_{uuid.uuid4().hex[:12]}"
    db = Database(
        client,
        name,
        LocalKeyFileProvider(key_file),
        clock,
        key_cache_ttl=timedelta(seconds=60),
        rotation_delay=timedelta(seconds=120),
    )
    try:
        await db.ensure_indexes()
        handler = SettingsHandler(db, clock, AuditTrail(db, clock), None, [ALLOWED_URL])
        await handler.update(ADMIN, FULL, [], 0)
        before = await db.db["tenant_settings"].find_one({"_id": TENANT_A})
        assert before is not None and blob_key_id(before["text"]) == "k1"
        await KeyHandler(db).rotate(TENANT_A)
        clock.advance(200)
        runner = ReencryptRunner(db, batch_size=10, poll_seconds=1, lease_seconds=30, owner="a")
        while await runner.run_once() > 0:
            pass
        after = await db.db["tenant_settings"].find_one({"_id": TENANT_A})
        assert after is not None and blob_key_id(after["text"]) == "k2"
        read = (await handler.get(ADMIN)).settings
        assert read.agents[0].system_prompt == SECRET_PROMPT
        assert read.topics.forbidden[0].phrases == (SECRET_PHRASE,)
    finally:
        await client.drop_database(name)
        await client.close()


async def test_a_tenant_export_holds_the_settings(
    handler: SettingsHandler, unit: UnitOfWork, db: Database
) -> None:
    jobs = JobHandler(unit, asyncio.Event(), AuditTrail(db, unit.clock))
    kinds = {export.KIND: export.ExportJob(db, 10)}
    run = JobRunner(db, unit.clock, kinds, lease_seconds=30, poll_seconds=0.01)

    async def exported() -> list[dict[str, object]]:
        job = await jobs.create_export(ADMIN, scope="tenant", key="", fmt="ndjson")
        assert await run.run_once()
        data = b""
        for part in range((await jobs.read_chunk(ADMIN, job.id, 0)).parts):
            data += (await jobs.read_chunk(ADMIN, job.id, part)).data
        records = [json.loads(line) for line in data.decode().splitlines()]
        return [r for r in records if r["type"] == "tenant_settings"]

    assert await exported() == []
    await handler.update(ADMIN, FULL, [], 0)
    [record] = await exported()
    assert record["version"] == 1
    assert record["role_permissions"] == {"member": [rolematrix.ACCESS_CHANNELS]}
    agents = record["agents"]
    assert isinstance(agents, list) and agents[0]["system_prompt"] == SECRET_PROMPT
