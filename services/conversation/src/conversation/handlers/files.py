"""Files shared in conversations: who may upload, see, download and delete them,
and the policy uploads are judged by (docs/files.md).

Uploads are member actions like sends (the same checks: visible, not
sanctioned, a writer with chat.send_files, not archived) and leave no audit
record; a moderator's delete of someone else's file does, and so does every
read by platform staff on an escalated ticket. Bytes reach storage only through
``CheckedBytes`` (size, type and image checks on the way) and storage's sealing
``FileBytes``; any refusal deletes what was stored, and a file is recorded
PENDING only once its bytes are whole and its quota reserved, in the same
transaction as the record.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from confab.conversation.v1 import files_pb2 as fpb
from confab_core.errors import ConfabError, FailedPrecondition, InvalidArgument, NotFound
from confab_core.identity import Caller
from confab_core.ids import new_id
from confab_core.limits import MAX_CONTENT_TYPE_CHARS, MAX_ID_CHARS
from conversation.handlers import access, filetypes, platformaccess
from conversation.handlers.audit import entry
from conversation.handlers.base import HandlerBase
from conversation.handlers.checkedbytes import (
    CheckedBytes,
    clean_name,
    file_too_large,
    judge,
    quota_exceeded,
    valid_client_id,
)
from conversation.handlers.filepolicy import FilePolicy
from conversation.handlers.paging import page_limit
from conversation.handlers.policy import PolicyHandler
from conversation.handlers.unit import UnitOfWork
from conversation.storage.audit import Target
from conversation.storage.blobs import ObjectKey, Variant
from conversation.storage.conversations import Conversation
from conversation.storage.db import TenantStore, Transaction
from conversation.storage.filebytes import (
    FRAME_BYTES,
    SEALED_FRAME_BYTES,
    FileBytes,
)
from conversation.storage.files import (
    ClientIdTaken,
    Created,
    FileRecord,
    FileStatus,
    PendingChange,
)

FILE_DELETED_BY_OTHER = "file.deleted_by_other"
PLATFORM_FILES_READ = "platform.files_read"

# Download chunks: at most this many plaintext bytes per message.
DOWNLOAD_CHUNK_BYTES = 256 * 1024
# How long a presigned direct upload may take to start.
UPLOAD_URL_TTL = timedelta(minutes=15)

_VARIANTS: dict[int, Variant] = {
    fpb.FILE_VARIANT_ORIGINAL: "original",
    fpb.FILE_VARIANT_THUMBNAIL: "thumbnail",
    fpb.FILE_VARIANT_PREVIEW: "preview",
}
_NOT_SERVED = {
    FileStatus.UPLOADING: "file_pending",
    FileStatus.PENDING: "file_pending",
    FileStatus.INFECTED: "file_infected",
    FileStatus.REJECTED: "file_rejected",
}


class FileWork(Protocol):
    """The processor's side: told when a file waits for it."""

    def wake(self) -> None: ...


class Policies(Protocol):
    async def file_policy(self, tenant_id: str) -> FilePolicy: ...


class EscalatedConversations(Protocol):
    """Platform staff's way in (handlers/platform.py): the tenant and
    conversation of a ticket still escalated, or NotFound."""

    async def escalated_conversation(self, staff: Caller, ticket_id: str) -> tuple[str, str]: ...


def file_not_found() -> NotFound:
    return NotFound("file not found", "file_not_found")


@dataclass(frozen=True)
class Uploaded:
    file: FileRecord
    created: bool


@dataclass(frozen=True)
class UploadUrl:
    file: FileRecord
    url: str
    headers: dict[str, str]
    expires_at: datetime
    created: bool


@dataclass(frozen=True)
class Download:
    file: FileRecord
    variant: int
    content_type: str
    size_bytes: int
    attachment: bool
    chunks: AsyncIterator[bytes]


@dataclass(frozen=True)
class FilePage:
    files: list[FileRecord]
    next_page_token: str


def _valid_id(value: str, what: str) -> str:
    if not value or len(value) > MAX_ID_CHARS:
        raise InvalidArgument(f"{what} is required", f"invalid_{what}")
    return value


def plain_size(stored: int, header: int) -> int:
    """A sealed object's plaintext size from its stored size (storage/filebytes.py:
    a header, then frames of FRAME_BYTES each with a nonce and a tag)."""
    body = stored - header
    frames = max(1, -(-body // SEALED_FRAME_BYTES))
    return body - frames * (SEALED_FRAME_BYTES - FRAME_BYTES)


async def _rechunked(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Plaintext cut to at most DOWNLOAD_CHUNK_BYTES a message."""
    async for chunk in chunks:
        for i in range(0, len(chunk), DOWNLOAD_CHUNK_BYTES):
            yield chunk[i : i + DOWNLOAD_CHUNK_BYTES]


class FileHandler(HandlerBase):
    def __init__(
        self,
        unit: UnitOfWork,
        files: FileBytes,
        policies: Policies,
        work: FileWork,
        escalations: EscalatedConversations | None = None,
        pii_policies: PolicyHandler | None = None,
    ) -> None:
        """``pii_policies``: the process's policy cache (names are screened like text)."""
        super().__init__(unit, pii_policies)
        self.files = files
        self._policies = policies
        self._work = work
        self._escalations = escalations

    # Who may do what.

    async def _uploader(self, caller: Caller, conversation_id: str) -> Conversation:
        """What a send needs: visible, not sanctioned, a writer allowed files, not archived."""
        _valid_id(conversation_id, "conversation_id")
        conv, member = await self.writable_by(caller, conversation_id)
        access.require_writer(caller, conv, member, "send")
        access.require_file_sender(await self.granted(caller))
        access.require_writable(conv)
        return conv

    async def _reader(
        self, caller: Caller, conversation_id: str, ticket_id: str
    ) -> tuple[Caller, Conversation]:
        """Who reads, and the conversation: whoever may read it (as for its
        messages), or platform staff naming the escalated ticket it carries,
        acting inside its tenant (their reads are audited by the callers of this)."""
        _valid_id(conversation_id, "conversation_id")
        if caller.platform_staff:
            if self._escalations is None or not ticket_id:
                raise access.not_found()
            tenant_id, escalated = await self._escalations.escalated_conversation(caller, ticket_id)
            if escalated != conversation_id:
                raise access.not_found()
            scoped = platformaccess.in_tenant(caller, tenant_id)
            conv = await self.store(scoped).conversations.get(conversation_id)
            if conv is None or conv.deleted:
                raise access.not_found()
            return scoped, conv
        conv, _ = await self.readable(caller, conversation_id)
        return caller, conv

    async def _file(self, caller: Caller, conversation_id: str, file_id: str) -> FileRecord:
        _valid_id(file_id, "file_id")
        found = await self.store(caller).files.get(conversation_id, file_id)
        if found is None or found.status == FileStatus.DELETED:
            raise file_not_found()
        return found

    async def _shown(self, caller: Caller, conversation_id: str, file_id: str) -> FileRecord:
        """``_file``, as readers see it: an upload not yet sent with a message
        is its uploader's draft, which nobody else sees."""
        found = await self._file(caller, conversation_id, file_id)
        if not _shown_to(caller, found):
            raise file_not_found()
        return found

    async def _audit_staff_read(
        self, scoped: Caller, conversation_id: str, target: Target, count: int
    ) -> None:
        # Before the answer: a read that cannot be audited does not happen.
        await self.audit.record(
            scoped,
            PLATFORM_FILES_READ,
            target,
            after={"files": str(count)},
            conversation_id=conversation_id,
        )

    # Uploads.

    async def upload(
        self, caller: Caller, start: fpb.UploadStart, chunks: AsyncIterable[bytes]
    ) -> Uploaded:
        client_id = valid_client_id(start.client_id)
        if start.declared_size_bytes < 0:
            raise InvalidArgument("declared_size_bytes cannot be negative", "invalid_size")
        name = clean_name(start.name)
        conv = await self._uploader(caller, start.conversation_id)
        store = self.store(caller)
        again = await store.files.by_client_id(conv.id, caller.user_id, client_id)
        if again is not None:
            return Uploaded(again, created=False)
        name = await self._screened_name(caller, name)
        policy = await self._policies.file_policy(caller.tenant_id)
        await self._precheck(caller, policy, start.declared_size_bytes)
        file_id = new_id()
        key = ObjectKey(caller.tenant_id, conv.id, file_id, "original")
        checked = CheckedBytes(chunks, name, policy, policy.max_size_bytes)
        try:
            stored = await self.files.store(key, checked)
        except BaseException:
            await self._discard(key)
            raise
        sniffed = checked.sniffed
        if sniffed is None:
            raise RuntimeError("CheckedBytes passed bytes on without judging them")
        now = self.clock.now()
        rec = FileRecord(
            id=file_id,
            tenant_id=caller.tenant_id,
            conversation_id=conv.id,
            uploader_id=caller.user_id,
            client_id=client_id,
            name=name,
            status=FileStatus.PENDING,
            created_at=now,
            updated_at=now,
            backend=self.files.blobs.backend,
            key_id=stored.key_id,
            declared_content_type=start.declared_content_type[:MAX_CONTENT_TYPE_CHARS],
            declared_size_bytes=start.declared_size_bytes,
            content_type=sniffed.content_type,
            kind=sniffed.kind,
            size_bytes=stored.size,
            sha256=stored.sha256,
            reserved_bytes=stored.size,
            variants=("original",),
            download_only=policy.download_only(sniffed),
        )
        try:
            done = await self._create(caller, policy, rec)
        except BaseException:
            await self._discard(key)
            raise
        if not done.created:
            # A retry racing this upload stored the same client id first.
            await self._discard(key)
            return Uploaded(done.file, created=False)
        self._work.wake()
        return Uploaded(done.file, created=True)

    async def _screened_name(self, caller: Caller, name: str) -> str:
        """The cleaned name as the tenant's PII policy lets it be stored (blocked:
        422 ``pii_blocked``; masked); ``file`` when masking left nothing."""
        return clean_name(await self.pii.screen_file_name(caller, name))

    async def _precheck(self, caller: Caller, policy: FilePolicy, declared: int) -> None:
        """A declared size over the limit or the quotas: refused before any byte."""
        if declared > policy.max_size_bytes:
            raise file_too_large(policy.max_size_bytes)
        if declared:
            used = await self.store(caller).file_usage.usage(caller.user_id)
            if (
                used.user_bytes + declared > policy.user_quota_bytes
                or used.tenant_bytes + declared > policy.tenant_quota_bytes
            ):
                raise quota_exceeded()

    async def _create(self, caller: Caller, policy: FilePolicy, rec: FileRecord) -> Created:
        """The record and its quota reservation in one transaction: two uploads
        racing for the last bytes of a quota cannot both pass. A retry's twin
        that committed first is the answer (nothing reserved for it twice)."""

        async def body(tx: Transaction) -> Created:
            store = tx.for_tenant(caller.tenant_id)
            done = await store.files.create(rec)
            if not done.created:
                return done
            if not await store.file_usage.reserve(
                caller.user_id,
                rec.reserved_bytes,
                policy.user_quota_bytes,
                policy.tenant_quota_bytes,
            ):
                raise quota_exceeded()
            return done

        try:
            return await self._db.transaction(body)
        except ClientIdTaken:
            # The twin committed meanwhile: this run finds it.
            return await self._db.transaction(body)

    async def _discard(self, key: ObjectKey) -> None:
        # The refusal is the answer; an object left by a failed delete is the
        # processor's and the compliance jobs' to sweep (they delete every variant).
        with contextlib.suppress(Exception):
            await self.files.blobs.delete(key)

    # Direct uploads (S3).

    async def create_upload_url(
        self,
        caller: Caller,
        *,
        conversation_id: str,
        client_id: str,
        name: str,
        size_bytes: int,
        declared_content_type: str,
    ) -> UploadUrl:
        client_id = valid_client_id(client_id)
        if size_bytes <= 0:
            raise InvalidArgument("size_bytes: the exact size, at least 1", "invalid_size")
        conv = await self._uploader(caller, conversation_id)
        name = await self._screened_name(caller, clean_name(name))
        if not self.files.blobs.direct_upload:
            raise FailedPrecondition(
                "direct uploads need the S3 storage backend", "direct_upload_unavailable"
            )
        store = self.store(caller)
        found = await store.files.by_client_id(conv.id, caller.user_id, client_id)
        if found is not None:
            file, created = found, False
        else:
            policy = await self._policies.file_policy(caller.tenant_id)
            await self._precheck(caller, policy, size_bytes)
            now = self.clock.now()
            rec = FileRecord(
                id=new_id(),
                tenant_id=caller.tenant_id,
                conversation_id=conv.id,
                uploader_id=caller.user_id,
                client_id=client_id,
                name=name,
                status=FileStatus.UPLOADING,
                created_at=now,
                updated_at=now,
                backend=self.files.blobs.backend,
                declared_content_type=declared_content_type[:MAX_CONTENT_TYPE_CHARS],
                declared_size_bytes=size_bytes,
                size_bytes=size_bytes,
                reserved_bytes=size_bytes,
            )
            done = await self._create(caller, policy, rec)
            file, created = done.file, done.created
        if file.status != FileStatus.UPLOADING:
            return UploadUrl(file, "", {}, self.clock.now(), created)
        key = ObjectKey(caller.tenant_id, conv.id, file.id, "staging")
        url, headers = await self.files.blobs.presign_put(key, file.size_bytes, UPLOAD_URL_TTL)
        return UploadUrl(file, url, headers, self.clock.now() + UPLOAD_URL_TTL, created)

    async def complete_upload(
        self, caller: Caller, *, conversation_id: str, file_id: str
    ) -> FileRecord:
        conv = await self._uploader(caller, conversation_id)
        file = await self._file(caller, conv.id, file_id)
        if file.uploader_id != caller.user_id:
            raise file_not_found()
        if file.status != FileStatus.UPLOADING:
            return file
        policy = await self._policies.file_policy(caller.tenant_id)
        staging = ObjectKey(caller.tenant_id, conv.id, file.id, "staging")
        size = await self.files.blobs.size(staging)
        if size is None:
            raise FailedPrecondition("nothing was uploaded yet", "upload_missing")
        try:
            if size != file.size_bytes:
                raise InvalidArgument(
                    f"the upload has {size} bytes, not the {file.size_bytes} announced",
                    "size_mismatch",
                )
            if size > policy.max_size_bytes:
                raise file_too_large(policy.max_size_bytes)
            head = await self._head(staging)
            sniffed = judge(head, file.name, policy, complete=len(head) >= size)
        except ConfabError as refused:
            await self._discard(staging)
            await self._reject(caller, file, refused.code)
            raise
        # The processor seals the staging object into the original (a large
        # file's sealing does not hold this call) before it scans.
        change = PendingChange(
            size_bytes=size,
            sha256="",
            content_type=sniffed.content_type,
            kind=sniffed.kind,
            key_id="",
            download_only=policy.download_only(sniffed),
            variants=("staging",),
        )
        done = await self.store(caller).files.mark_pending(file.id, change, self.clock.now())
        if done is None:
            return await self._file(caller, conv.id, file.id)
        self._work.wake()
        return done

    async def _reject(self, caller: Caller, file: FileRecord, reason: str) -> None:
        """A refused direct upload: REJECTED, and its reservation given back."""

        async def body(tx: Transaction) -> None:
            store = tx.for_tenant(caller.tenant_id)
            gone = await store.files.mark_rejected(file.id, reason, self.clock.now())
            if gone is not None:
                await _release(store, gone, self.clock.now())

        await self._db.transaction(body)

    async def _head(self, key: ObjectKey) -> bytes:
        head = bytearray()
        chunks = self.files.blobs.get(key)
        try:
            async for chunk in chunks:
                head += chunk
                if len(head) >= filetypes.SNIFF_BYTES:
                    break
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
        return bytes(head[: filetypes.SNIFF_BYTES])

    # Reads.

    async def get(
        self, caller: Caller, conversation_id: str, file_id: str, ticket_id: str = ""
    ) -> FileRecord:
        acting, conv = await self._reader(caller, conversation_id, ticket_id)
        file = await self._shown(acting, conv.id, file_id)
        if acting is not caller:
            await self._audit_staff_read(acting, conv.id, Target("file", file.id), 1)
        return file

    async def list(
        self,
        caller: Caller,
        conversation_id: str,
        *,
        limit: int,
        page_token: str,
        ticket_id: str = "",
    ) -> FilePage:
        acting, conv = await self._reader(caller, conversation_id, ticket_id)
        try:
            page = await self.store(acting).files.page(conv.id, page_limit(limit), page_token)
        except ValueError:
            raise InvalidArgument(
                "page token is not valid for this list", "invalid_cursor"
            ) from None
        shown = [f for f in page.files if _shown_to(acting, f)]
        if acting is not caller:
            await self._audit_staff_read(
                acting, conv.id, Target("conversation", conv.id), len(shown)
            )
        return FilePage(shown, page.next_token)

    async def download(
        self,
        caller: Caller,
        conversation_id: str,
        file_id: str,
        variant: int,
        ticket_id: str = "",
    ) -> Download:
        variant = variant or fpb.FILE_VARIANT_ORIGINAL
        name = _VARIANTS.get(variant)
        if name is None:
            raise InvalidArgument("variant: original, thumbnail or preview", "invalid_variant")
        acting, conv = await self._reader(caller, conversation_id, ticket_id)
        file = await self._shown(acting, conv.id, file_id)
        if file.status != FileStatus.CLEAN:
            code = _NOT_SERVED.get(file.status, "file_pending")
            raise FailedPrecondition(f"the file cannot be downloaded ({code})", code)
        if name not in file.variants:
            raise NotFound(f"this file has no {name}", "variant_not_found")
        key = ObjectKey(acting.tenant_id, conv.id, file.id, name)
        stored = await self.files.blobs.size(key)
        if stored is None:
            raise NotFound(f"this file has no {name}", "variant_not_found")
        if acting is not caller:
            await self._audit_staff_read(acting, conv.id, Target("file", file.id), 1)
        if name == "original":
            content_type = filetypes.served_type(file.content_type)
            attachment = file.download_only or not filetypes.inline(file.content_type)
            size = file.size_bytes
        else:
            content_type = "image/webp" if name == "thumbnail" else "image/png"
            attachment = False
            size = plain_size(stored, await self._header_bytes(key))
        chunks = _rechunked(self.files.open(key))
        return Download(file, variant, content_type, size, attachment, chunks)

    async def _header_bytes(self, key: ObjectKey) -> int:
        """The length of a sealed object's header (magic, key id length, key id)."""
        chunks = self.files.blobs.get(key)
        try:
            first = await anext(aiter(chunks))
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
        return 5 + first[4]

    # Deletes.

    async def delete(self, caller: Caller, conversation_id: str, file_id: str) -> None:
        _valid_id(conversation_id, "conversation_id")
        conv, member = await self.readable(caller, conversation_id)
        file = await self._file(caller, conv.id, file_id)
        own = file.uploader_id == caller.user_id
        if not own:
            access.require_moderator(await self.granted(caller), member)
        if file.message_id:
            raise FailedPrecondition(
                "the file belongs to a message: delete the message", "file_attached"
            )

        async def body(tx: Transaction) -> None:
            store = tx.for_tenant(caller.tenant_id)
            gone = await store.files.mark_deleted(conv.id, file.id, self.clock.now())
            if gone is None:
                return
            await _release(store, gone, self.clock.now())
            if not own:
                await self.audit.append(
                    store,
                    entry(
                        caller,
                        FILE_DELETED_BY_OTHER,
                        Target("file", file.id),
                        {"uploader_id": file.uploader_id},
                        {"deleted": True},
                        conversation_id=conv.id,
                    ),
                )

        if own:
            await self._db.transaction(body)
        else:
            await self.audit.transaction(caller.tenant_id, body)
        # The processor purges the bytes.
        self._work.wake()


def _shown_to(caller: Caller, file: FileRecord) -> bool:
    """Files sent with a message are the conversation's; others their uploader's."""
    return bool(file.message_id) or file.uploader_id == caller.user_id


async def _release(store: TenantStore, gone: FileRecord, now: datetime) -> None:
    """Inside the transaction that refused or deleted the file: the bytes it
    held go back to the quotas, and the record holds none any more, so a
    compliance job that removes it later does not give them back twice."""
    if gone.reserved_bytes <= 0:
        return
    await store.files.set_reserved(gone.id, 0, now)
    await store.file_usage.release(gone.uploader_id, gone.reserved_bytes)
