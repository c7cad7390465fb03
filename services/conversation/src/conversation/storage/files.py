"""File records (``files``) and storage usage counters (``file_usage``).

One document per file, tenant-scoped; its name is sealed like other user text.
A file moves UPLOADING (direct upload) or straight to PENDING → CLEAN, or
INFECTED / REJECTED, and DELETED; ``variants`` lists the objects it has in the
blob store. A refused or deleted file is marked for purging, and the processor
deletes its objects (``FileWorkQueue.claim_due_purge``).

The processor's work is leased on the record itself (``lease_owner``,
``lease_until``): a crashed worker's file is claimed again once the lease ends.

Usage: one counter per (tenant, user) and one per tenant, in bytes. ``reserve``
adds to both only when both stay within their quota (conditional updates), so
two uploads at once cannot both pass a full quota.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from confab_core.mongo import Doc, TenantCollection
from conversation.storage.blobs import Variant
from conversation.storage.keys import KeyVault, TenantCipher, TenantCrypto

FILES_COLLECTION = "files"
USAGE_COLLECTION = "file_usage"
_TENANT_SUBJECT = "tenant"

INDEXES: dict[str, list[IndexModel]] = {
    FILES_COLLECTION: [
        # Retry-safety: one file per client id of an uploader in a conversation.
        IndexModel(
            [
                ("tenant_id", ASCENDING),
                ("conversation_id", ASCENDING),
                ("uploader_id", ASCENDING),
                ("client_id", ASCENDING),
            ],
            unique=True,
        ),
        # A conversation's files, newest first.
        IndexModel(
            [
                ("tenant_id", ASCENDING),
                ("conversation_id", ASCENDING),
                ("created_at", DESCENDING),
                ("_id", DESCENDING),
            ]
        ),
        IndexModel([("tenant_id", ASCENDING), ("message_id", ASCENDING)]),
        # A user's files (export, erasure).
        IndexModel([("tenant_id", ASCENDING), ("uploader_id", ASCENDING), ("_id", ASCENDING)]),
        # Retention of abandoned direct uploads.
        IndexModel([("tenant_id", ASCENDING), ("status", ASCENDING), ("created_at", ASCENDING)]),
        # The processor's scans, across tenants.
        IndexModel([("status", ASCENDING), ("next_attempt_at", ASCENDING)]),
        IndexModel([("purge", ASCENDING), ("next_attempt_at", ASCENDING)]),
    ],
    USAGE_COLLECTION: [
        IndexModel([("tenant_id", ASCENDING), ("subject", ASCENDING)], unique=True),
    ],
}


class FileStatus(StrEnum):
    UPLOADING = "uploading"
    PENDING = "pending"
    CLEAN = "clean"
    INFECTED = "infected"
    REJECTED = "rejected"
    DELETED = "deleted"


# Statuses whose bytes must go (the processor purges them).
_PURGED = (FileStatus.INFECTED.value, FileStatus.REJECTED.value, FileStatus.DELETED.value)


class ClientIdTaken(Exception):
    """Inside a transaction, another upload inserted the same client id first:
    the transaction is spoiled; run it again and ``create`` finds that file."""


@dataclass(frozen=True, slots=True)
class FileRecord:
    id: str
    tenant_id: str
    conversation_id: str
    uploader_id: str
    client_id: str
    name: str
    status: FileStatus
    created_at: datetime
    updated_at: datetime
    # Where the bytes live (gridfs or s3), and the data key that sealed them.
    backend: str
    key_id: str = ""
    # What the client claimed; kept for audit, never trusted.
    declared_content_type: str = ""
    declared_size_bytes: int = 0
    # Sniffed from the bytes.
    content_type: str = ""
    kind: str = ""
    size_bytes: int = 0
    sha256: str = ""
    # Bytes counted against the quotas for this file (what deletion releases).
    reserved_bytes: int = 0
    width: int = 0
    height: int = 0
    # The objects stored in the blob store for this file.
    variants: tuple[Variant, ...] = ()
    download_only: bool = False
    message_id: str = ""
    # Why a file was rejected (a stable code), empty otherwise.
    reason: str = ""
    # The processor's bookkeeping.
    scan_attempts: int = 0
    next_attempt_at: datetime | None = None
    lease_owner: str = ""
    lease_until: datetime | None = None
    deleted_at: datetime | None = None

    @property
    def has_thumbnail(self) -> bool:
        return "thumbnail" in self.variants

    @property
    def has_preview(self) -> bool:
        return "preview" in self.variants

    @property
    def has_bytes(self) -> bool:
        return bool(self.variants)


def _record(doc: Doc, c: TenantCipher) -> FileRecord:
    doc_id = str(doc["_id"])
    return FileRecord(
        id=doc_id,
        tenant_id=str(doc["tenant_id"]),
        conversation_id=str(doc["conversation_id"]),
        uploader_id=str(doc["uploader_id"]),
        client_id=str(doc["client_id"]),
        name=c.open(FILES_COLLECTION, doc_id, "name", doc.get("name")),
        status=FileStatus(doc["status"]),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        backend=str(doc["backend"]),
        key_id=str(doc.get("key_id", "")),
        declared_content_type=str(doc.get("declared_content_type", "")),
        declared_size_bytes=int(doc.get("declared_size_bytes", 0)),
        content_type=str(doc.get("content_type", "")),
        kind=str(doc.get("kind", "")),
        size_bytes=int(doc.get("size_bytes", 0)),
        sha256=str(doc.get("sha256", "")),
        reserved_bytes=int(doc.get("reserved_bytes", 0)),
        width=int(doc.get("width", 0)),
        height=int(doc.get("height", 0)),
        variants=tuple(doc.get("variants", ())),
        download_only=bool(doc.get("download_only", False)),
        message_id=str(doc.get("message_id", "")),
        reason=str(doc.get("reason", "")),
        scan_attempts=int(doc.get("scan_attempts", 0)),
        next_attempt_at=doc.get("next_attempt_at"),
        lease_owner=str(doc.get("lease_owner", "")),
        lease_until=doc.get("lease_until"),
        deleted_at=doc.get("deleted_at"),
    )


def _document(rec: FileRecord, c: TenantCipher) -> Doc:
    return {
        "_id": rec.id,
        "conversation_id": rec.conversation_id,
        "uploader_id": rec.uploader_id,
        "client_id": rec.client_id,
        "name": c.seal(FILES_COLLECTION, rec.id, "name", rec.name),
        "status": rec.status.value,
        "created_at": rec.created_at,
        "updated_at": rec.updated_at,
        "backend": rec.backend,
        "key_id": rec.key_id,
        "declared_content_type": rec.declared_content_type,
        "declared_size_bytes": rec.declared_size_bytes,
        "content_type": rec.content_type,
        "kind": rec.kind,
        "size_bytes": rec.size_bytes,
        "sha256": rec.sha256,
        "reserved_bytes": rec.reserved_bytes,
        "width": rec.width,
        "height": rec.height,
        "variants": list(rec.variants),
        "download_only": rec.download_only,
        "message_id": rec.message_id,
        "reason": rec.reason,
        "scan_attempts": rec.scan_attempts,
        # A PENDING file is due for the processor at once.
        "next_attempt_at": rec.next_attempt_at or rec.created_at,
        "lease_owner": rec.lease_owner,
        "lease_until": rec.lease_until,
        "deleted_at": rec.deleted_at,
        "purge": rec.status.value in _PURGED,
    }


@dataclass(frozen=True, slots=True)
class Created:
    file: FileRecord
    # False: a retry with the same client id found this existing file.
    created: bool


@dataclass(frozen=True, slots=True)
class FilePage:
    files: list[FileRecord]
    # Pass back as ``after`` for the next page; empty on the last page.
    next_token: str = ""


def page_token(rec: FileRecord) -> str:
    raw = f"{int(rec.created_at.timestamp() * 1000)}:{rec.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_page_token(token: str) -> tuple[datetime, str]:
    """ValueError when the token is not one ``page_token`` made."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        millis, file_id = raw.split(":", 1)
        at = datetime.fromtimestamp(int(millis) / 1000, UTC)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("not a page token") from exc
    if not file_id:
        raise ValueError("not a page token")
    return at, file_id


@dataclass(frozen=True, slots=True)
class PendingChange:
    """What an upload learned of the bytes (``FileRepo.mark_pending``)."""

    size_bytes: int
    sha256: str
    content_type: str
    kind: str
    key_id: str
    download_only: bool = False
    variants: tuple[Variant, ...] = ("original",)


@dataclass(frozen=True, slots=True)
class CleanChange:
    """What processing produced (``FileRepo.mark_clean``)."""

    width: int = 0
    height: int = 0
    variants: tuple[Variant, ...] = ("original",)
    # Set when stripping metadata rewrote the original.
    size_bytes: int | None = None
    sha256: str | None = None
    key_id: str | None = None


class FileRepo:
    """One tenant's file records; bound to a session inside a unit of work."""

    def __init__(
        self,
        col: TenantCollection,
        crypto: TenantCrypto,
        session: AsyncClientSession | None = None,
    ) -> None:
        self._col = col
        self._crypto = crypto
        self._session = session

    async def _one(self, doc: Doc | None) -> FileRecord | None:
        return None if doc is None else _record(doc, await self._crypto.cipher())

    async def _many(self, docs: list[Doc]) -> list[FileRecord]:
        c = await self._crypto.cipher()
        return [_record(d, c) for d in docs]

    async def create(self, rec: FileRecord) -> Created:
        """Inserts the file, or returns the one its uploader already made with the
        same client id in the conversation (a retry). Inside a transaction a
        concurrent twin raises ClientIdTaken (run the transaction again)."""
        existing = await self.by_client_id(rec.conversation_id, rec.uploader_id, rec.client_id)
        if existing is not None:
            return Created(existing, False)
        c = await self._crypto.cipher()
        try:
            await self._col.insert_one(_document(rec, c), session=self._session)
        except DuplicateKeyError as exc:
            if self._session is not None:
                raise ClientIdTaken(rec.client_id) from exc
            existing = await self.by_client_id(rec.conversation_id, rec.uploader_id, rec.client_id)
            if existing is None:
                raise
            return Created(existing, False)
        return Created(rec, True)

    async def by_client_id(
        self, conversation_id: str, uploader_id: str, client_id: str
    ) -> FileRecord | None:
        return await self._one(
            await self._col.find_one(
                {
                    "conversation_id": conversation_id,
                    "uploader_id": uploader_id,
                    "client_id": client_id,
                },
                session=self._session,
            )
        )

    async def get(self, conversation_id: str, file_id: str) -> FileRecord | None:
        """The file (whatever its status) when it belongs to the conversation."""
        return await self._one(
            await self._col.find_one(
                {"_id": file_id, "conversation_id": conversation_id}, session=self._session
            )
        )

    async def get_many(self, conversation_id: str, file_ids: Sequence[str]) -> list[FileRecord]:
        cursor = self._col.find(
            {"_id": {"$in": list(file_ids)}, "conversation_id": conversation_id},
            session=self._session,
        )
        return await self._many([d async for d in cursor])

    async def page(self, conversation_id: str, limit: int, after: str = "") -> FilePage:
        """The conversation's files that are not deleted, newest first.
        ``after``: a page token (ValueError when malformed)."""
        flt: Doc = {"conversation_id": conversation_id, "status": {"$ne": FileStatus.DELETED}}
        if after:
            at, file_id = parse_page_token(after)
            flt["$or"] = [
                {"created_at": {"$lt": at}},
                {"created_at": at, "_id": {"$lt": file_id}},
            ]
        cursor = self._col.find(
            flt,
            sort=[("created_at", DESCENDING), ("_id", DESCENDING)],
            limit=limit + 1,
            session=self._session,
        )
        files = await self._many([d async for d in cursor])
        if len(files) <= limit:
            return FilePage(files)
        files = files[:limit]
        return FilePage(files, page_token(files[-1]))

    async def _change(
        self, flt: Doc, update: Doc, now: datetime, *, unset: Sequence[str] = ()
    ) -> FileRecord | None:
        """One conditional update; the record after it, None when the condition failed."""
        change: Doc = {"$set": {**update, "updated_at": now}}
        if unset:
            change["$unset"] = dict.fromkeys(unset, "")
        doc = await self._col.find_one_and_update(flt, change, session=self._session)
        return await self._one(doc)

    async def mark_pending(
        self, file_id: str, change: PendingChange, now: datetime
    ) -> FileRecord | None:
        """A direct upload's bytes are in (checked and sealed): UPLOADING → PENDING.
        None when the file is not UPLOADING (completed already, or gone)."""
        return await self._change(
            {"_id": file_id, "status": FileStatus.UPLOADING},
            {
                "status": FileStatus.PENDING.value,
                "size_bytes": change.size_bytes,
                "sha256": change.sha256,
                "content_type": change.content_type,
                "kind": change.kind,
                "key_id": change.key_id,
                "download_only": change.download_only,
                "variants": list(change.variants),
                "next_attempt_at": now,
                "purge": False,
            },
            now,
        )

    async def set_reserved(self, file_id: str, reserved_bytes: int, now: datetime) -> None:
        """Records what the quotas now hold for the file (a direct upload's reservation)."""
        await self._change({"_id": file_id}, {"reserved_bytes": reserved_bytes}, now)

    async def mark_clean(
        self, file_id: str, change: CleanChange, now: datetime, *, owner: str = ""
    ) -> FileRecord | None:
        """Scanned clean and processed: PENDING → CLEAN (only by the lease holder
        ``owner`` when given). None when not PENDING or the lease was lost."""
        flt: Doc = {"_id": file_id, "status": FileStatus.PENDING}
        if owner:
            flt["lease_owner"] = owner
        update: Doc = {
            "status": FileStatus.CLEAN.value,
            "width": change.width,
            "height": change.height,
            "variants": list(change.variants),
            "lease_owner": "",
            "lease_until": None,
        }
        for name in ("size_bytes", "sha256", "key_id"):
            value = getattr(change, name)
            if value is not None:
                update[name] = value
        return await self._change(flt, update, now)

    async def mark_infected(
        self, file_id: str, now: datetime, *, owner: str = ""
    ) -> FileRecord | None:
        """The scanner found malware: PENDING → INFECTED; its bytes are purged next."""
        return await self._refuse(file_id, FileStatus.INFECTED, "file_infected", now, owner)

    async def mark_rejected(
        self, file_id: str, reason: str, now: datetime, *, owner: str = ""
    ) -> FileRecord | None:
        """Refused after upload (UPLOADING or PENDING → REJECTED, ``reason`` a stable
        code); its bytes are purged next."""
        return await self._refuse(file_id, FileStatus.REJECTED, reason, now, owner)

    async def _refuse(
        self, file_id: str, status: FileStatus, reason: str, now: datetime, owner: str
    ) -> FileRecord | None:
        flt: Doc = {
            "_id": file_id,
            "status": {"$in": [FileStatus.UPLOADING.value, FileStatus.PENDING.value]},
        }
        if owner:
            flt["lease_owner"] = owner
        return await self._change(
            flt,
            {
                "status": status.value,
                "reason": reason,
                "lease_owner": "",
                "lease_until": None,
                "purge": True,
                "next_attempt_at": now,
            },
            now,
        )

    async def attach(
        self, conversation_id: str, file_id: str, uploader_id: str, message_id: str, now: datetime
    ) -> FileRecord | None:
        """Records the message the file goes with: only an unattached PENDING or CLEAN
        file of ``uploader_id`` in the conversation. None otherwise."""
        return await self._change(
            {
                "_id": file_id,
                "conversation_id": conversation_id,
                "uploader_id": uploader_id,
                "message_id": "",
                "status": {"$in": [FileStatus.PENDING.value, FileStatus.CLEAN.value]},
            },
            {"message_id": message_id},
            now,
        )

    async def mark_deleted(
        self, conversation_id: str, file_id: str, now: datetime
    ) -> FileRecord | None:
        """Deletes the file (its bytes are purged next); None when it was already."""
        return await self._delete({"_id": file_id, "conversation_id": conversation_id}, now)

    async def delete_of_message(
        self, conversation_id: str, message_id: str, now: datetime
    ) -> list[FileRecord]:
        """Deletes the files a deleted message carried; the records deleted now."""
        deleted = []
        for rec in await self.of_message(conversation_id, message_id):
            gone = await self.mark_deleted(conversation_id, rec.id, now)
            if gone is not None:
                deleted.append(gone)
        return deleted

    async def _delete(self, flt: Doc, now: datetime) -> FileRecord | None:
        before = await self._col.find_one(
            {**flt, "status": {"$ne": FileStatus.DELETED.value}}, session=self._session
        )
        if before is None:
            return None
        return await self._change(
            {"_id": before["_id"], "status": before["status"]},
            {
                "status": FileStatus.DELETED.value,
                "deleted_at": now,
                "purge": True,
                "lease_owner": "",
                "lease_until": None,
                "next_attempt_at": now,
            },
            now,
        )

    async def of_message(self, conversation_id: str, message_id: str) -> list[FileRecord]:
        if not message_id:
            return []
        cursor = self._col.find(
            {"conversation_id": conversation_id, "message_id": message_id},
            session=self._session,
        )
        return await self._many([d async for d in cursor])

    async def of_messages(self, message_ids: Sequence[str]) -> dict[str, list[FileRecord]]:
        """Files by the message they are attached to (rendering a page of messages)."""
        ids = [m for m in message_ids if m]
        if not ids:
            return {}
        cursor = self._col.find({"message_id": {"$in": ids}}, session=self._session)
        out: dict[str, list[FileRecord]] = {}
        for rec in await self._many([d async for d in cursor]):
            out.setdefault(rec.message_id, []).append(rec)
        return out

    async def of_user(self, uploader_id: str, after_id: str, limit: int) -> list[FileRecord]:
        """A user's files of every status, by id past ``after_id`` (export, erasure)."""
        cursor = self._col.find(
            {"uploader_id": uploader_id, "_id": {"$gt": after_id}},
            sort=[("_id", ASCENDING)],
            limit=limit,
            session=self._session,
        )
        return await self._many([d async for d in cursor])

    async def of_conversation(
        self, conversation_id: str, after_id: str, limit: int
    ) -> list[FileRecord]:
        """A conversation's files of every status, by id past ``after_id``."""
        cursor = self._col.find(
            {"conversation_id": conversation_id, "_id": {"$gt": after_id}},
            sort=[("_id", ASCENDING)],
            limit=limit,
            session=self._session,
        )
        return await self._many([d async for d in cursor])

    async def stale_uploading(self, before: datetime, limit: int) -> list[FileRecord]:
        """Direct uploads never completed, created before ``before`` (retention)."""
        cursor = self._col.find(
            {"status": FileStatus.UPLOADING.value, "created_at": {"$lt": before}},
            sort=[("created_at", ASCENDING)],
            limit=limit,
            session=self._session,
        )
        return await self._many([d async for d in cursor])


class FileWorkQueue:
    """Service-wide: the processor's claims on files of every tenant.

    A claim sets ``lease_owner`` and ``lease_until`` on the record; a file whose
    lease ended is claimable again. Records come back opened (names included).
    """

    def __init__(self, col: AsyncCollection[Doc], vault: KeyVault) -> None:
        self._col = col
        self._vault = vault

    async def _opened(self, doc: Doc | None) -> FileRecord | None:
        if doc is None:
            return None
        return _record(doc, TenantCipher(await self._vault.keys(str(doc["tenant_id"]))))

    async def _claim(
        self, flt: Doc, now: datetime, owner: str, lease: timedelta
    ) -> FileRecord | None:
        doc = await self._col.find_one_and_update(
            {
                **flt,
                "next_attempt_at": {"$lte": now},
                "$or": [{"lease_until": None}, {"lease_until": {"$lt": now}}],
            },
            {"$set": {"lease_owner": owner, "lease_until": now + lease}},
            sort=[("next_attempt_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        return await self._opened(doc)

    async def claim_due_pending(
        self, now: datetime, owner: str, lease: timedelta
    ) -> FileRecord | None:
        """A PENDING file due for scanning that no live lease holds, now leased to ``owner``."""
        return await self._claim({"status": FileStatus.PENDING.value}, now, owner, lease)

    async def renew(
        self, tenant_id: str, file_id: str, owner: str, now: datetime, lease: timedelta
    ) -> bool:
        """Extends ``owner``'s lease (a long scan); False when it was lost."""
        changed = await self._col.update_one(
            {"tenant_id": tenant_id, "_id": file_id, "lease_owner": owner},
            {"$set": {"lease_until": now + lease}},
        )
        return changed.matched_count == 1

    async def release_with_backoff(
        self, tenant_id: str, file_id: str, owner: str, next_attempt_at: datetime
    ) -> bool:
        """Gives the file back for a later attempt (the scanner was down); counts it."""
        changed = await self._col.update_one(
            {"tenant_id": tenant_id, "_id": file_id, "lease_owner": owner},
            {
                "$set": {
                    "lease_owner": "",
                    "lease_until": None,
                    "next_attempt_at": next_attempt_at,
                },
                "$inc": {"scan_attempts": 1},
            },
        )
        return changed.matched_count == 1

    async def claim_due_purge(
        self, now: datetime, owner: str, lease: timedelta
    ) -> FileRecord | None:
        """An INFECTED, REJECTED or DELETED file not purged yet, now leased to
        ``owner``: delete every variant of blobs.VARIANTS (a crash may have left
        one the record does not list), then mark_purged."""
        return await self._claim({"purge": True}, now, owner, lease)

    async def mark_purged(self, tenant_id: str, file_id: str, owner: str, now: datetime) -> bool:
        changed = await self._col.update_one(
            {"tenant_id": tenant_id, "_id": file_id, "lease_owner": owner},
            {
                "$set": {
                    "variants": [],
                    "purge": False,
                    "lease_owner": "",
                    "lease_until": None,
                    "updated_at": now,
                }
            },
        )
        return changed.matched_count == 1


@dataclass(frozen=True, slots=True)
class Usage:
    user_bytes: int
    tenant_bytes: int


class FileUsageRepo:
    """Bytes stored per user and per tenant, against their quotas."""

    def __init__(self, col: TenantCollection, session: AsyncClientSession | None = None) -> None:
        self._col = col
        self._session = session

    async def _ensure(self, subject: str) -> None:
        try:
            await self._col.update_one(
                {"subject": subject},
                {"$setOnInsert": {"bytes": 0}},
                upsert=True,
                session=self._session,
            )
        except DuplicateKeyError:
            # Two first uses at once: the other one created it.
            if self._session is not None:
                raise

    async def _add_within(self, subject: str, n: int, quota: int) -> bool:
        changed = await self._col.update_one(
            {"subject": subject, "bytes": {"$lte": quota - n}},
            {"$inc": {"bytes": n}},
            session=self._session,
        )
        return changed.matched_count == 1

    async def reserve(self, user_id: str, n: int, user_quota: int, tenant_quota: int) -> bool:
        """Adds ``n`` bytes to the user's and the tenant's counters when both stay
        within their quota; False (and nothing added) otherwise."""
        if n < 0:
            raise ValueError("reserve a positive size")
        if n > user_quota or n > tenant_quota:
            return False
        user = f"user:{user_id}"
        await self._ensure(_TENANT_SUBJECT)
        await self._ensure(user)
        if not await self._add_within(_TENANT_SUBJECT, n, tenant_quota):
            return False
        if await self._add_within(user, n, user_quota):
            return True
        await self._col.update_one(
            {"subject": _TENANT_SUBJECT}, {"$inc": {"bytes": -n}}, session=self._session
        )
        return False

    async def release(self, user_id: str, n: int) -> None:
        """Gives back ``n`` bytes (a file deleted, refused, or smaller than reserved)."""
        if n <= 0:
            return
        for subject in (f"user:{user_id}", _TENANT_SUBJECT):
            await self._col.update_one(
                {"subject": subject}, {"$inc": {"bytes": -n}}, session=self._session
            )

    async def usage(self, user_id: str) -> Usage:
        docs = {
            str(d["subject"]): int(d["bytes"])
            async for d in self._col.find(
                {"subject": {"$in": [f"user:{user_id}", _TENANT_SUBJECT]}}, session=self._session
            )
        }
        return Usage(docs.get(f"user:{user_id}", 0), docs.get(_TENANT_SUBJECT, 0))

    async def forget_user(self, user_id: str) -> None:
        """Drops the user's counter (erasure), releasing its bytes from the tenant's."""
        doc = await self._col.find_one({"subject": f"user:{user_id}"}, session=self._session)
        if doc is None:
            return
        await self._col.update_one(
            {"subject": _TENANT_SUBJECT},
            {"$inc": {"bytes": -int(doc["bytes"])}},
            session=self._session,
        )
        await self._col.delete_many({"subject": f"user:{user_id}"}, session=self._session)
