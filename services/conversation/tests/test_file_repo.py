"""File records, the processor's leased queue, and the storage quotas' counters."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest

from confab_core.clock import FakeClock
from conversation.storage.db import TENANT_COLLECTIONS, Database, Transaction
from conversation.storage.files import (
    CleanChange,
    ClientIdTaken,
    FileRecord,
    FileStatus,
    PendingChange,
    page_token,
    parse_page_token,
)

from .conftest import TENANT_A, TENANT_B

pytestmark = pytest.mark.asyncio

LEASE = timedelta(seconds=30)


def new_file(
    clock: FakeClock,
    file_id: str = "f1",
    *,
    conv: str = "c1",
    uploader: str = "u1",
    client_id: str = "",
    status: FileStatus = FileStatus.PENDING,
    tenant: str = TENANT_A,
) -> FileRecord:
    now = clock.now()
    return FileRecord(
        id=file_id,
        tenant_id=tenant,
        conversation_id=conv,
        uploader_id=uploader,
        client_id=client_id or f"client-{file_id}",
        name="holiday photo.jpg",
        status=status,
        created_at=now,
        updated_at=now,
        backend="gridfs",
        key_id="k1",
        declared_content_type="image/jpeg",
        content_type="image/jpeg",
        kind="image",
        size_bytes=1234,
        sha256="ab" * 32,
        reserved_bytes=1234,
        variants=("original",) if status == FileStatus.PENDING else (),
    )


async def test_create_is_retry_safe_and_the_name_sealed(db: Database, clock: FakeClock) -> None:
    files = db.files(TENANT_A)
    first = await files.create(new_file(clock))
    assert first.created
    retry = await files.create(new_file(clock, "f2", client_id="client-f1"))
    assert not retry.created
    assert retry.file.id == "f1"
    # Another uploader may use the same client id.
    other = await files.create(new_file(clock, "f3", client_id="client-f1", uploader="u2"))
    assert other.created
    got = await files.get("c1", "f1")
    assert got is not None
    assert got.name == "holiday photo.jpg"
    assert got.status == FileStatus.PENDING
    assert got.has_bytes and not got.has_thumbnail
    raw = await db.db["files"].find_one({"_id": "f1"})
    assert raw is not None
    assert isinstance(raw["name"], bytes)
    assert b"holiday" not in raw["name"]
    assert raw["tenant_id"] == TENANT_A


async def test_another_tenant_or_conversation_sees_nothing(db: Database, clock: FakeClock) -> None:
    await db.files(TENANT_A).create(new_file(clock))
    assert await db.files(TENANT_B).get("c1", "f1") is None
    assert await db.files(TENANT_A).get("c2", "f1") is None
    assert (await db.files(TENANT_B).page("c1", 10)).files == []
    assert await db.files(TENANT_B).mark_deleted("c1", "f1", clock.now()) is None
    assert await db.files(TENANT_B).attach("c1", "f1", "u1", "m1", clock.now()) is None
    assert (await db.files(TENANT_A).get("c1", "f1")) is not None


async def test_page_newest_first_without_deleted(db: Database, clock: FakeClock) -> None:
    files = db.files(TENANT_A)
    for i in range(5):
        await files.create(new_file(clock, f"f{i}"))
        clock.advance(1)
    await files.mark_deleted("c1", "f2", clock.now())
    first = await files.page("c1", 2)
    assert [f.id for f in first.files] == ["f4", "f3"]
    second = await files.page("c1", 2, first.next_token)
    assert [f.id for f in second.files] == ["f1", "f0"]
    assert second.next_token == ""
    assert parse_page_token(page_token(first.files[0])) == (first.files[0].created_at, "f4")
    for bad in ("", "!!", "bm90LWEtdG9rZW4"):
        with pytest.raises(ValueError):
            parse_page_token(bad)


async def test_direct_upload_moves_to_pending_once(db: Database, clock: FakeClock) -> None:
    files = db.files(TENANT_A)
    await files.create(new_file(clock, status=FileStatus.UPLOADING))
    change = PendingChange(
        size_bytes=99, sha256="cd" * 32, content_type="application/pdf", kind="pdf", key_id="k1"
    )
    done = await files.mark_pending("f1", change, clock.now())
    assert done is not None
    assert (done.status, done.size_bytes, done.kind, done.variants) == (
        FileStatus.PENDING,
        99,
        "pdf",
        ("original",),
    )
    assert await files.mark_pending("f1", change, clock.now()) is None


async def test_clean_infected_rejected_only_from_pending(db: Database, clock: FakeClock) -> None:
    files = db.files(TENANT_A)
    await files.create(new_file(clock, "f1"))
    await files.create(new_file(clock, "f2"))
    await files.create(new_file(clock, "f3"))
    clean = await files.mark_clean(
        "f1",
        CleanChange(width=640, height=480, variants=("original", "thumbnail"), size_bytes=1000),
        clock.now(),
    )
    assert clean is not None
    assert (clean.status, clean.width, clean.has_thumbnail, clean.has_preview) == (
        FileStatus.CLEAN,
        640,
        True,
        False,
    )
    assert clean.size_bytes == 1000 and clean.sha256 == "ab" * 32
    assert await files.mark_infected("f1", clock.now()) is None
    infected = await files.mark_infected("f2", clock.now())
    assert infected is not None and infected.status == FileStatus.INFECTED
    assert infected.reason == "file_infected"
    rejected = await files.mark_rejected("f3", "image_too_large", clock.now())
    assert rejected is not None and rejected.reason == "image_too_large"
    assert await files.mark_clean("f3", CleanChange(), clock.now()) is None


async def test_attach_only_an_unattached_file_of_the_sender(db: Database, clock: FakeClock) -> None:
    files = db.files(TENANT_A)
    await files.create(new_file(clock, "f1"))
    await files.create(new_file(clock, "f2"))
    await files.mark_infected("f2", clock.now())
    assert await files.attach("c1", "f1", "u2", "m1", clock.now()) is None
    assert await files.attach("c2", "f1", "u1", "m1", clock.now()) is None
    attached = await files.attach("c1", "f1", "u1", "m1", clock.now())
    assert attached is not None and attached.message_id == "m1"
    assert await files.attach("c1", "f1", "u1", "m2", clock.now()) is None
    assert await files.attach("c1", "f2", "u1", "m2", clock.now()) is None
    assert [f.id for f in await files.of_message("c1", "m1")] == ["f1"]
    assert list(await files.of_messages(["m1", "m2", ""])) == ["m1"]


async def test_a_deleted_message_deletes_its_files_for_purging(
    db: Database, clock: FakeClock
) -> None:
    files = db.files(TENANT_A)
    await files.create(new_file(clock, "f1"))
    await files.attach("c1", "f1", "u1", "m1", clock.now())
    deleted = await files.delete_of_message("c1", "m1", clock.now())
    assert [(f.id, f.status) for f in deleted] == [("f1", FileStatus.DELETED)]
    assert deleted[0].deleted_at == clock.now()
    assert await files.delete_of_message("c1", "m1", clock.now()) == []
    queue = db.file_queue()
    claimed = await queue.claim_due_purge(clock.now(), "worker-1", LEASE)
    assert claimed is not None and claimed.id == "f1" and claimed.name == "holiday photo.jpg"
    assert await queue.claim_due_purge(clock.now(), "worker-2", LEASE) is None
    assert await queue.mark_purged(TENANT_A, "f1", "worker-2", clock.now()) is False
    assert await queue.mark_purged(TENANT_A, "f1", "worker-1", clock.now())
    gone = await files.get("c1", "f1")
    assert gone is not None and not gone.has_bytes
    assert await queue.claim_due_purge(clock.now(), "worker-1", LEASE) is None


async def test_the_work_queue_leases_across_tenants(db: Database, clock: FakeClock) -> None:
    await db.files(TENANT_A).create(new_file(clock, "fa"))
    clock.advance(1)
    await db.files(TENANT_B).create(new_file(clock, "fb", tenant=TENANT_B))
    queue = db.file_queue()
    first = await queue.claim_due_pending(clock.now(), "w1", LEASE)
    second = await queue.claim_due_pending(clock.now(), "w2", LEASE)
    assert first is not None and second is not None
    assert (first.tenant_id, first.id, first.lease_owner) == (TENANT_A, "fa", "w1")
    assert (second.tenant_id, second.id) == (TENANT_B, "fb")
    assert await queue.claim_due_pending(clock.now(), "w3", LEASE) is None
    # The scanner is down: back off.
    later = clock.now() + timedelta(minutes=1)
    assert not await queue.release_with_backoff(TENANT_A, "fa", "w2", later)
    assert await queue.release_with_backoff(TENANT_A, "fa", "w1", later)
    assert await queue.claim_due_pending(clock.now(), "w3", LEASE) is None
    clock.advance(61)
    # A dead worker's lease ended: w2's file goes first (due earlier), then the backed-off one.
    retaken = await queue.claim_due_pending(clock.now(), "w3", LEASE)
    assert retaken is not None and retaken.id == "fb"
    again = await queue.claim_due_pending(clock.now(), "w4", LEASE)
    assert again is not None and again.id == "fa" and again.scan_attempts == 1
    # w2 lost its lease and can no longer finish the file.
    assert await db.files(TENANT_B).mark_clean("fb", CleanChange(), clock.now(), owner="w2") is None
    done = await db.files(TENANT_B).mark_clean("fb", CleanChange(), clock.now(), owner="w3")
    assert done is not None and done.lease_owner == "" and done.lease_until is None
    assert await queue.renew(TENANT_A, "fa", "w4", clock.now(), LEASE)
    assert not await queue.renew(TENANT_A, "fa", "w3", clock.now(), LEASE)


async def test_user_files_and_stale_uploads(db: Database, clock: FakeClock) -> None:
    files = db.files(TENANT_A)
    await files.create(new_file(clock, "f1", status=FileStatus.UPLOADING))
    clock.advance(3600)
    await files.create(new_file(clock, "f2", status=FileStatus.UPLOADING))
    await files.create(new_file(clock, "f3", uploader="u2"))
    stale = await files.stale_uploading(clock.now() - timedelta(minutes=30), 10)
    assert [f.id for f in stale] == ["f1"]
    assert [f.id for f in await files.of_user("u1", "", 10)] == ["f1", "f2"]
    assert [f.id for f in await files.of_user("u1", "f1", 10)] == ["f2"]
    assert [f.id for f in await files.of_conversation("c1", "", 10)] == ["f1", "f2", "f3"]


async def test_records_bind_to_a_transaction(db: Database, clock: FakeClock) -> None:
    class Abort(Exception):
        pass

    async def body(tx: Transaction) -> None:
        store = tx.for_tenant(TENANT_A)
        await store.files.create(new_file(clock))
        assert await store.file_usage.reserve("u1", 1234, 10_000, 10_000)
        raise Abort

    with pytest.raises(Abort):
        await db.transaction(body)
    assert await db.files(TENANT_A).get("c1", "f1") is None
    assert (await db.file_usage(TENANT_A).usage("u1")).tenant_bytes == 0

    async def twin(tx: Transaction) -> None:
        store = tx.for_tenant(TENANT_A)
        await store.files.create(new_file(clock, "f9", client_id="client-f1"))

    await db.files(TENANT_A).create(new_file(clock))
    # Inside a transaction the retry finds the existing file too.
    await db.transaction(twin)
    assert await db.files(TENANT_A).get("c1", "f9") is None
    assert ClientIdTaken.__doc__


async def test_quota_reserve_and_release(db: Database) -> None:
    usage = db.file_usage(TENANT_A)
    assert await usage.reserve("u1", 60, user_quota=100, tenant_quota=150)
    assert not await usage.reserve("u1", 50, user_quota=100, tenant_quota=150)
    assert await usage.reserve("u2", 90, user_quota=100, tenant_quota=150)
    # Over the tenant's quota though within the user's: nothing added anywhere.
    assert not await usage.reserve("u3", 10, user_quota=100, tenant_quota=150)
    assert await usage.usage("u3") == type(await usage.usage("u3"))(0, 150)
    assert not await usage.reserve("u1", 101, user_quota=100, tenant_quota=1000)
    await usage.release("u1", 60)
    assert (await usage.usage("u1")).user_bytes == 0
    assert await usage.reserve("u3", 10, user_quota=100, tenant_quota=150)
    assert (await db.file_usage(TENANT_B).usage("u1")).tenant_bytes == 0
    await usage.forget_user("u2")
    assert await usage.usage("u2") == type(await usage.usage("u2"))(0, 10)


async def test_parallel_reserves_never_pass_a_full_quota(db: Database) -> None:
    usage = db.file_usage(TENANT_A)
    results = await asyncio.gather(
        *(usage.reserve(f"u{i % 3}", 10, user_quota=1000, tenant_quota=100) for i in range(30))
    )
    assert sum(results) == 10
    assert (await usage.usage("u0")).tenant_bytes == 100

    async def in_transaction(i: int) -> bool:
        async def body(tx: Transaction) -> bool:
            return await tx.for_tenant(TENANT_B).file_usage.reserve("u1", 10, 50, 1000)

        return await db.transaction(body)

    results = await asyncio.gather(*(in_transaction(i) for i in range(12)))
    assert sum(results) == 5
    assert (await db.file_usage(TENANT_B).usage("u1")).user_bytes == 50


async def test_files_are_tenant_data() -> None:
    assert "files" in TENANT_COLLECTIONS
    assert "file_usage" in TENANT_COLLECTIONS


async def test_records_are_frozen() -> None:
    rec = new_file(FakeClock())
    with pytest.raises(AttributeError):
        rec.name = "x"  # type: ignore[misc]
    assert replace(rec, name="y").name == "y"
