"""Jobs on real MongoDB-wire: exports, erasures, the runner's lease and checkpoints."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import timedelta

import pytest

from confab_core.clock import FakeClock
from confab_core.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from confab_core.identity import (
    PLATFORM_TENANT_ID,
    ROLE_MEMBER,
    ROLE_SUPER_ADMIN,
    ROLE_TENANT_ADMIN,
    Caller,
)
from confab_core.mongo import Doc
from conversation.handlers.audit import AuditTrail
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.jobs import JobHandler
from conversation.handlers.keys import KeyHandler
from conversation.handlers.messages import MessageHandler
from conversation.handlers.unit import UnitOfWork
from conversation.jobs import erasure, export
from conversation.jobs.policy import ERASE_ANONYMISE, ERASE_DELETE, Retention
from conversation.jobs.runner import JobKind, JobRunner, Step
from conversation.storage.db import Database
from conversation.storage.jobs import Checkpoint, Job
from conversation.storage.outbox import opened_payload

from .conftest import (
    ALICE,
    BOB,
    CAROL,
    MALLORY,
    TENANT_A,
    TENANT_B,
    create,
    decode,
    outbox,
    send,
    user,
)
from .files_support import reaper

pytestmark = pytest.mark.asyncio

LEASE = 30.0
ADMIN = user("root", TENANT_A, ROLE_MEMBER, ROLE_TENANT_ADMIN)
ADMIN_B = user("root", TENANT_B, ROLE_MEMBER, ROLE_TENANT_ADMIN)
STAFF = user("staff", PLATFORM_TENANT_ID, ROLE_SUPER_ADMIN)


class Policies:
    def __init__(self, mode: str = ERASE_DELETE, retention: Retention | None = None) -> None:
        self.mode = mode
        self.rules = retention or Retention()

    async def retention(self, tenant_id: str) -> Retention:
        return self.rules

    async def erasure_mode(self, tenant_id: str) -> str:
        return self.mode


class Killed(BaseException):
    """The runner's process dies here (like a cancel or SystemExit, not an error)."""


def kinds(unit: UnitOfWork, batch: int, policies: Policies | None = None) -> dict[str, JobKind]:
    policies = policies or Policies()
    return {
        export.KIND: export.ExportJob(unit.database, batch),
        erasure.USER_KIND: erasure.UserErasureJob(
            unit, policies, [], batch, files=reaper(unit.database)
        ),
        erasure.TENANT_KIND: erasure.TenantErasureJob(
            unit, KeyHandler(unit.database), [], batch, files=reaper(unit.database)
        ),
    }


def runner(db: Database, clock: FakeClock, jobs: dict[str, JobKind]) -> JobRunner:
    return JobRunner(db, clock, jobs, lease_seconds=LEASE, poll_seconds=0.01)


@pytest.fixture
def handler(unit: UnitOfWork) -> JobHandler:
    return JobHandler(unit, asyncio.Event(), AuditTrail(unit.database, unit.clock))


async def download(handler: JobHandler, caller: Caller, job_id: str) -> bytes:
    first = await handler.read_chunk(caller, job_id, 0)
    parts = [first.data]
    for part in range(1, first.parts):
        parts.append((await handler.read_chunk(caller, job_id, part)).data)
    return b"".join(parts)


def lines(data: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in data.decode().splitlines()]


async def chat(
    conversations: ConversationHandler, messages: MessageHandler, n: int = 5
) -> tuple[str, list[str]]:
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    ids = []
    for i in range(n):
        who = ALICE if i % 2 == 0 else BOB
        ids.append((await send(messages, who, conv, f"secret word{i}")).message.id)
    return conv, ids


async def test_a_conversation_export_holds_each_record_once(
    db: Database,
    clock: FakeClock,
    unit: UnitOfWork,
    handler: JobHandler,
    conversations: ConversationHandler,
    messages: MessageHandler,
) -> None:
    conv, ids = await chat(conversations, messages, 5)
    job = await handler.create_export(BOB, scope="conversation", key=conv, fmt="ndjson")
    assert job.status == "queued"
    assert await runner(db, clock, kinds(unit, 2)).run_once()
    done = await handler.get(BOB, job.id)
    assert done.status == "succeeded", done.error
    assert (done.done, done.total) == (8, 8)
    records = lines(await download(handler, BOB, job.id))
    assert [r["type"] for r in records] == ["conversation"] + ["member"] * 2 + ["message"] * 5
    assert [str(r["id"]) for r in records if r["type"] == "message"] == ids
    assert {r["text"] for r in records if r["type"] == "message"} == {
        f"secret word{i}" for i in range(5)
    }


async def test_a_csv_export_is_messages_with_a_header(
    db: Database,
    clock: FakeClock,
    unit: UnitOfWork,
    handler: JobHandler,
    conversations: ConversationHandler,
    messages: MessageHandler,
) -> None:
    conv, ids = await chat(conversations, messages, 3)
    job = await handler.create_export(ALICE, scope="conversation", key=conv, fmt="csv")
    await runner(db, clock, kinds(unit, 2)).run_once()
    chunk = await handler.read_chunk(ALICE, job.id, 0)
    assert chunk.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO((await download(handler, ALICE, job.id)).decode())))
    assert [r["id"] for r in rows] == ids
    assert rows[0]["text"].startswith("secret word")


async def test_a_runner_killed_mid_step_is_taken_over_from_its_checkpoint(
    db: Database,
    clock: FakeClock,
    unit: UnitOfWork,
    handler: JobHandler,
    conversations: ConversationHandler,
    messages: MessageHandler,
) -> None:
    conv, ids = await chat(conversations, messages, 7)
    job = await handler.create_export(ALICE, scope="conversation", key=conv, fmt="ndjson")
    real = export.ExportJob(db, 2)
    steps: list[Checkpoint] = []

    class DiesOnTheFourthStep:
        async def step(self, job: Job, at: Checkpoint) -> Step:
            done = await real.step(job, at)  # its chunk is written...
            steps.append(at)
            if len(steps) == 4:
                raise Killed  # ...but its checkpoint never is
            return done

    first = runner(db, clock, {export.KIND: DiesOnTheFourthStep()})
    with pytest.raises(Killed):
        await first.run_once()
    stuck = await handler.get(ALICE, job.id)
    assert stuck.status == "running" and stuck.checkpoint == steps[3]

    second = runner(db, clock, kinds(unit, 2))
    # The dead runner's lease still holds: nobody else may take the job yet.
    assert not await second.run_once()
    clock.advance(LEASE + 1)
    assert await second.run_once()
    done = await handler.get(ALICE, job.id)
    assert done.status == "succeeded"
    records = lines(await download(handler, ALICE, job.id))
    got = [str(r["id"]) for r in records if r["type"] == "message"]
    assert sorted(got) == sorted(ids) and len(got) == len(set(got))
    assert len([r for r in records if r["type"] == "member"]) == 2
    chunks = await db.db["export_chunks"].count_documents({"job_id": job.id})
    assert chunks == done.result["parts"]


async def test_a_finished_job_and_its_result_survive_a_new_process(
    db: Database,
    clock: FakeClock,
    unit: UnitOfWork,
    conversations: ConversationHandler,
    messages: MessageHandler,
) -> None:
    conv, _ = await chat(conversations, messages, 2)
    before = JobHandler(unit, asyncio.Event(), AuditTrail(db, clock))
    job = await before.create_export(ALICE, scope="conversation", key=conv, fmt="ndjson")
    await runner(db, clock, kinds(unit, 50)).run_once()
    restarted = JobHandler(
        UnitOfWork(db, clock, asyncio.Event()), asyncio.Event(), AuditTrail(db, clock)
    )
    assert (await restarted.get(ALICE, job.id)).status == "succeeded"
    assert len(lines(await download(restarted, ALICE, job.id))) == 5


async def test_a_job_is_its_requesters_only(
    db: Database,
    clock: FakeClock,
    handler: JobHandler,
    conversations: ConversationHandler,
    messages: MessageHandler,
) -> None:
    conv, _ = await chat(conversations, messages, 1)
    job = await handler.create_export(ALICE, scope="conversation", key=conv, fmt="ndjson")
    for stranger in (BOB, ADMIN, MALLORY, user("alice", TENANT_B)):
        with pytest.raises(NotFound) as err:
            await handler.get(stranger, job.id)
        assert err.value.code == "job_not_found"
        with pytest.raises(NotFound):
            await handler.read_chunk(stranger, job.id, 0)
    with pytest.raises(FailedPrecondition) as not_ready:
        await handler.read_chunk(ALICE, job.id, 0)
    assert not_ready.value.code == "export_not_ready"


async def test_who_may_export_what(
    handler: JobHandler, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    conv, _ = await chat(conversations, messages, 1)
    with pytest.raises(NotFound):
        await handler.create_export(CAROL, scope="conversation", key=conv, fmt="ndjson")
    with pytest.raises(NotFound):
        await handler.create_export(MALLORY, scope="conversation", key=conv, fmt="ndjson")
    with pytest.raises(PermissionDenied):
        await handler.create_export(BOB, scope="user", key="alice", fmt="ndjson")
    with pytest.raises(PermissionDenied):
        await handler.create_export(BOB, scope="tenant", key="", fmt="ndjson")
    await handler.create_export(BOB, scope="user", key="bob", fmt="csv")
    await handler.create_export(ADMIN, scope="user", key="alice", fmt="ndjson")
    await handler.create_export(ADMIN, scope="tenant", key="", fmt="ndjson")
    bad = [
        ("planet", conv, "ndjson", "invalid_scope"),
        ("conversation", conv, "xml", "invalid_format"),
        ("conversation", "", "ndjson", "invalid_id"),
        ("user", "x" * 129, "ndjson", "invalid_id"),
        ("tenant", "t", "ndjson", "invalid_id"),
    ]
    for scope, key, fmt, code in bad:
        with pytest.raises(InvalidArgument) as err:
            await handler.create_export(ADMIN, scope=scope, key=key, fmt=fmt)
        assert err.value.code == code


async def test_a_user_export_has_their_profile_memberships_and_messages(
    db: Database,
    clock: FakeClock,
    unit: UnitOfWork,
    handler: JobHandler,
    conversations: ConversationHandler,
    messages: MessageHandler,
) -> None:
    _, ids = await chat(conversations, messages, 4)
    await conversations.list_for_caller(BOB, 10)  # remembers Bob's profile
    job = await handler.create_export(ADMIN, scope="user", key="bob", fmt="ndjson")
    await runner(db, clock, kinds(unit, 3)).run_once()
    records = lines(await download(handler, ADMIN, job.id))
    assert [r["type"] for r in records] == ["user", "member", "message", "message"]
    assert records[0]["email"] == BOB.email
    assert {r["id"] for r in records[2:]} == {ids[1], ids[3]}


async def tenant_docs(db: Database, tenant: str) -> dict[str, list[Doc]]:
    out = {}
    for name in await db.db.list_collection_names():
        out[name] = [doc async for doc in db.db[name].find({"tenant_id": tenant})]
    # Event payloads are sealed: search them opened, as a replay would read them.
    if out.get("outbox"):
        keys = await db.keys.keys(tenant)
        out["outbox"] = [{**d, "payload": opened_payload(keys, d)} for d in out["outbox"]]
    return out


def mentions_anywhere(docs: dict[str, list[Doc]], needles: list[str]) -> list[str]:
    """Which needles appear in any stored document, payloads decoded."""
    found = []
    for name, rows in docs.items():
        for doc in rows:
            text = repr(doc)
            if name == "outbox":
                text += repr(decode(doc)).replace('"', "'")
            found += [f"{name}: {n}" for n in needles if n in text]
    return found


@pytest.mark.parametrize("mode", [ERASE_DELETE, ERASE_ANONYMISE])
async def test_a_user_erasure_leaves_no_trace_of_them(
    db: Database,
    clock: FakeClock,
    unit: UnitOfWork,
    handler: JobHandler,
    conversations: ConversationHandler,
    messages: MessageHandler,
    mode: str,
) -> None:
    victim = Caller(TENANT_A, "vic", frozenset({ROLE_MEMBER}), "Victoria Quux", "vic@quux.example")
    conv = (await create(conversations, ALICE, members=["vic"])).conversation.id
    await conversations.list_for_caller(victim, 10)
    mine = [
        (await send(messages, victim, conv, f"zebra{i} confession")).message.id for i in range(5)
    ]
    await messages.edit(victim, conversation_id=conv, message_id=mine[0], text="zebra0 edited")
    await send(messages, ALICE, conv, "alice keeps talking")
    other = (await create(conversations, victim, members=["alice"])).conversation.id
    await send(messages, victim, other, "zebra9 in a direct chat")
    gone = (await create(conversations, ADMIN, members=["vic"])).conversation.id
    await send(messages, victim, gone, "zebra8 in a deleted chat")
    await conversations.delete(ADMIN, gone)

    job = await handler.create_user_erasure(ADMIN, "vic")
    await runner(db, clock, kinds(unit, 2, Policies(mode))).run_once()
    done = await handler.get(ADMIN, job.id)
    assert done.status == "succeeded", done.error

    docs = await tenant_docs(db, TENANT_A)
    # The request stays, naming whom (the job, the audit log): never what they said.
    docs.pop("jobs")
    audit = {"audit": docs.pop("audit")}
    assert [r["action"] for r in audit["audit"]][-1] == "erasure.requested"
    needles = ["vic@quux.example", "Victoria Quux"]
    if mode == ERASE_DELETE:
        needles += ["zebra", "confession"]
    assert mentions_anywhere(audit, needles) == []
    assert mentions_anywhere(docs, [*needles, "'vic'"]) == []
    assert not [m for m in docs["members"] if m["user_id"] == "vic"]
    assert not [u for u in docs["users"] if u["user_id"] == "vic"]
    stored = [m for m in await db.for_tenant(TENANT_A).messages.page_by_id("", 100) if m.id in mine]
    assert len(stored) == 5
    names = {(m.sender_id, m.sender_name) for m in stored}
    assert len(names) == 1
    pseudo_id, pseudo_name = names.pop()
    assert pseudo_id.startswith("deleted-") and pseudo_name.startswith("Deleted user ")
    if mode == ERASE_DELETE:
        assert all(m.deleted and m.text == "" for m in stored)
        assert not [s for s in docs["message_search"] if s["_id"] in mine]
    else:
        assert {m.text for m in stored} >= {"zebra0 edited", "zebra1 confession"}
    # What others said stays, and the conversation stays readable.
    assert (await conversations.get(ALICE, conv)).member_count == 1
    events = [decode(d) for d in await outbox(db, conv)]
    assert events[-1].WhichOneof("payload") in (
        "message_deleted",
        "message_updated",
        "member_removed",
    )


async def test_only_tenant_admins_erase_users(handler: JobHandler) -> None:
    with pytest.raises(PermissionDenied):
        await handler.create_user_erasure(BOB, "alice")
    with pytest.raises(PermissionDenied):
        await handler.create_user_erasure(BOB, "bob")
    for bad in ("", "x" * 129, "confab-bot"):
        with pytest.raises(InvalidArgument):
            await handler.create_user_erasure(ADMIN, bad)


async def test_a_tenant_erasure_deletes_every_document_of_the_tenant_only(
    db: Database,
    clock: FakeClock,
    unit: UnitOfWork,
    handler: JobHandler,
    conversations: ConversationHandler,
    messages: MessageHandler,
) -> None:
    await chat(conversations, messages, 5)
    theirs = (await create(conversations, MALLORY, members=[])).conversation.id
    await send(messages, MALLORY, theirs, "tenant b stays")
    # A platform operation: tenant admins (and super_admin inside a tenant) may not.
    for outsider in (ADMIN, user("staff", TENANT_A, ROLE_SUPER_ADMIN)):
        with pytest.raises(PermissionDenied):
            await handler.create_tenant_erasure(outsider, TENANT_A, TENANT_A)
    with pytest.raises(InvalidArgument) as err:
        await handler.create_tenant_erasure(STAFF, TENANT_A, TENANT_B)
    assert err.value.code == "confirmation_mismatch"
    for bad in ("", PLATFORM_TENANT_ID, "x" * 129):
        with pytest.raises(InvalidArgument) as err:
            await handler.create_tenant_erasure(STAFF, bad, bad)
        assert err.value.code == "invalid_tenant_id"
    job = await handler.create_tenant_erasure(STAFF, TENANT_A, TENANT_A)
    assert job.tenant_id == TENANT_A and job.requester_id == "confab-platform:staff"
    # Asked for by the staff member, audited in the erased tenant's chain (until erased).
    trail = await db.db["audit"].find_one({"tenant_id": TENANT_A, "target_id": job.id})
    assert trail is not None and trail["actor_id"] == "confab-platform:staff"
    await runner(db, clock, kinds(unit, 2)).run_once()
    assert (await handler.get_tenant_job(STAFF, TENANT_A, job.id)).status == "succeeded"
    with pytest.raises(NotFound):
        await handler.get_tenant_job(STAFF, TENANT_B, job.id)
    left = {k: v for k, v in (await tenant_docs(db, TENANT_A)).items() if v}
    # The job, and the keys' tombstone: shredded, so nothing sealed before opens again.
    assert sorted(left) == ["jobs", "tenant_keys"]
    assert left["tenant_keys"][0]["shredded"] and left["tenant_keys"][0]["keys"] == []
    assert (await tenant_docs(db, TENANT_B))["messages"]


async def test_retention_deletes_exactly_what_is_older_and_unread_counts_follow(
    db: Database,
    clock: FakeClock,
    unit: UnitOfWork,
    conversations: ConversationHandler,
    messages: MessageHandler,
) -> None:
    from conversation.jobs.retention import RetentionScheduler

    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    old = [(await send(messages, ALICE, conv, f"ancient{i}")).message.id for i in range(5)]
    clock.advance(timedelta(days=10).total_seconds())
    new = [(await send(messages, ALICE, conv, f"recent{i}")).message.id for i in range(3)]
    theirs = (await create(conversations, MALLORY, members=[])).conversation.id
    await send(messages, MALLORY, theirs, "tenant b keeps everything")
    assert (await conversations.get(BOB, conv)).unread_count == 8

    class ForTenantA(Policies):
        async def retention(self, tenant_id: str) -> Retention:
            return Retention(message_days=7) if tenant_id == TENANT_A else Retention()

    scheduler = RetentionScheduler(
        db,
        clock,
        ForTenantA(),
        files=reaper(db),
        batch_size=2,
        period_seconds=60,
        lease_seconds=LEASE,
    )
    report = await scheduler.run_pass()
    assert report is not None and report.messages == 5 and report.tenants == [TENANT_A]
    left = {d["_id"] async for d in db.db["messages"].find({"tenant_id": TENANT_A})}
    assert left == set(new)
    assert not [d async for d in db.db["message_search"].find({"_id": {"$in": old}})]
    assert not [d async for d in db.db["outbox"].find({"message_id": {"$in": old}})]
    assert await db.db["messages"].count_documents({"tenant_id": TENANT_B}) == 1
    # Gone is not unread; the new messages still are, and history pages still work.
    view = await conversations.get(BOB, conv)
    assert view.unread_count == 3
    assert view.last_seq == 8
    page = await messages.page(BOB, conversation_id=conv, after_seq=0, before_seq=0, limit=50)
    assert [m.id for m in page.messages] == new
    # Another replica finds the lease held.
    other = RetentionScheduler(
        db,
        clock,
        ForTenantA(),
        files=reaper(db),
        batch_size=2,
        period_seconds=60,
        lease_seconds=LEASE,
    )
    assert await other.run_pass() is None


async def test_retention_removes_archived_conversations_inactive_long_enough(
    db: Database,
    clock: FakeClock,
    conversations: ConversationHandler,
    messages: MessageHandler,
) -> None:
    from conversation.jobs.retention import RetentionScheduler

    dead = (await create(conversations, ALICE, members=["bob"])).conversation.id
    await send(messages, ALICE, dead, "old news")
    await conversations.archive(ALICE, dead)
    live = (await create(conversations, ALICE, members=["bob"])).conversation.id
    await conversations.archive(ALICE, live)
    clock.advance(timedelta(days=31).total_seconds())
    fresh = (await create(conversations, ALICE, members=["bob"])).conversation.id
    await conversations.archive(ALICE, fresh)

    rules = Retention(archived_days=30)
    scheduler = RetentionScheduler(
        db,
        clock,
        Policies(retention=rules),
        files=reaper(db),
        batch_size=10,
        period_seconds=60,
        lease_seconds=LEASE,
    )
    report = await scheduler.run_pass()
    assert report is not None and report.conversations == 2
    remaining = {d["_id"] async for d in db.db["conversations"].find({})}
    assert remaining == {fresh}
    assert not await db.db["messages"].count_documents({"conversation_id": dead})
    assert not await db.db["members"].count_documents({"conversation_id": dead})


async def test_retention_purges_old_audit_records_and_the_chain_still_verifies(
    db: Database, clock: FakeClock, handler: JobHandler
) -> None:
    from conversation.jobs.retention import RetentionScheduler

    trail = AuditTrail(db, clock)
    await create(ConversationHandler(handler.unit), ALICE, members=["bob"])
    for i in range(3):
        await handler.create_export(ADMIN, scope="user", key=f"u{i}", fmt="ndjson")
    clock.advance(timedelta(days=400).total_seconds())
    recent = await handler.create_export(ADMIN, scope="user", key="recent", fmt="ndjson")
    before = await db.db["audit"].count_documents({"tenant_id": TENANT_A})

    rules = Retention(audit_days=365)
    scheduler = RetentionScheduler(
        db,
        clock,
        Policies(retention=rules),
        files=reaper(db),
        batch_size=10,
        period_seconds=60,
        lease_seconds=LEASE,
        audit=trail,
    )
    report = await scheduler.run_pass()
    assert report is not None and report.audit == before - 1
    left = [d async for d in db.db["audit"].find({"tenant_id": TENANT_A})]
    assert [d["target_id"] for d in left] == [recent.id]
    assert (await trail.verify_tenant(TENANT_A)).broken is None


async def test_a_job_is_cancelled_by_its_requester_and_its_runner_lets_go(
    db: Database,
    clock: FakeClock,
    unit: UnitOfWork,
    handler: JobHandler,
    conversations: ConversationHandler,
    messages: MessageHandler,
) -> None:
    conv, _ = await chat(conversations, messages, 6)
    queued = await handler.create_export(ALICE, scope="conversation", key=conv, fmt="ndjson")
    with pytest.raises(NotFound):
        await handler.cancel(BOB, queued.id)
    assert (await handler.cancel(ALICE, queued.id)).status == "cancelled"
    assert not await runner(db, clock, kinds(unit, 2)).run_once()

    running = await handler.create_export(ALICE, scope="conversation", key=conv, fmt="ndjson")
    real = export.ExportJob(db, 2)
    steps: list[Checkpoint] = []

    class CancelledDuringItsSecondStep:
        async def step(self, job: Job, at: Checkpoint) -> Step:
            steps.append(at)
            if len(steps) == 2:
                await handler.cancel(ALICE, job.id)
            return await real.step(job, at)

    assert await runner(db, clock, {export.KIND: CancelledDuringItsSecondStep()}).run_once()
    assert len(steps) == 2
    after = await handler.get(ALICE, running.id)
    assert after.status == "cancelled" and after.result == {}
    with pytest.raises(FailedPrecondition) as err:
        await handler.cancel(ALICE, running.id)
    assert err.value.code == "job_finished"


async def test_retention_removes_conversations_inactive_long_enough(
    db: Database, clock: FakeClock, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    from conversation.jobs.retention import RetentionScheduler

    quiet = (await create(conversations, ALICE, members=["bob"])).conversation.id
    await send(messages, ALICE, quiet, "last words")
    talking = (await create(conversations, ALICE, members=["bob"])).conversation.id
    clock.advance(timedelta(days=20).total_seconds())
    await send(messages, BOB, talking, "still here")
    clock.advance(timedelta(days=15).total_seconds())

    rules = Retention(inactive_days=30)
    scheduler = RetentionScheduler(
        db,
        clock,
        Policies(retention=rules),
        files=reaper(db),
        batch_size=10,
        period_seconds=60,
        lease_seconds=LEASE,
    )
    report = await scheduler.run_pass()
    assert report is not None and report.conversations == 1
    assert {d["_id"] async for d in db.db["conversations"].find({})} == {talking}
    with pytest.raises(NotFound):
        await conversations.get(ALICE, quiet)
    assert (await conversations.get(BOB, talking)).last_seq == 1
