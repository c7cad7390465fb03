"""Tickets as tenant data: a requester's export, their erasure, tenant erasure,
retention, and the desk's setup (categories, teams): audited, tenant-scoped."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from confab.conversation.v1 import support_pb2 as spb
from confab_core.clock import FakeClock
from confab_core.errors import InvalidArgument, NotFound, PermissionDenied
from confab_core.identity import (
    PLATFORM_TENANT_ID,
    ROLE_AGENT,
    ROLE_MEMBER,
    ROLE_SUPER_ADMIN,
    ROLE_TENANT_ADMIN,
)
from conversation.handlers import ticketflow
from conversation.handlers.audit import AuditTrail
from conversation.handlers.jobs import JobHandler
from conversation.handlers.keys import KeyHandler
from conversation.handlers.support import SupportHandler
from conversation.handlers.support_admin import SupportAdminHandler
from conversation.handlers.tenant_settings import SettingsHandler
from conversation.handlers.unit import UnitOfWork
from conversation.jobs import erasure, export
from conversation.jobs.policy import ERASE_DELETE, Retention
from conversation.jobs.retention import RetentionScheduler
from conversation.jobs.runner import JobKind, JobRunner
from conversation.storage.db import TENANT_COLLECTIONS, Database

from .conftest import TENANT_A, TENANT_B, decode, outbox, user
from .files_support import reaper

pytestmark = pytest.mark.asyncio

ADMIN = user("root", TENANT_A, ROLE_MEMBER, ROLE_TENANT_ADMIN)
ADMIN_B = user("root", TENANT_B, ROLE_MEMBER, ROLE_TENANT_ADMIN)
SUPER = user("staff", PLATFORM_TENANT_ID, ROLE_SUPER_ADMIN)
AGENT = user("ada", TENANT_A, ROLE_MEMBER, ROLE_AGENT)
VIC = user("vic")
HELPER = {"id": "helper", "display_name": "Helper", "role": "support", "enabled": True}


async def handed_off(db: Database, support: SupportHandler, subject: str, summary: str) -> str:
    """A ticket of vic's that the support bot handed off with ``summary``."""
    await db.db["tenant_settings"].update_one(
        {"tenant_id": TENANT_A}, {"$set": {"agents": [HELPER]}}, upsert=True
    )
    opened = await support.open(VIC, subject=subject)
    await support.transition(
        user("confab-bot:helper", TENANT_A, "service"),
        opened.ticket.id,
        ticketflow.HANDOFF,
        handoff_reason=spb.HANDOFF_REASON_USER_ASKED,
        handoff_summary=summary,
    )
    return opened.ticket.id


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
def desk(db: Database, unit: UnitOfWork) -> SupportAdminHandler:
    trail = AuditTrail(db, unit.clock, unit.locks)
    return SupportAdminHandler(db, unit.clock, trail, SettingsHandler(db, unit.clock, trail))


async def test_a_user_export_holds_their_tickets(
    db: Database, clock: FakeClock, unit: UnitOfWork, jobs: JobHandler
) -> None:
    support = SupportHandler(unit)
    mine = await support.open(VIC, subject="zebra printer")
    handed = await handed_off(db, support, "quokka", "Vic wants a person")
    await support.open(user("otto"), subject="not vic's")
    job = await jobs.create_export(ADMIN, scope="user", key="vic", fmt="ndjson")
    await _runner(unit, clock).run_once()
    first = await jobs.read_chunk(ADMIN, job.id, 0)
    data = b"".join(
        [first.data]
        + [(await jobs.read_chunk(ADMIN, job.id, p)).data for p in range(1, first.parts)]
    )
    records = [json.loads(line) for line in data.decode().splitlines()]
    tickets = sorted((r for r in records if r["type"] == "ticket"), key=lambda t: t["subject"])
    assert [(t["id"], t["subject"], t["status"]) for t in tickets] == [
        (handed, "quokka", "queued"),
        (mine.ticket.id, "zebra printer", "queued"),
    ]
    assert (tickets[0]["handoff_reason"], tickets[0]["handoff_summary"]) == (
        "user_asked",
        "Vic wants a person",
    )
    assert tickets[0]["handed_off_at"] and tickets[1]["handed_off_at"] is None


async def test_a_user_erasure_blanks_their_tickets(
    db: Database, clock: FakeClock, unit: UnitOfWork, jobs: JobHandler
) -> None:
    support = SupportHandler(unit)
    await unit.database.for_tenant(TENANT_A).users.upsert("vic", "Vic", "", unit.clock.now())
    opened = await support.open(VIC, subject="zebra confession")
    handed = await handed_off(db, support, "zebra again", "zebra story of the requester")
    job = await jobs.create_user_erasure(ADMIN, "vic")
    await _runner(unit, clock).run_once()
    assert (await jobs.get(ADMIN, job.id)).status == "succeeded"
    raw = await db.db["tickets"].find_one({"_id": opened.ticket.id})
    assert raw is not None
    assert raw["subject"] == "" and raw["requester_id"].startswith("deleted-")
    assert "vic" not in repr(raw)
    # The ticket's events keep neither the subject nor the requester's name or id.
    events = [decode(d) for d in await outbox(db, opened.ticket.conversation_id)]
    tickets = [e.ticket_updated.ticket for e in events if e.HasField("ticket_updated")]
    assert tickets and all(t.subject == "" and t.requester_name == "" for t in tickets)
    assert not [e for e in events if "zebra" in str(e) or '"vic"' in str(e)]
    conv = await db.for_tenant(TENANT_A).conversations.get(opened.ticket.conversation_id)
    assert conv is not None and conv.title == ""
    # The handoff summary retells the requester's words: it goes the same way.
    ticket = await db.for_tenant(TENANT_A).tickets.get(handed)
    assert ticket is not None and ticket.handoff_summary == "" and ticket.subject == ""
    handoff_events = [decode(d) for d in await outbox(db, ticket.conversation_id)]
    assert not [e for e in handoff_events if "zebra" in str(e)]


async def test_a_tenant_erasure_deletes_tickets_teams_and_the_index(
    db: Database, clock: FakeClock, unit: UnitOfWork, jobs: JobHandler, desk: SupportAdminHandler
) -> None:
    support = SupportHandler(unit)
    opened = await support.open(VIC, subject="gone")
    await support.escalate(ADMIN, opened.ticket.id, "")
    await desk.create_team(ADMIN, "Tier 1", ["ada"])
    await desk.put_categories(ADMIN, ["billing"])
    assert await db.db["tenant_settings"].count_documents({"tenant_id": TENANT_A}) == 1
    theirs = await support.open(user("mallory", TENANT_B), subject="stays")
    names = (
        "tickets",
        "ticket_escalations",
        "support_teams",
        "support_settings",
        "tenant_settings",
    )
    for name in names:
        assert name in TENANT_COLLECTIONS
    job = await jobs.create_tenant_erasure(SUPER, TENANT_A, TENANT_A)
    await _runner(unit, clock).run_once()
    assert (await jobs.get_tenant_job(SUPER, TENANT_A, job.id)).status == "succeeded"
    for name in names:
        assert await db.db[name].count_documents({"tenant_id": TENANT_A}) == 0
    assert await db.db["tickets"].find_one({"_id": theirs.ticket.id}) is not None


async def test_retention_takes_a_ticket_with_its_conversation(
    db: Database, clock: FakeClock, unit: UnitOfWork
) -> None:
    support = SupportHandler(unit)
    old = await support.open(VIC, subject="old")
    await support.escalate(ADMIN, old.ticket.id, "")
    clock.advance(timedelta(days=31).total_seconds())
    fresh = await support.open(VIC, subject="fresh")
    scheduler = RetentionScheduler(
        db,
        clock,
        Policies(Retention(inactive_days=30)),
        files=reaper(db),
        batch_size=10,
        period_seconds=60,
        lease_seconds=30.0,
    )
    report = await scheduler.run_pass()
    assert report is not None and report.conversations == 1
    assert {d["_id"] async for d in db.db["tickets"].find({})} == {fresh.ticket.id}
    assert await db.db["ticket_escalations"].count_documents({}) == 0


async def test_categories_and_teams_are_admins_and_audited(
    db: Database, unit: UnitOfWork, desk: SupportAdminHandler
) -> None:
    with pytest.raises(PermissionDenied):
        await desk.put_categories(AGENT, ["billing"])
    with pytest.raises(PermissionDenied):
        await desk.categories(VIC)
    for bad in ([""], ["a", "a"], ["x" * 65], [str(i) for i in range(101)]):
        with pytest.raises(InvalidArgument):
            await desk.put_categories(ADMIN, bad)
    assert await desk.categories(AGENT) == ()
    assert await desk.put_categories(ADMIN, ["billing", " bugs "]) == ("billing", "bugs")
    assert await desk.categories(AGENT) == ("billing", "bugs")
    for name, agents in (("", []), ("x" * 201, []), ("ok", [""])):
        with pytest.raises(InvalidArgument):
            await desk.create_team(ADMIN, name, agents)
    team = await desk.create_team(ADMIN, "Tier 1", ["ada", "ada", "abe"])
    assert team.agent_ids == ("ada", "abe")
    raw = await db.db["support_teams"].find_one({"_id": team.id})
    assert raw is not None and isinstance(raw["name"], bytes)
    updated = await desk.update_team(ADMIN, team.id, "Tier 2", ["abe"])
    assert (updated.name, updated.agent_ids) == ("Tier 2", ("abe",))
    # Another tenant's team does not exist for this one.
    for call in (
        desk.update_team(ADMIN_B, team.id, "x", []),
        desk.delete_team(ADMIN_B, team.id),
        desk.delete_team(ADMIN, "no-such-team"),
    ):
        with pytest.raises(NotFound) as err:
            await call
        assert err.value.code == "team_not_found"
    assert [t.id for t in await desk.teams(AGENT)] == [team.id]
    assert await desk.teams(ADMIN_B) == []
    await desk.delete_team(ADMIN, team.id)
    assert await desk.teams(AGENT) == []
    actions = [r.entry.action for r in await AuditTrail(db, unit.clock).query(ADMIN, limit=50)]
    assert sorted(actions) == sorted(
        [
            "settings.update",
            "support.team.create",
            "support.team.update",
            "support.team.delete",
        ]
    )
