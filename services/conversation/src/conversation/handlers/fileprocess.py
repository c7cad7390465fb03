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
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from prometheus_client import Counter, Gauge, Histogram

from confab.conversation.v1 import events_pb2, files_pb2
from confab_core.clock import Clock
from confab_core.errors import NotFound
from confab_core.ids import new_id
from conversation.clients.scanner import Scanner, ScannerDown, TooLargeToScan
from conversation.handlers import previews
from conversation.handlers.audit import AuditTrail
from conversation.handlers.support import system_caller
from conversation.handlers.unit import Change, Taken, UnitOfWork
from conversation.storage.audit import Target
from conversation.storage.conversations import Claim
from conversation.storage.files import FileBytes, FileRecord, Processed
from conversation.storage.blobs import ObjectKey

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

    size: int = 0
    sha256: str = ""
    copy: Path | None = None


@dataclass
class _Made:
    width: int = 0
    height: int = 0
    thumbnail: bool = False
    preview: bool = False
    size: int = 0
    sha256: str = ""
    notes: list[str] = field(default_factory=list)


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
        self._db = unit.database
        self._queue = unit.database.file_work()
        self._files = files
        self._scanner = scanner
        self._policies = policies
        self._audit = audit
        self._clock = clock
        self._lease = timedelta(seconds=lease_seconds)
        self._scratch = scratch_dir
        self.owner = new_id()

    async def claim(self, limit: int) -> list[FileRecord]:
        if self._scanner is None:
            return []
        return await self._queue.claim_due_pending(
            self.owner, self._clock.now(), self._lease, limit
        )

    async def measure_backlog(self) -> None:
        PENDING.set(await self._queue.count_pending())

    async def process(self, record: FileRecord) -> None:
        """Never raises for one file's trouble: the file is retried later or
        ends refused, and the other files go on."""
        try:
            await self._process(record)
        except LeaseLost:
            log.warning("file %s was taken over by another processor", record.id)
        except NotFound:
            # The conversation went while the file waited: its deletion
            # removes the files, nothing to report to anyone.
            log.info("file %s: its conversation is gone", record.id)
        except ScannerDown as exc:
            SCANS.labels("scanner_down").inc()
            await self._retry(record, f"scanner down: {exc}")
        except Exception:
            # A bug, storage trouble, a sealed frame that does not open: the
            # file stays pending (never served) and is tried again later.
            log.exception("file %s failed to process", record.id)
            await self._retry(record, "failed")

    async def _retry(self, record: FileRecord, why: str) -> None:
        attempts = record.scan_attempts + 1
        at = self._clock.now() + backoff(attempts)
        log.info("file %s stays pending (%s), retry at %s", record.id, why, at.isoformat())
        await self._queue.retry_later(record.tenant_id, record.id, self.owner, at)

    async def _process(self, record: FileRecord) -> None:
        assert self._scanner is not None
        await self._seal_staging(record)
        with tempfile.TemporaryDirectory(prefix="confab-file-", dir=self._scratch) as scratch:
            workdir = Path(scratch)
            wants_copy = record.kind in (IMAGE, PDF) and record.content_type != SVG
            scanned = _Scanned(copy=workdir / "original" if wants_copy else None)
            started = time.monotonic()
            try:
                verdict = await self._scanner.scan(
                    self._read(record, scanned), record.size_bytes
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
                made = await self._render(record, scanned, workdir)
            except Refused as refused:
                await self._refuse(record, refused.code)
                return
        await self._finish(record, made)

    async def _seal_staging(self, record: FileRecord) -> None:
        """A direct upload's plaintext becomes the sealed original, then the
        staging object goes: in that order, so a crash between the two only
        makes the next attempt seal again over the same key."""
        staging = self._key(record, "staging")
        if not await self._files.has(staging):
            return
        await self._files.seal_staging(staging, self._key(record, "original"))
        await self._files.delete(staging)

    async def _read(self, record: FileRecord, into: _Scanned) -> AsyncIterator[bytes]:
        """The opened bytes for the scanner, hashed on the way and copied to the
        scratch file when previews need one."""
        digest = hashlib.sha256()
        out: BinaryIO | None = into.copy.open("wb") if into.copy else None
        try:
            async for chunk in self._files.open(self._key(record, "original")):
                digest.update(chunk)
                into.size += len(chunk)
                if out is not None:
                    out.write(chunk)
                yield chunk
        finally:
            if out is not None:
                out.close()
        into.sha256 = digest.hexdigest()

    async def _render(self, record: FileRecord, scanned: _Scanned, workdir: Path) -> _Made:
        made = _Made(size=scanned.size, sha256=scanned.sha256)
        if scanned.copy is None:
            return made
        if record.kind == PDF:
            pdf = await asyncio.to_thread(previews.render_pdf, scanned.copy)
            if pdf is None:
                PREVIEWS.labels(PDF, "none").inc()
                return made
            await self._store_small(record, "thumbnail", pdf.thumbnail or b"")
            PREVIEWS.labels(PDF, "thumbnail").inc()
            made.width, made.height, made.thumbnail = pdf.width, pdf.height, True
            return made
        policy = await self._policies(record.tenant_id)
        try:
            image = await asyncio.to_thread(
                previews.render_image,
                scanned.copy,
                workdir,
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
            return made
        made.width, made.height = image.width, image.height
        if image.thumbnail is not None:
            await self._store_small(record, "thumbnail", image.thumbnail)
            made.thumbnail = True
            PREVIEWS.labels(IMAGE, "thumbnail").inc()
        if image.preview is not None:
            await self._files.store(self._key(record, "preview"), _chunks(image.preview))
            made.preview = True
            PREVIEWS.labels(IMAGE, "preview").inc()
        if image.stripped is not None:
            made.size = await self._files.store(
                self._key(record, "original"), _chunks(image.stripped)
            )
            made.sha256 = await asyncio.to_thread(_sha256, image.stripped)
        return made

    async def _store_small(self, record: FileRecord, variant: str, data: bytes) -> None:
        async def one() -> AsyncIterator[bytes]:
            yield data

        await self._files.store(self._key(record, variant), one())

    def _key(self, record: FileRecord, variant: str) -> ObjectKey:
        return ObjectKey(record.tenant_id, record.conversation_id, record.id, variant)

    async def _finish(self, record: FileRecord, made: _Made) -> None:
        outcome = Processed(
            width=made.width,
            height=made.height,
            has_thumbnail=made.thumbnail,
            has_preview=made.preview,
            size_bytes=made.size,
            sha256=made.sha256,
        )

        async def body(t: Taken) -> None:
            after = await t.store.files.finish_clean(
                record.id, self.owner, outcome, self._clock.now()
            )
            if after is None:
                raise LeaseLost(record.id)
            t.emit(_updated(after))

        await self._unit.one(Change(system_caller(record.tenant_id), record.conversation_id), body)

    async def _infected(self, record: FileRecord, signature: str) -> None:
        await self._end_refused(
            record, "infected", FILE_INFECTED, {"signature": signature[:200]}
        )

    async def _refuse(self, record: FileRecord, code: str) -> None:
        await self._end_refused(record, "rejected", FILE_REJECTED, {"reason": code}, code=code)

    async def _end_refused(
        self,
        record: FileRecord,
        status: str,
        action: str,
        after: dict[str, str],
        *,
        code: str = "",
    ) -> None:
        """Bytes first (a crash after leaves a pending file with no bytes, which
        the next attempt refuses again), then record, quota, audit and event
        in one unit of work."""
        await self._delete_objects(record)

        async def body(t: Taken) -> None:
            ended = await t.store.files.finish_refused(
                record.id, self.owner, status, code, self._clock.now()
            )
            if ended is None:
                raise LeaseLost(record.id)
            await self._audit.in_unit(t, action, Target("file", record.id), {}, after)
            t.emit(_updated(ended))

        change = Change(system_caller(record.tenant_id), record.conversation_id, audited=True)
        await self._unit.one(change, body)

    async def _delete_objects(self, record: FileRecord) -> None:
        for variant in ("original", "thumbnail", "preview", "staging"):
            await self._files.delete(self._key(record, variant))

    async def purge_deleted(self, limit: int) -> int:
        """Deleted files whose objects are still stored: objects removed, then
        the record marked purged. Returns how many."""
        done = 0
        for record in await self._queue.claim_purge(
            self.owner, self._clock.now(), self._lease, limit
        ):
            await self._delete_objects(record)
            await self._queue.mark_purged(record.tenant_id, record.id, self.owner)
            PURGED.inc()
            done += 1
        return done


def _updated(record: FileRecord) -> events_pb2.ConversationEvent:
    from conversation import convert

    return events_pb2.ConversationEvent(
        file_updated=files_pb2.FileUpdated(file=convert.file(record))
    )


async def _chunks(path: Path) -> AsyncIterable[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(_COPY_CHUNK):
            yield chunk


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()
