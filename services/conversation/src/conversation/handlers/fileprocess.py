"""The file processor's rules: what happens to a pending file (seal a direct
upload, scan, strip, thumbnails, previews) and to a deleted one (purge).

The loop (conversation/files_worker.py) claims files and calls ``process`` and
``purge``; everything here works on one file, under the lease its claim wrote
on the record. See docs/files.md#scanning and #previews.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tempfile
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO, Protocol

from prometheus_client import Counter, Gauge, Histogram
from pymongo.errors import PyMongoError

from confab_core.clock import Clock
from confab_core.errors import NotFound
from confab_core.ids import new_id
from conversation import convert
from conversation.clients.scanner import Scanner, ScannerDown, TooLargeToScan
from conversation.handlers import previews
from conversation.handlers.audit import AuditTrail
from conversation.handlers.filepolicy import FilePolicy
from conversation.handlers.support import system_caller
from conversation.handlers.unit import Change, Taken, UnitOfWork
from conversation.storage.audit import Fields, Target
from conversation.storage.blobs import VARIANTS, ObjectKey, Variant
from conversation.storage.filebytes import FileBytes
from conversation.storage.files import CleanChange, FileRecord

log = logging.getLogger(__name__)

SCANS = Counter("confab_files_scans_total", "Virus scans by how they ended", ["result"])
SCAN_SECONDS = Histogram(
    "confab_files_scan_seconds",
    "One clamd INSTREAM, connect to answer",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
PENDING = Gauge("confab_files_pending", "Files waiting to be scanned, all tenants")
PREVIEWS = Counter(
    "confab_files_previews_total", "What processing made, by kind", ["kind", "result"]
)
PURGED = Counter("confab_files_purged_total", "Deleted files whose objects were removed")

FILE_INFECTED = "file.infected"
FILE_REJECTED = "file.rejected"
# Retries of a file the scanner could not take: 1 s, 2 s, 4 s ... at most a minute.
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0
# Codes a refused file's record carries (and clients see in file:updated).
IMAGE_TOO_LARGE = "image_too_large"
IMAGE_UNDECODABLE = "image_undecodable"
FILE_UNSCANNABLE = "file_unscannable"
IMAGE = "image"
PDF = "pdf"
SVG = "image/svg+xml"
_COPY_CHUNK = 64 * 1024
# A quota no file reaches: the processor's corrections are never refused.
_NO_QUOTA = 2**62


def backoff(attempts: int) -> timedelta:
    """The wait before the ``attempts``-th retry (1-based), exponential and capped."""
    seconds = BACKOFF_FIRST_SECONDS * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, BACKOFF_MAX_SECONDS))


@dataclass(frozen=True)
class ImagePolicy:
    """What of the tenant's files policy the processor needs."""

    max_pixels: int = 50_000_000
    keep_metadata: bool = False


ImagePolicies = Callable[[str], Awaitable[ImagePolicy]]


class FilePolicies(Protocol):
    async def file_policy(self, tenant_id: str) -> FilePolicy: ...


def image_policies(source: FilePolicies) -> ImagePolicies:
    """The image part of each tenant's files policy, read as each file is
    processed, so a change applies to the next file."""

    async def of(tenant_id: str) -> ImagePolicy:
        policy = await source.file_policy(tenant_id)
        return ImagePolicy(policy.max_image_pixels, policy.keep_image_metadata)

    return of


class FileWork:
    """The processor's wake-up: handlers call ``wake()`` once a file is
    committed pending (or deleted), so it is scanned without waiting a poll."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    async def wait(self) -> None:
        await self._event.wait()


class Refused(Exception):
    """The file breaks the policy after all: it becomes REJECTED with ``code``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class LeaseLost(Exception):
    """Another processor took the file over: this one's result is dropped."""


@dataclass
class _Scanned:
    """The plaintext as the scan read it: its true size and hash (what the
    record ends with), and a private copy for Pillow or pdfium when needed."""

    copy: Path | None = None
    size: int = 0
    sha256: str = ""


class FileProcessor:
    def __init__(
        self,
        unit: UnitOfWork,
        files: FileBytes,
        scanner: Scanner | None,
        policies: ImagePolicies,
        audit: AuditTrail,
        clock: Clock,
        *,
        lease_seconds: float,
        scratch_dir: Path | None = None,
    ) -> None:
        """``scanner`` None: scanning is switched off (CLAMD_REQUIRED=false
        without a host), and pending files stay pending."""
        self._unit = unit
        self._queue = unit.database.file_queue()
        self._files = files
        self._scanner = scanner
        self._policies = policies
        self._audit = audit
        self._clock = clock
        self._lease = timedelta(seconds=lease_seconds)
        self._scratch = scratch_dir
        self.owner = new_id()

    async def claim(self, limit: int) -> list[FileRecord]:
        """Up to ``limit`` due pending files, each now leased to this processor."""
        if self._scanner is None:
            return []
        claimed: list[FileRecord] = []
        while len(claimed) < limit:
            record = await self._queue.claim_due_pending(self._clock.now(), self.owner, self._lease)
            if record is None:
                break
            claimed.append(record)
        return claimed

    async def measure_backlog(self) -> None:
        PENDING.set(await self._queue.count_pending())

    async def process(self, record: FileRecord) -> None:
        """Never raises for one file's trouble: the file is retried later or
        ends refused, and the other files go on."""
        renewing = asyncio.create_task(self._renew(record))
        try:
            await self._process(record)
        except LeaseLost:
            log.warning("file %s was taken over by another processor", record.id)
        except NotFound:
            # The conversation went while the file waited: nobody can see the
            # file any more, so it is deleted (and its bytes purged next).
            log.info("file %s: its conversation is gone, deleting it", record.id)
            await self._unit.database.files(record.tenant_id).mark_deleted(
                record.conversation_id, record.id, self._clock.now()
            )
        except ScannerDown as exc:
            SCANS.labels("scanner_down").inc()
            await self._retry(record, f"scanner down: {exc}")
        except Exception:
            # A bug, storage trouble, a sealed frame that does not open: the
            # file stays pending (never served) and is tried again later.
            log.exception("file %s failed to process", record.id)
            await self._retry(record, "failed")
        finally:
            renewing.cancel()

    async def _renew(self, record: FileRecord) -> None:
        """Keeps the lease while a long file is scanned and drawn, so no other
        processor takes it over; a lost lease shows at the final write."""
        period = self._lease.total_seconds() / 3
        while True:
            await asyncio.sleep(period)
            try:
                held = await self._queue.renew(
                    record.tenant_id, record.id, self.owner, self._clock.now(), self._lease
                )
            except PyMongoError as exc:
                log.warning("file %s: lease not renewed: %s", record.id, exc)
                continue
            if not held:
                return

    async def _retry(self, record: FileRecord, why: str) -> None:
        at = self._clock.now() + backoff(record.scan_attempts + 1)
        log.info("file %s stays pending (%s), next attempt %s", record.id, why, at.isoformat())
        await self._queue.release_with_backoff(record.tenant_id, record.id, self.owner, at)

    async def _process(self, record: FileRecord) -> None:
        assert self._scanner is not None
        key_id = await self._seal_staging(record)
        with tempfile.TemporaryDirectory(prefix="confab-file-", dir=self._scratch) as scratch:
            workdir = Path(scratch)
            wants_copy = record.kind in (IMAGE, PDF) and record.content_type != SVG
            scanned = _Scanned(copy=workdir / "original" if wants_copy else None)
            started = time.monotonic()
            try:
                verdict = await self._scanner.scan(
                    self._read(record, key_id, scanned), record.size_bytes
                )
            except TooLargeToScan:
                SCANS.labels("unscannable").inc()
                await self._refuse(record, FILE_UNSCANNABLE)
                return
            SCAN_SECONDS.observe(time.monotonic() - started)
            if not verdict.clean:
                SCANS.labels("infected").inc()
                await self._infected(record, verdict.signature)
                return
            SCANS.labels("clean").inc()
            try:
                change = await self._render(record, scanned, workdir)
            except Refused as refused:
                await self._refuse(record, refused.code)
                return
        if key_id != record.key_id and change.key_id is None:
            change = replace(change, key_id=key_id)
        await self._finish(record, change)

    async def _seal_staging(self, record: FileRecord) -> str:
        """A direct upload's plaintext becomes the sealed original, then the
        staging object goes (FileBytes.seal_staging, in that order: a crash
        between the two only makes the next attempt seal again over the same
        key). The id of the key the original is sealed with."""
        if await self._files.blobs.size(self._key(record, "staging")) is None:
            return record.key_id
        stored = await self._files.seal_staging(self._key(record, "original"))
        return stored.key_id

    async def _read(self, record: FileRecord, key_id: str, into: _Scanned) -> AsyncIterator[bytes]:
        """The opened bytes for the scanner, hashed on the way and copied to the
        scratch file when previews need one."""
        digest = hashlib.sha256()
        out: BinaryIO | None = into.copy.open("wb") if into.copy else None
        try:
            async for chunk in self._files.open(self._key(record, "original"), key_id or None):
                digest.update(chunk)
                into.size += len(chunk)
                if out is not None:
                    out.write(chunk)
                yield chunk
        finally:
            if out is not None:
                out.close()
        into.sha256 = digest.hexdigest()

    async def _render(self, record: FileRecord, scanned: _Scanned, workdir: Path) -> CleanChange:
        """What the file gets besides its original. The size and hash are always
        those just read: a retry after a crash between rewriting the original
        and recording it still ends with the record telling the truth."""
        plain = CleanChange(size_bytes=scanned.size, sha256=scanned.sha256)
        if scanned.copy is None:
            return plain
        if record.kind == PDF:
            pdf = await asyncio.to_thread(previews.render_pdf, scanned.copy)
            if pdf is None or pdf.thumbnail is None:
                PREVIEWS.labels(PDF, "none").inc()
                return plain
            await self._store_small(record, "thumbnail", pdf.thumbnail)
            PREVIEWS.labels(PDF, "thumbnail").inc()
            return replace(
                plain, width=pdf.width, height=pdf.height, variants=("original", "thumbnail")
            )
        policy = await self._policies(record.tenant_id)
        try:
            image = await asyncio.to_thread(
                previews.render_image,
                scanned.copy,
                workdir,
                record.content_type,
                max_pixels=policy.max_pixels,
                keep_metadata=policy.keep_metadata,
            )
        except previews.ImageTooLarge:
            PREVIEWS.labels(IMAGE, "rejected").inc()
            raise Refused(IMAGE_TOO_LARGE) from None
        except previews.Undecodable:
            if previews.pillow_decodes(record.content_type):
                PREVIEWS.labels(IMAGE, "rejected").inc()
                raise Refused(IMAGE_UNDECODABLE) from None
            # No decoder here (HEIC): served as it is, without a picture.
            PREVIEWS.labels(IMAGE, "none").inc()
            return plain
        variants: list[Variant] = ["original"]
        if image.thumbnail is not None:
            await self._store_small(record, "thumbnail", image.thumbnail)
            variants.append("thumbnail")
            PREVIEWS.labels(IMAGE, "thumbnail").inc()
        if image.preview is not None:
            await self._files.store(self._key(record, "preview"), _chunks(image.preview))
            variants.append("preview")
            PREVIEWS.labels(IMAGE, "preview").inc()
        change = replace(plain, width=image.width, height=image.height, variants=tuple(variants))
        if image.stripped is None:
            return change
        stored = await self._files.store(self._key(record, "original"), _chunks(image.stripped))
        return replace(change, size_bytes=stored.size, sha256=stored.sha256, key_id=stored.key_id)

    async def _store_small(self, record: FileRecord, variant: Variant, data: bytes) -> None:
        async def one() -> AsyncIterator[bytes]:
            yield data

        await self._files.store(self._key(record, variant), one())

    def _key(self, record: FileRecord, variant: Variant) -> ObjectKey:
        return ObjectKey(record.tenant_id, record.conversation_id, record.id, variant)

    async def _finish(self, record: FileRecord, change: CleanChange) -> None:
        """CLEAN, the quota brought to the bytes kept (stripping changes the
        size), and file:updated, in one unit of work of the conversation."""
        size = record.size_bytes if change.size_bytes is None else change.size_bytes

        async def body(t: Taken) -> None:
            now = self._clock.now()
            after = await t.store.files.mark_clean(record.id, change, now, owner=self.owner)
            if after is None:
                raise LeaseLost(record.id)
            await self._settle_quota(t, record, size)
            t.emit(convert.file_updated(after))

        await self._unit.one(Change(system_caller(record.tenant_id), record.conversation_id), body)

    async def _settle_quota(self, t: Taken, record: FileRecord, size: int) -> None:
        held = record.reserved_bytes
        if size == held:
            return
        if size < held:
            await t.store.file_usage.release(record.uploader_id, held - size)
        else:
            # The file was accepted; a few more bytes after stripping (a PNG
            # saved again) are counted even past the quota, never refused.
            await t.store.file_usage.reserve(record.uploader_id, size - held, _NO_QUOTA, _NO_QUOTA)
        await t.store.files.set_reserved(record.id, size, self._clock.now())

    async def _infected(self, record: FileRecord, signature: str) -> None:
        await self._end_refused(record, FILE_INFECTED, {"signature": signature[:200]}, reason="")

    async def _refuse(self, record: FileRecord, code: str) -> None:
        await self._end_refused(record, FILE_REJECTED, {"reason": code}, reason=code)

    async def _end_refused(
        self, record: FileRecord, action: str, after: Fields, *, reason: str
    ) -> None:
        """INFECTED (``reason`` empty) or REJECTED, the quota given back, an
        audit record and file:updated, in one unit of work; the record is then
        marked for purging, and the purge deletes its bytes (every variant)."""

        async def body(t: Taken) -> None:
            now = self._clock.now()
            if reason:
                ended = await t.store.files.mark_rejected(record.id, reason, now, owner=self.owner)
            else:
                ended = await t.store.files.mark_infected(record.id, now, owner=self.owner)
            if ended is None:
                raise LeaseLost(record.id)
            await self._settle_quota(t, record, 0)
            await self._audit.in_unit(t, action, Target("file", record.id), {}, after)
            t.emit(convert.file_updated(ended))

        change = Change(system_caller(record.tenant_id), record.conversation_id, audited=True)
        await self._unit.one(change, body)

    async def purge_deleted(self, limit: int) -> int:
        """Infected, rejected and deleted files whose objects may still be
        stored: every variant deleted (a crash may have left one the record
        does not list), then the record marked purged. Returns how many."""
        done = 0
        while done < limit:
            record = await self._queue.claim_due_purge(self._clock.now(), self.owner, self._lease)
            if record is None:
                break
            for variant in VARIANTS:
                await self._files.blobs.delete(self._key(record, variant))
            await self._queue.mark_purged(
                record.tenant_id, record.id, self.owner, self._clock.now()
            )
            PURGED.inc()
            done += 1
        return done


async def _chunks(path: Path) -> AsyncIterable[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(_COPY_CHUNK):
            yield chunk
