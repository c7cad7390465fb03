"""Files in the compliance framework, on real MongoDB-wire and GridFS: retention,
export, user and tenant erasure remove (or list) records and bytes; key rotation
re-seals names and keeps old bytes readable."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import events_pb2
from confab_core import mongo
from confab_core.clock import FakeClock
from confab_core.crypto import LocalKeyFileProvider, blob_key_id
from confab_core.identity import ROLE_MEMBER, ROLE_TENANT_ADMIN, Caller
from confab_core.ids import new_id
from confab_devservers import MongoServer, S3Server
from conversation.handlers.audit import AuditTrail
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.jobs import JobHandler
from conversation.handlers.keys import KeyHandler
from conversation.handlers.messages import MessageHandler
from conversation.handlers.unit import UnitOfWork
from conversation.jobs import erasure, export
from conversation.jobs.files import FileReaper
from conversation.jobs.policy import ERASE_ANONYMISE, ERASE_DELETE, Retention
from conversation.jobs.retention import RetentionScheduler
from conversation.jobs.runner import JobKind, JobRunner
from conversation.reencrypt import ReencryptRunner
from conversation.storage.blobs import (
    VARIANTS,
    BlobStore,
    GridFsBlobStore,
    ObjectKey,
    S3BlobStore,
)
from conversation.storage.db import Database
from conversation.storage.filebytes import FileBytes
from conversation.storage.files import FileRecord, FileStatus

from .conftest import ALICE, BOB, MALLORY, TENANT_A, TENANT_B, create, decode, outbox, send, user

pytestmark = pytest.mark.asyncio

LEASE = 30.0
ADMIN = user("root", TENANT_A, ROLE_MEMBER, ROLE_TENANT_ADMIN)
LINK = {"url": "", "content_type": "text/plain", "size_bytes": 0}
BIG = 1 << 40


class Policies:
    def __init__(self, mode: str = ERASE_DELETE, retention: Retention | None = None) -> None:
        self.mode = mode
        self.rules = retention or Retention()

    async def retention(self, tenant_id: str) -> Retention:
        return self.rules if tenant_id == TENANT_A else Retention()

    async def erasure_mode(self, tenant_id: str) -> str:
        return self.mode


@pytest_asyncio.fixture
async def blobs(request: pytest.FixtureRequest, db: Database) -> AsyncIterator[BlobStore]:
    """GridFS, or (parametrized ``s3``, where the backend matters) versitygw."""
    if getattr(request, "param", "gridfs") == "gridfs":
        yield GridFsBlobStore(db.db)
        return
    server: S3Server = request.getfixturevalue("s3_server")
    s3 = await S3BlobStore.connect(
        endpoint_url=server.endpoint_url,
        public_endpoint_url=None,
        bucket=server.bucket,
        region=server.region,
        access_key_id=server.access_key,
        secret_access_key=server.secret_key,
    )
    try:
        yield s3
    finally:
        # The bucket outlives the test: leave it empty for the next one.
        for tenant in (TENANT_A, TENANT_B):
            await s3.delete_prefix(tenant)
        await s3.close()


BOTH = pytest.mark.parametrize("blobs", ["gridfs", "s3"], indirect=True)


@pytest.fixture
def reaper(db: Database, blobs: BlobStore) -> FileReaper:
    return FileReaper(db, blobs)


@pytest.fixture
def jobs(unit: UnitOfWork) -> JobHandler:
    return JobHandler(unit, asyncio.Event(), AuditTrail(unit.database, unit.clock))


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def upload(
    db: Database,
    blobs: BlobStore,
    clock: FakeClock,
    caller: Caller,
    conversation_id: str,
    name: str,
    *,
    status: FileStatus = FileStatus.CLEAN,
    variants: tuple[str, ...] = ("original", "thumbnail"),
) -> FileRecord:
    """A file stored as an upload leaves it: sealed bytes, its quota held, its record."""
    tenant, file_id = caller.tenant_id, new_id()
    data = f"the bytes of {name}".encode()
    stored = None
    for variant in variants:
        key = ObjectKey(tenant, conversation_id, file_id, variant)  # type: ignore[arg-type]
        if variant == "staging":
            await blobs.put(key, _chunks(data))
        else:
            stored = await FileBytes(blobs, db.keys).store(key, _chunks(data))
    store = db.for_tenant(tenant)
    assert await store.file_usage.reserve(caller.user_id, len(data), BIG, BIG)
    now = clock.now()
    rec = FileRecord(
        id=file_id,
        tenant_id=tenant,
        conversation_id=conversation_id,
        uploader_id=caller.user_id,
        client_id=file_id,
        name=name,
        status=status,
        created_at=now,
        updated_at=now,
        backend="gridfs",
        key_id=stored.key_id if stored else "",
        content_type="text/plain",
        kind="text",
        size_bytes=len(data),
        sha256=stored.sha256 if stored else "",
        reserved_bytes=len(data),
        variants=tuple(v for v in variants if v != "staging"),  # type: ignore[misc]
    )
    assert (await store.files.create(rec)).created
    return rec


async def attach(
    db: Database,
    clock: FakeClock,
    messages: MessageHandler,
    caller: Caller,
    rec: FileRecord,
    text: str = "",
) -> str:
    """A file message carrying the file (by its name, as the send copies it)."""
    sent = await send(
        messages,
        caller,
        rec.conversation_id,
        text,
        kind=pb.MESSAGE_KIND_FILE,
        file={**LINK, "url": f"https://files.example/{rec.id}", "name": rec.name},
    )
    store = db.for_tenant(caller.tenant_id)
    attached = await store.files.attach(
        rec.conversation_id, rec.id, caller.user_id, sent.message.id, clock.now()
    )
    assert attached is not None
    return sent.message.id


async def objects(blobs: BlobStore, rec: FileRecord) -> list[str]:
    """The variants of the file still in the blob store."""
    out = []
    for variant in VARIANTS:
        key = ObjectKey(rec.tenant_id, rec.conversation_id, rec.id, variant)
        if await blobs.size(key) is not None:
            out.append(variant)
    return out


async def records(db: Database, tenant_id: str) -> set[str]:
    return {str(d["_id"]) async for d in db.db["files"].find({"tenant_id": tenant_id})}


async def held(db: Database, caller: Caller) -> tuple[int, int]:
    usage = await db.for_tenant(caller.tenant_id).file_usage.usage(caller.user_id)
    return usage.user_bytes, usage.tenant_bytes


def kinds(
    unit: UnitOfWork, reaper: FileReaper, policies: Policies | None = None
) -> dict[str, JobKind]:
    policies = policies or Policies()
    return {
        export.KIND: export.ExportJob(unit.database, 2),
        erasure.USER_KIND: erasure.UserErasureJob(unit, policies, [], 2, files=reaper),
        erasure.TENANT_KIND: erasure.TenantErasureJob(
            unit, KeyHandler(unit.database), [], 2, files=reaper
        ),
    }


async def run_job(db: Database, clock: FakeClock, jobs: dict[str, JobKind]) -> None:
    assert await JobRunner(db, clock, jobs, lease_seconds=LEASE, poll_seconds=0.01).run_once()


@BOTH
async def test_retention_removes_old_messages_files_unattached_and_abandoned_uploads(
    db: Database,
    clock: FakeClock,
    blobs: BlobStore,
    reaper: FileReaper,
    conversations: ConversationHandler,
    messages: MessageHandler,
) -> None:
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    old = await upload(db, blobs, clock, ALICE, conv, "old.txt")
    await attach(db, clock, messages, ALICE, old)
    loose = await upload(db, blobs, clock, ALICE, conv, "never sent.txt")
    abandoned = await upload(
        db,
        blobs,
        clock,
        ALICE,
        conv,
        "abandoned.txt",
        status=FileStatus.UPLOADING,
        variants=("staging",),
    )
    theirs_conv = (await create(conversations, MALLORY, members=[])).conversation.id
    theirs = await upload(db, blobs, clock, MALLORY, theirs_conv, "b keeps.txt")
    clock.advance(timedelta(days=10).total_seconds())
    new = await upload(db, blobs, clock, ALICE, conv, "new.txt")
    new_message = await attach(db, clock, messages, ALICE, new)
    uploading = await upload(
        db,
        blobs,
        clock,
        BOB,
        conv,
        "in flight.txt",
        status=FileStatus.UPLOADING,
        variants=("staging",),
    )
    clock.advance(timedelta(minutes=30).total_seconds())

    scheduler = RetentionScheduler(
        db,
        clock,
        Policies(retention=Retention(message_days=7)),
        files=reaper,
        batch_size=2,
        period_seconds=60,
        lease_seconds=LEASE,
    )
    report = await scheduler.run_pass()
    assert report is not None and report.files == 3
    assert await records(db, TENANT_A) == {new.id, uploading.id}
    for gone in (old, loose, abandoned):
        assert await objects(blobs, gone) == []
    assert await objects(blobs, new) == ["original", "thumbnail"]
    assert await objects(blobs, uploading) == ["staging"]
    assert await objects(blobs, theirs) == ["original", "thumbnail"]
    # What the removed files held goes back to the quotas.
    assert await held(db, ALICE) == (new.size_bytes, new.size_bytes + uploading.size_bytes)
    page = await messages.page(ALICE, conversation_id=conv, after_seq=0, before_seq=0, limit=50)
    assert [m.id for m in page.messages] == [new_message]

    # An hour and more later the abandoned direct upload goes too, policy or not.
    clock.advance(timedelta(hours=1).total_seconds())
    scheduler = RetentionScheduler(
        db, clock, Policies(), files=reaper, batch_size=2, period_seconds=60, lease_seconds=LEASE
    )
    assert (report := await scheduler.run_pass()) is not None and report.files == 1
    assert await records(db, TENANT_A) == {new.id}
    assert await objects(blobs, uploading) == []
    assert await held(db, BOB) == (0, new.size_bytes)


@BOTH
async def test_retention_of_an_archived_conversation_takes_its_objects(
    db: Database,
    clock: FakeClock,
    blobs: BlobStore,
    reaper: FileReaper,
    conversations: ConversationHandler,
    messages: MessageHandler,
) -> None:
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    kept = (await create(conversations, ALICE, members=["bob"])).conversation.id
    files = [await upload(db, blobs, clock, ALICE, conv, f"f{i}.txt") for i in range(3)]
    await attach(db, clock, messages, ALICE, files[0])
    other = await upload(db, blobs, clock, ALICE, kept, "kept.txt")
    await conversations.archive(ALICE, conv)
    clock.advance(timedelta(days=40).total_seconds())
    await send(messages, ALICE, kept, "still active")
    scheduler = RetentionScheduler(
        db,
        clock,
        Policies(retention=Retention(archived_days=30)),
        files=reaper,
        batch_size=2,
        period_seconds=60,
        lease_seconds=LEASE,
    )
    report = await scheduler.run_pass()
    assert report is not None and report.conversations == 1 and report.files == 3
    assert await records(db, TENANT_A) == {other.id}
    assert not [f for f in files if await objects(blobs, f)]
    assert await objects(blobs, other) == ["original", "thumbnail"]
    assert await held(db, ALICE) == (other.size_bytes, other.size_bytes)


async def test_exports_list_files_with_metadata_and_links(
    db: Database,
    clock: FakeClock,
    unit: UnitOfWork,
    blobs: BlobStore,
    reaper: FileReaper,
    jobs: JobHandler,
    conversations: ConversationHandler,
    messages: MessageHandler,
) -> None:
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    mine = await upload(db, blobs, clock, ALICE, conv, "plan.txt")
    message_id = await attach(db, clock, messages, ALICE, mine)
    bobs = await upload(db, blobs, clock, BOB, conv, "bob's.txt", status=FileStatus.PENDING)
    elsewhere = (await create(conversations, BOB, members=[])).conversation.id
    await upload(db, blobs, clock, BOB, elsewhere, "private.txt")

    async def exported(caller: Caller, scope: str, key: str) -> list[dict[str, object]]:
        job = await jobs.create_export(caller, scope=scope, key=key, fmt="ndjson")
        await run_job(db, clock, kinds(unit, reaper))
        done = await jobs.get(caller, job.id)
        assert done.status == "succeeded", done.error
        first = await jobs.read_chunk(caller, job.id, 0)
        parts = [first.data]
        for part in range(1, first.parts):
            parts.append((await jobs.read_chunk(caller, job.id, part)).data)
        lines = b"".join(parts).decode().splitlines()
        return [r for r in map(json.loads, lines) if r["type"] == "file"]

    in_conv = await exported(BOB, "conversation", conv)
    assert {r["id"] for r in in_conv} == {mine.id, bobs.id}
    plan = next(r for r in in_conv if r["id"] == mine.id)
    assert plan == {
        "type": "file",
        "id": mine.id,
        "conversation_id": conv,
        "uploader_id": "alice",
        "name": "plan.txt",
        "content_type": "text/plain",
        "kind": "text",
        "size_bytes": mine.size_bytes,
        "sha256": mine.sha256,
        "status": "clean",
        "created_at": mine.created_at.isoformat(),
        "message_id": message_id,
        "link": f"/api/v1/conversations/{conv}/files/{mine.id}",
    }
    assert next(r for r in in_conv if r["id"] == bobs.id)["status"] == "pending"
    # A user's export: what they uploaded, everywhere in the tenant.
    users = await exported(ADMIN, "user", "bob")
    assert {r["name"] for r in users} == {"bob's.txt", "private.txt"}
    assert len(await exported(ADMIN, "tenant", "")) == 3


@pytest.mark.parametrize("mode", [ERASE_DELETE, ERASE_ANONYMISE])
@BOTH
async def test_a_user_erasure_removes_their_files_and_bytes_whatever_the_mode(
    db: Database,
    clock: FakeClock,
    unit: UnitOfWork,
    blobs: BlobStore,
    reaper: FileReaper,
    jobs: JobHandler,
    conversations: ConversationHandler,
    messages: MessageHandler,
    mode: str,
) -> None:
    victim = Caller(TENANT_A, "vic", frozenset({ROLE_MEMBER}), "Victoria Quux", "vic@quux.example")
    conv = (await create(conversations, ALICE, members=["vic"])).conversation.id
    theirs = [await upload(db, blobs, clock, victim, conv, f"zanzibar{i}.txt") for i in range(3)]
    message_id = await attach(db, clock, messages, victim, theirs[0], text="my holiday")
    kept = await upload(db, blobs, clock, ALICE, conv, "alice keeps.txt")
    assert await messages.search(ALICE, query="zanzibar0", conversation_id="", limit=5)

    job = await jobs.create_user_erasure(ADMIN, "vic")
    await run_job(db, clock, kinds(unit, reaper, Policies(mode)))
    assert (await jobs.get(ADMIN, job.id)).status == "succeeded"

    assert await records(db, TENANT_A) == {kept.id}
    assert not [f for f in theirs if await objects(blobs, f)]
    assert await objects(blobs, kept) == ["original", "thumbnail"]
    assert await held(db, victim) == (0, kept.size_bytes)
    assert await held(db, ALICE) == (kept.size_bytes, kept.size_bytes)
    stored = await db.for_tenant(TENANT_A).messages.get(conv, message_id)
    assert stored is not None
    if mode == ERASE_DELETE:
        assert stored.deleted and stored.file is None
    else:
        # The words stay; the attachment is a tombstone, out of search.
        assert stored.text == "my holiday" and stored.file is not None
        assert (stored.file.name, stored.file.url) == ("", "")
        assert stored.file.content_type == "text/plain"
        assert await messages.search(ALICE, query="holiday", conversation_id="", limit=5)
    assert await messages.search(ALICE, query="zanzibar0", conversation_id="", limit=5) == []
    # No retained event names the file any more.
    assert "zanzibar" not in repr([decode(d) for d in await outbox(db, conv)])


async def test_an_erased_uploaders_file_events_lose_the_name() -> None:
    event = events_pb2.ConversationEvent()
    event.file_updated.file.uploader_id = "vic"
    event.file_updated.file.name = "passport.png"
    rewrite = erasure.replacing("vic", "deleted-abc")
    after = events_pb2.ConversationEvent()
    changed = rewrite(event.SerializeToString())
    assert changed is not None
    after.ParseFromString(changed)
    assert after.file_updated.file.uploader_id == "deleted-abc"
    assert after.file_updated.file.name == ""
    other = events_pb2.ConversationEvent()
    other.file_updated.file.uploader_id = "alice"
    other.file_updated.file.name = "alice.png"
    assert rewrite(other.SerializeToString()) is None


@BOTH
async def test_a_tenant_erasure_removes_every_object_of_the_tenant_only(
    db: Database,
    clock: FakeClock,
    unit: UnitOfWork,
    blobs: BlobStore,
    reaper: FileReaper,
    jobs: JobHandler,
    conversations: ConversationHandler,
) -> None:
    from confab_core.identity import PLATFORM_TENANT_ID, ROLE_SUPER_ADMIN

    staff = user("staff", PLATFORM_TENANT_ID, ROLE_SUPER_ADMIN)
    convs = [(await create(conversations, ALICE, members=["bob"])).conversation.id for _ in "ab"]
    ours = [await upload(db, blobs, clock, ALICE, c, "ours.txt") for c in convs]
    ours.append(
        await upload(
            db,
            blobs,
            clock,
            BOB,
            convs[0],
            "staged.txt",
            status=FileStatus.UPLOADING,
            variants=("staging",),
        )
    )
    theirs_conv = (await create(conversations, MALLORY, members=[])).conversation.id
    theirs = await upload(db, blobs, clock, MALLORY, theirs_conv, "theirs.txt")

    job = await jobs.create_tenant_erasure(staff, TENANT_A, TENANT_A)
    await run_job(db, clock, kinds(unit, reaper))
    assert (await jobs.get_tenant_job(staff, TENANT_A, job.id)).status == "succeeded"
    assert not [f for f in ours if await objects(blobs, f)]
    if isinstance(blobs, GridFsBlobStore):
        assert await db.db["blobs.files"].count_documents({"metadata.tenant_id": TENANT_A}) == 0
    assert await blobs.delete_prefix(TENANT_A) == 0
    assert await records(db, TENANT_A) == set()
    assert await db.db["file_usage"].count_documents({"tenant_id": TENANT_A}) == 0
    assert await objects(blobs, theirs) == ["original", "thumbnail"]
    assert await records(db, TENANT_B) == {theirs.id}
    opened = FileBytes(blobs, db.keys).open(
        ObjectKey(TENANT_B, theirs_conv, theirs.id, "original"), theirs.key_id
    )
    assert b"".join([c async for c in opened]) == b"the bytes of theirs.txt"


async def test_a_rotation_reseals_file_names_and_old_bytes_stay_readable(
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
        blobs = GridFsBlobStore(db.db)
        rec = await upload(db, blobs, clock, ALICE, "conv-1", "before rotation.txt")
        before = await db.db["files"].find_one({"_id": rec.id})
        assert before is not None and blob_key_id(before["name"]) == rec.key_id == "k1"
        await KeyHandler(db).rotate(TENANT_A)
        clock.advance(181)
        await ReencryptRunner(db, batch_size=10, poll_seconds=1, lease_seconds=30).run_once()
        after = await db.db["files"].find_one({"_id": rec.id})
        assert after is not None and blob_key_id(after["name"]) == "k2"
        stored = await db.for_tenant(TENANT_A).files.get("conv-1", rec.id)
        assert stored is not None and stored.name == "before rotation.txt"
        # The bytes keep the key they were sealed with, which stays for reading.
        assert stored.key_id == "k1"
        opened = FileBytes(blobs, db.keys).open(
            ObjectKey(TENANT_A, "conv-1", rec.id, "original"), stored.key_id
        )
        assert b"".join([c async for c in opened]) == b"the bytes of before rotation.txt"
        newer = await upload(db, blobs, clock, ALICE, "conv-1", "after rotation.txt")
        assert newer.key_id == "k2"
    finally:
        await client.drop_database(name)
        await client.close()


async def test_forgetting_a_file_name_twice_writes_once(
    db: Database,
    clock: FakeClock,
    unit: UnitOfWork,
    blobs: BlobStore,
    reaper: FileReaper,
    conversations: ConversationHandler,
    messages: MessageHandler,
) -> None:
    """A files step redone after a crash (names forgotten, records not yet
    removed) emits no second event and does not fail the job."""
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    rec = await upload(db, blobs, clock, ALICE, conv, "zanzibar.txt")
    await attach(db, clock, messages, ALICE, rec, text="look")
    job = erasure.UserErasureJob(unit, Policies(ERASE_ANONYMISE), [], 2, files=reaper)
    attached = await db.for_tenant(TENANT_A).files.of_user("alice", "", 10)
    before = len(await outbox(db, conv))
    await job._forget_file_names(ADMIN, attached)
    await job._forget_file_names(ADMIN, attached)
    events = [decode(d) for d in await outbox(db, conv)]
    assert len(events) == before + 1
    assert events[-1].message_updated.message.file.name == ""
