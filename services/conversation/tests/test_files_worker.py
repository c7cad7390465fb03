"""The file processor over a real MongoDB-wire server (GridFS) and a real clamd:
scan verdicts, scanner outages, metadata stripping, thumbnails, previews,
refusals, direct uploads, purges and leases. Time moves by the injected clock."""

from __future__ import annotations

import asyncio
import hashlib
import io
import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from PIL import Image
from prometheus_client import REGISTRY

from confab.conversation.v1 import files_pb2
from confab_core.clock import FakeClock
from confab_core.identity import ROLE_MEMBER, ROLE_TENANT_ADMIN, Caller
from confab_core.ids import new_id
from confab_devservers import ClamdServer, S3Server
from conversation.clients.scanner import ClamdScanner
from conversation.files_worker import FileWorker
from conversation.handlers.audit import AuditTrail
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.fileprocess import FileProcessor, FileWork, ImagePolicy
from conversation.handlers.unit import UnitOfWork
from conversation.storage.audit import AuditQuery, AuditRecord, Target
from conversation.storage.blobs import (
    BlobStore,
    GridFsBlobStore,
    ObjectKey,
    S3BlobStore,
    Variant,
)
from conversation.storage.db import Database, Transaction
from conversation.storage.filebytes import FileBytes
from conversation.storage.files import FileRecord, FileStatus

from .conftest import ALICE, create, decode, outbox, user
from .test_files_worker_previews import GPS_IFD, photo, png_header
from .test_files_worker_scanner import EICAR

pytestmark = pytest.mark.asyncio

QUOTA = 10**12
LEASE_SECONDS = 60.0


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def one(data: bytes) -> AsyncIterator[bytes]:
    yield data


class Setup:
    def __init__(
        self,
        db: Database,
        unit: UnitOfWork,
        clock: FakeClock,
        clamd: ClamdServer,
        conv: str,
        blobs: BlobStore | None = None,
    ) -> None:
        self.db = db
        self.unit = unit
        self.clock = clock
        self.clamd = clamd
        self.conv = conv
        self.files = FileBytes(blobs or GridFsBlobStore(db.db), db.keys)
        self.policy = ImagePolicy()

    def processor(self, *, port: int | None = None) -> FileProcessor:
        scanner = ClamdScanner(self.clamd.host, port or self.clamd.port, 5)

        async def policies(tenant_id: str) -> ImagePolicy:
            return self.policy

        return FileProcessor(
            self.unit,
            self.files,
            scanner,
            policies,
            AuditTrail(self.db, self.clock, self.unit.locks),
            self.clock,
            lease_seconds=LEASE_SECONDS,
        )

    def worker(self, processor: FileProcessor | None = None) -> FileWorker:
        return FileWorker(processor or self.processor(), FileWork(), concurrency=2, poll_seconds=1)

    def key(self, rec: FileRecord, variant: Variant) -> ObjectKey:
        return ObjectKey(rec.tenant_id, rec.conversation_id, rec.id, variant)

    async def upload(
        self,
        data: bytes,
        content_type: str,
        kind: str,
        *,
        caller: Caller = ALICE,
        staged: bool = False,
    ) -> FileRecord:
        """What the upload handler leaves: a PENDING record, its bytes sealed
        (or, for a direct upload, plaintext in the staging object), the quota held."""
        file_id = new_id()
        now = self.clock.now()
        rec = FileRecord(
            id=file_id,
            tenant_id=caller.tenant_id,
            conversation_id=self.conv,
            uploader_id=caller.user_id,
            client_id=file_id,
            name="upload",
            status=FileStatus.PENDING,
            created_at=now,
            updated_at=now,
            backend="gridfs",
            content_type=content_type,
            kind=kind,
            size_bytes=len(data),
            reserved_bytes=len(data),
            variants=("original",),
        )
        if staged:
            await self.files.blobs.put(self.key(rec, "staging"), one(data))
        else:
            stored = await self.files.store(self.key(rec, "original"), one(data))
            rec = replace(rec, key_id=stored.key_id, sha256=stored.sha256)
        await self.db.files(caller.tenant_id).create(rec)
        assert await self.db.file_usage(caller.tenant_id).reserve(
            caller.user_id, len(data), QUOTA, QUOTA
        )
        return rec

    async def get(self, rec: FileRecord) -> FileRecord:
        got = await self.db.files(rec.tenant_id).get(rec.conversation_id, rec.id)
        assert got is not None
        return got

    async def read(self, rec: FileRecord, variant: Variant) -> bytes:
        return b"".join([c async for c in self.files.open(self.key(rec, variant))])

    async def stored(self, rec: FileRecord, variant: Variant) -> bool:
        return await self.files.blobs.size(self.key(rec, variant)) is not None

    async def updates(self) -> list[files_pb2.File]:
        events = [decode(doc) for doc in await outbox(self.db, self.conv)]
        return [e.file_updated.file for e in events if e.WhichOneof("payload") == "file_updated"]

    async def audit(self, q: AuditQuery) -> list[AuditRecord]:
        async def body(tx: Transaction) -> list[AuditRecord]:
            return await tx.for_tenant(ALICE.tenant_id).audit.query(q)

        return await self.db.transaction(body)

    async def usage(self, caller: Caller = ALICE) -> int:
        return (await self.db.file_usage(caller.tenant_id).usage(caller.user_id)).user_bytes


@pytest_asyncio.fixture
async def setup(
    db: Database,
    unit: UnitOfWork,
    clock: FakeClock,
    conversations: ConversationHandler,
    clamd_server: ClamdServer,
    wakeup: asyncio.Event,
) -> Setup:
    created = await create(conversations, ALICE, members=["bob"])
    wakeup.clear()
    return Setup(db, unit, clock, clamd_server, created.conversation.id)


async def test_a_clean_file_becomes_clean_with_an_event(setup: Setup) -> None:
    rec = await setup.upload(b"just some notes\n" * 100, "text/plain", "text")
    assert await setup.worker().run_once() is False

    after = await setup.get(rec)
    assert after.status == FileStatus.CLEAN
    assert after.variants == ("original",)
    assert after.sha256 == hashlib.sha256(b"just some notes\n" * 100).hexdigest()
    assert after.lease_owner == ""
    [update] = await setup.updates()
    assert update.id == rec.id
    assert update.status == files_pb2.FILE_STATUS_CLEAN
    assert await setup.usage() == rec.size_bytes


async def test_eicar_is_infected_its_bytes_gone_audited_and_quota_released(
    setup: Setup,
) -> None:
    rec = await setup.upload(EICAR, "text/plain", "text")
    await setup.worker().run_once()

    after = await setup.get(rec)
    assert after.status == FileStatus.INFECTED
    assert not await setup.stored(rec, "original")
    assert after.variants == ()
    assert await setup.usage() == 0
    [update] = await setup.updates()
    assert update.status == files_pb2.FILE_STATUS_INFECTED
    [audited] = await setup.audit(AuditQuery(action="file.infected"))
    assert audited.entry.actor_id == "confab-system"
    assert audited.entry.target == Target("file", rec.id)
    assert "Eicar" in str(audited.entry.after["signature"])


async def test_scanner_down_keeps_pending_with_backoff_then_scans_when_back(
    setup: Setup,
) -> None:
    rec = await setup.upload(b"%PDF-not-really", "text/plain", "text")
    down = setup.worker(setup.processor(port=dead_port()))

    await down.run_once()
    first = await setup.get(rec)
    assert first.status == FileStatus.PENDING
    assert first.scan_attempts == 1
    assert REGISTRY.get_sample_value("confab_files_pending") == 1
    assert first.next_attempt_at == setup.clock.now() + timedelta(seconds=1)
    assert first.lease_owner == ""

    # Not due yet: nothing is tried again before the backoff ends.
    await down.run_once()
    assert (await setup.get(rec)).scan_attempts == 1
    setup.clock.advance(1)
    await down.run_once()
    second = await setup.get(rec)
    assert second.scan_attempts == 2
    assert second.next_attempt_at == setup.clock.now() + timedelta(seconds=2)
    assert await setup.updates() == []

    # clamd answers again: once the backoff ends the file is scanned.
    back = setup.worker()
    await back.run_once()
    assert (await setup.get(rec)).status == FileStatus.PENDING
    setup.clock.advance(2)
    await back.run_once()
    assert (await setup.get(rec)).status == FileStatus.CLEAN
    assert REGISTRY.get_sample_value("confab_files_pending") == 0


async def test_jpeg_loses_its_gps_and_gets_a_thumbnail(setup: Setup, tmp_path: Path) -> None:
    data = photo(tmp_path / "photo.jpg", (1200, 900)).read_bytes()
    rec = await setup.upload(data, "image/jpeg", "image")
    await setup.worker().run_once()

    after = await setup.get(rec)
    assert after.status == FileStatus.CLEAN
    assert (after.width, after.height) == (1200, 900)
    assert after.has_thumbnail and not after.has_preview
    original = await setup.read(rec, "original")
    with Image.open(io.BytesIO(original)) as clean:
        assert not clean.getexif().get_ifd(GPS_IFD)
        assert clean.size == (1200, 900)
    assert after.size_bytes == len(original) != len(data)
    assert after.sha256 == hashlib.sha256(original).hexdigest()
    # The quota holds what is kept, not what was sent.
    assert await setup.usage() == len(original)
    assert after.reserved_bytes == len(original)
    with Image.open(io.BytesIO(await setup.read(rec, "thumbnail"))) as thumb:
        assert thumb.format == "WEBP"
        assert thumb.size == (480, 360)
    [update] = await setup.updates()
    assert update.has_thumbnail and update.width == 1200


async def test_kept_metadata_stays(setup: Setup, tmp_path: Path) -> None:
    setup.policy = ImagePolicy(keep_metadata=True)
    data = photo(tmp_path / "photo.jpg").read_bytes()
    rec = await setup.upload(data, "image/jpeg", "image")
    await setup.worker().run_once()
    assert await setup.read(rec, "original") == data
    with Image.open(io.BytesIO(data)) as im:
        assert im.getexif().get_ifd(GPS_IFD)


async def test_tiff_gets_a_png_preview(setup: Setup) -> None:
    out = io.BytesIO()
    Image.new("RGB", (640, 400), "navy").save(out, "TIFF")
    rec = await setup.upload(out.getvalue(), "image/tiff", "image")
    await setup.worker().run_once()

    after = await setup.get(rec)
    assert after.status == FileStatus.CLEAN
    assert after.has_preview and after.has_thumbnail
    with Image.open(io.BytesIO(await setup.read(rec, "preview"))) as preview:
        assert preview.format == "PNG"
        assert preview.size == (640, 400)


async def test_pdf_gets_a_first_page_thumbnail(setup: Setup) -> None:
    out = io.BytesIO()
    Image.new("RGB", (595, 842), "white").save(out, "PDF", resolution=72)
    rec = await setup.upload(out.getvalue(), "application/pdf", "pdf")
    await setup.worker().run_once()

    after = await setup.get(rec)
    assert after.status == FileStatus.CLEAN
    assert (after.width, after.height) == (595, 842)
    with Image.open(io.BytesIO(await setup.read(rec, "thumbnail"))) as thumb:
        assert max(thumb.size) == 480


async def test_a_pdf_pdfium_cannot_open_is_clean_without_a_thumbnail(setup: Setup) -> None:
    # Broken (like a password-protected one, pdfium cannot open it): the scan decides.
    data = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer << /Encrypt 2 0 R >>\n"
    rec = await setup.upload(data, "application/pdf", "pdf")
    await setup.worker().run_once()
    after = await setup.get(rec)
    assert after.status == FileStatus.CLEAN
    assert not after.has_thumbnail


async def test_a_decompression_bomb_is_rejected_and_purged(setup: Setup, tmp_path: Path) -> None:
    data = png_header(tmp_path / "bomb.png", 30_000, 30_000).read_bytes()
    rec = await setup.upload(data, "image/png", "image")
    await setup.worker().run_once()

    after = await setup.get(rec)
    assert after.status == FileStatus.REJECTED
    assert after.reason == "image_too_large"
    assert not await setup.stored(rec, "original")
    assert await setup.usage() == 0
    [update] = await setup.updates()
    assert update.status == files_pb2.FILE_STATUS_REJECTED


async def test_bytes_that_claim_an_image_but_do_not_decode_are_rejected(setup: Setup) -> None:
    rec = await setup.upload(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image/png", "image")
    await setup.worker().run_once()
    after = await setup.get(rec)
    assert after.status == FileStatus.REJECTED
    assert after.reason == "image_undecodable"


async def test_a_direct_upload_is_sealed_and_its_staging_object_deleted(setup: Setup) -> None:
    data = b"uploaded straight to the bucket\n"
    rec = await setup.upload(data, "text/plain", "text", staged=True)
    await setup.worker().run_once()

    after = await setup.get(rec)
    assert after.status == FileStatus.CLEAN
    assert not await setup.stored(rec, "staging")
    assert await setup.read(rec, "original") == data
    assert after.key_id
    assert after.sha256 == hashlib.sha256(data).hexdigest()


async def test_a_deleted_file_is_purged(setup: Setup) -> None:
    rec = await setup.upload(b"to be deleted", "text/plain", "text")
    await setup.worker().run_once()
    thumb = setup.key(rec, "thumbnail")
    await setup.files.store(thumb, one(b"stray variant"))
    await setup.db.files(rec.tenant_id).mark_deleted(rec.conversation_id, rec.id, setup.clock.now())

    await setup.worker().run_once()
    assert not await setup.stored(rec, "original")
    assert not await setup.stored(rec, "thumbnail")
    assert (await setup.get(rec)).variants == ()


async def test_two_workers_never_process_one_file_twice(setup: Setup) -> None:
    recs = [await setup.upload(f"file {i}\n".encode(), "text/plain", "text") for i in range(5)]
    first, second = setup.processor(), setup.processor()
    a, b = await asyncio.gather(first.claim(5), second.claim(5))
    assert {r.id for r in a}.isdisjoint({r.id for r in b})
    assert {r.id for r in a} | {r.id for r in b} == {r.id for r in recs}

    await asyncio.gather(*(first.process(r) for r in a), *(second.process(r) for r in b))
    updates = await setup.updates()
    assert sorted(u.id for u in updates) == sorted(r.id for r in recs)


async def test_a_lease_taken_over_drops_the_stale_result(setup: Setup) -> None:
    rec = await setup.upload(b"slow one", "text/plain", "text")
    stalled, fresh = setup.processor(), setup.processor()
    [held] = await stalled.claim(1)
    assert await fresh.claim(1) == []

    setup.clock.advance(LEASE_SECONDS + 1)
    [taken] = await fresh.claim(1)
    await fresh.process(taken)
    # The stalled processor wakes up and finishes: its write names a lease it
    # no longer holds, so nothing changes and no second event is emitted.
    await stalled.process(held)
    assert len(await setup.updates()) == 1
    assert (await setup.get(rec)).status == FileStatus.CLEAN


async def test_the_wake_up_starts_a_scan_without_waiting_a_poll(
    setup: Setup, wakeup: asyncio.Event
) -> None:
    work = FileWork()
    # An hour's poll: only the wake-up can start the scan within the test.
    worker = FileWorker(setup.processor(), work, concurrency=2, poll_seconds=3600)
    task = asyncio.create_task(worker.run())
    try:
        rec = await setup.upload(b"wake me", "text/plain", "text")
        work.wake()
        # The unit of work that makes the file clean rings the relay's wake-up.
        async with asyncio.timeout(20):
            await wakeup.wait()
        assert (await setup.get(rec)).status == FileStatus.CLEAN
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_file_whose_conversation_is_gone_is_deleted_and_purged(
    setup: Setup, conversations: ConversationHandler
) -> None:
    rec = await setup.upload(b"orphan", "text/plain", "text")
    admin = user("admin", ALICE.tenant_id, ROLE_MEMBER, ROLE_TENANT_ADMIN)
    await conversations.delete(admin, setup.conv)
    await setup.worker().run_once()
    after = await setup.get(rec)
    assert after.status == FileStatus.DELETED
    await setup.worker().run_once()
    assert not await setup.stored(rec, "original")


async def test_on_s3_a_direct_upload_photo_is_sealed_scanned_stripped_and_drawn(
    setup: Setup, s3_server: S3Server, tmp_path: Path
) -> None:
    s3 = await S3BlobStore.connect(
        endpoint_url=s3_server.endpoint_url,
        public_endpoint_url=None,
        bucket=s3_server.bucket,
        region="us-east-1",
        access_key_id=s3_server.access_key,
        secret_access_key=s3_server.secret_key,
    )
    try:
        on_s3 = Setup(setup.db, setup.unit, setup.clock, setup.clamd, setup.conv, s3)
        data = photo(tmp_path / "photo.jpg", (1000, 500)).read_bytes()
        rec = await on_s3.upload(data, "image/jpeg", "image", staged=True)
        eicar = await on_s3.upload(EICAR, "text/plain", "text", staged=True)
        await on_s3.worker().run_once()

        after = await on_s3.get(rec)
        assert after.status == FileStatus.CLEAN
        assert not await on_s3.stored(rec, "staging")
        with Image.open(io.BytesIO(await on_s3.read(rec, "original"))) as clean:
            assert not clean.getexif().get_ifd(GPS_IFD)
        with Image.open(io.BytesIO(await on_s3.read(rec, "thumbnail"))) as thumb:
            assert thumb.size == (480, 240)
        assert (await on_s3.get(eicar)).status == FileStatus.INFECTED
        for variant in ("original", "staging"):
            assert not await on_s3.stored(eicar, variant)
    finally:
        await s3.close()
