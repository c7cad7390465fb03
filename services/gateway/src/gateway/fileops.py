"""Files as REST routes call them: rate limits, translation, streamed multipart
uploads and signed download URLs. The conversation service holds every rule."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from confab.conversation.v1 import files_pb2 as fpb
from confab_core import limits
from confab_core.errors import InvalidArgument, TooLarge
from confab_core.identity import Caller
from confab_core.ids import new_id
from gateway import files_schemas as fs
from gateway.clients.files import Download, FileClient, file_fields, file_out
from gateway.fileurls import FileUrlSigner, VariantName
from gateway.ratelimit import Action, RateLimiter

# Chunks waiting for the upload RPC; when it falls behind, reading the request
# body waits too, so memory stays a few chunks whatever the file's size.
QUEUE_CHUNKS = 8
# Form fields before the file part are small (client_id); headers of a part too.
MAX_FIELD_BYTES = 1024
MAX_PART_HEADER_BYTES = 8192
# The hard cap of an upload's whole body: the platform's largest file and room
# for the multipart framing. Tenants' own limits are the service's to enforce.
MAX_UPLOAD_BODY_BYTES = limits.MAX_FILE_BYTES + 64 * 1024
_CLIENT_ID = re.compile(fs.CLIENT_ID_PATTERN)
_VARIANTS: dict[VariantName, fpb.FileVariant.ValueType] = {
    "original": fpb.FILE_VARIANT_ORIGINAL,
    "thumbnail": fpb.FILE_VARIANT_THUMBNAIL,
    "preview": fpb.FILE_VARIANT_PREVIEW,
}
# Which statuses get a download URL: a pending file's URL answers 409
# file_pending until the scan is done (clients show "scanning").
_URL_STATUSES = (fpb.FILE_STATUS_PENDING, fpb.FILE_STATUS_CLEAN)


class _Answered(Exception):
    pass


def _bad(message: str) -> InvalidArgument:
    return InvalidArgument(message, "invalid_multipart")


def client_id_of(value: str) -> str:
    if not _CLIENT_ID.match(value):
        raise InvalidArgument(
            "client_id must be 1 to 64 of A-Z, a-z, 0-9, _ and -", "invalid_client_id"
        )
    return value


@dataclass
class _Part:
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    header_bytes: int = 0
    name: str = ""
    filename: str | None = None
    content_type: str = ""
    value: bytearray = field(default_factory=bytearray)


class MultipartUpload:
    """Feeds one multipart/form-data body, chunk by chunk, into an upload stream.

    python-multipart's push parser calls back synchronously with slices of each
    chunk; those are collected, then handed on with ``await`` so the body is read
    no faster than the upload RPC takes it. The RPC starts at the file's first
    byte (an empty file never reaches the service) and is half-closed, which is
    what stores the file, only once the whole body parsed as exactly one ``file``
    part after at most a ``client_id`` field; anything else cancels it.
    """

    def __init__(
        self,
        content_type: str,
        content_length: int | None,
        header_client_id: str | None,
        max_bytes: int,
        start_upload: Callable[
            [str, str, str, int, AsyncIterator[bytes]], asyncio.Task[fpb.UploadFileResponse]
        ],
    ) -> None:
        mime, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        if mime != b"multipart/form-data" or not boundary:
            raise _bad("the body must be multipart/form-data with a boundary")
        self._boundary = boundary
        self._content_length = content_length
        self._client_id = client_id_of(header_client_id) if header_client_id is not None else None
        self._max_bytes = max_bytes
        self._start_upload = start_upload
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
        )
        self._part: _Part | None = None
        self._field: bytearray = bytearray()
        self._value: bytearray = bytearray()
        self._pending: list[bytes] = []
        self._read = 0
        self._file_seen = False
        self._file_ended = False
        self._file_bytes = 0
        self._data_offset: int | None = None
        self._ended = False
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_CHUNKS)
        self.task: asyncio.Task[fpb.UploadFileResponse] | None = None

    async def run(self, body: AsyncIterable[bytes]) -> fpb.UploadFileResponse:
        try:
            async for chunk in body:
                if not chunk:
                    continue
                self._check_part_size_before(chunk)
                try:
                    self._parser.write(chunk)
                except MultipartParseError as exc:
                    raise _bad(f"malformed multipart body: {exc}") from None
                self._read += len(chunk)
                await self._flush()
            try:
                self._parser.finalize()
            except MultipartParseError as exc:
                raise _bad(f"malformed multipart body: {exc}") from None
            if not self._ended:
                raise _bad("the multipart body ends before its closing boundary")
            if not self._file_seen:
                raise _bad("no file part: send the file as the part named file")
            if self.task is None:
                raise InvalidArgument("the file is empty", "empty_file")
            await self._put(None)
            return await self.task
        except _Answered:
            assert self.task is not None
            return self.task.result()
        finally:
            if self.task is not None and not self.task.done():
                self.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self.task

    def _check_part_size_before(self, chunk: bytes) -> None:
        # Counted on the whole body: a hard platform cap, whatever the tenant's
        # policy (which the service enforces on the file's bytes).
        if self._read + len(chunk) > self._max_bytes:
            raise TooLarge(f"request body exceeds {self._max_bytes} bytes", "payload_too_large")

    async def _flush(self) -> None:
        if self._file_bytes > 0 and self.task is None:
            self._begin_upload()
        pending, self._pending = self._pending, []
        for data in pending:
            await self._put(data)

    def _begin_upload(self) -> None:
        part = self._part
        assert part is not None and part.filename is not None
        declared = 0
        if self._content_length is not None and self._data_offset is not None:
            # A lower bound (the closing boundary's trailing CRLF is optional),
            # exact for the usual one-part body: it may let the service refuse a
            # file too large before storing any of it, never wrongly.
            closing = len(b"\r\n--" + self._boundary + b"--\r\n")
            declared = max(0, self._content_length - self._data_offset - closing)
        client_id = self._client_id or new_id()
        self.task = self._start_upload(
            client_id, part.filename, part.content_type, declared, self._chunks()
        )

    async def _chunks(self) -> AsyncIterator[bytes]:
        while (chunk := await self._queue.get()) is not None:
            yield chunk

    async def _put(self, data: bytes | None) -> None:
        """Queues ``data`` for the RPC, waiting while it is behind; an RPC that
        ended early (a refusal) ends the request with its error."""
        assert self.task is not None
        if not self.task.done():
            put = asyncio.ensure_future(self._queue.put(data))
            done, _ = await asyncio.wait({put, self.task}, return_when=asyncio.FIRST_COMPLETED)
            if put in done:
                return
            put.cancel()
        # The service answered before the body ended: a refusal (raised here),
        # or a retry of a stored upload, whose answer is the request's.
        await self.task
        raise _Answered

    # Parser callbacks: synchronous, so they only record.

    def _part_begin(self) -> None:
        if self._file_ended:
            raise _bad("the file part must be the last part")
        self._part = _Part()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header(end - start)
        self._value += data[start:end]

    def _count_header(self, size: int) -> None:
        assert self._part is not None
        self._part.header_bytes += size
        if self._part.header_bytes > MAX_PART_HEADER_BYTES:
            raise _bad("a part's headers are too long")

    def _header_end(self) -> None:
        assert self._part is not None
        self._part.headers.append((bytes(self._field).lower(), bytes(self._value)))
        self._field, self._value = bytearray(), bytearray()

    def _headers_finished(self) -> None:
        part = self._part
        assert part is not None
        disposition = b""
        for name, value in part.headers:
            if name == b"content-disposition":
                disposition = value
            elif name == b"content-type":
                part.content_type = value.decode("latin-1").strip()[: limits.MAX_CONTENT_TYPE_CHARS]
        kind, params = parse_options_header(disposition)
        if kind != b"form-data" or b"name" not in params:
            raise _bad("every part needs Content-Disposition: form-data with a name")
        part.name = params[b"name"].decode("utf-8", "replace")
        if part.name == "file":
            if self._file_seen:
                raise _bad("send exactly one file part")
            filename = params.get(b"filename", b"").decode("utf-8", "replace")
            if not filename.strip():
                raise _bad("the file part needs a filename")
            part.filename = filename
            self._file_seen = True
        elif part.name != "client_id":
            raise _bad(f"unexpected form field {part.name!r}: send client_id, then file")
        elif self._file_seen:
            raise _bad("client_id must come before the file part")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        assert part is not None
        if part.filename is None:
            part.value += data[start:end]
            if len(part.value) > MAX_FIELD_BYTES:
                raise _bad(f"the {part.name} field is too long")
            return
        if end <= start:
            return
        if self._data_offset is None:
            self._data_offset = self._read + start
        self._file_bytes += end - start
        self._pending.append(bytes(data[start:end]))

    def _part_end(self) -> None:
        part = self._part
        assert part is not None
        if part.filename is not None:
            self._file_ended = True
            return
        given = part.value.decode("utf-8", "replace")
        if self._client_id is not None and self._client_id != given:
            raise InvalidArgument(
                "the client_id field and the Idempotency-Key header differ", "invalid_client_id"
            )
        self._client_id = client_id_of(given)

    def _end(self) -> None:
        self._ended = True


@dataclass(frozen=True)
class Urls:
    url: str | None
    thumbnail_url: str | None
    preview_url: str | None
    expires_at: datetime | None


class FileOps:
    def __init__(
        self, client: FileClient, limiter: RateLimiter, urls: FileUrlSigner, max_bytes: int
    ) -> None:
        self._c = client
        self._limiter = limiter
        self._urls = urls
        self._max_bytes = max_bytes

    async def upload(
        self,
        caller: Caller,
        conversation_id: str,
        content_type: str,
        content_length: int | None,
        idempotency_key: str | None,
        body: AsyncIterable[bytes],
    ) -> fs.FileUploadOut:
        await self._limiter.check(caller, Action.FILE_UPLOAD)

        def start(
            client_id: str,
            name: str,
            declared_type: str,
            declared: int,
            chunks: AsyncIterator[bytes],
        ) -> asyncio.Task[fpb.UploadFileResponse]:
            first = fpb.UploadStart(
                conversation_id=conversation_id,
                client_id=client_id,
                name=name[: limits.MAX_FILE_NAME_CHARS * 4],
                declared_content_type=declared_type,
                declared_size_bytes=declared,
            )
            return asyncio.ensure_future(self._c.upload(caller, first, chunks))

        upload = MultipartUpload(
            content_type, content_length, idempotency_key, self._max_bytes, start
        )
        result = await upload.run(body)
        return fs.FileUploadOut(**file_fields(result.file), created=result.created)

    async def create_upload_url(
        self, caller: Caller, conversation_id: str, body: fs.CreateUploadIn
    ) -> fs.CreateUploadOut:
        await self._limiter.check(caller, Action.FILE_UPLOAD)
        resp = await self._c.create_upload_url(
            caller,
            fpb.CreateUploadUrlRequest(
                conversation_id=conversation_id,
                client_id=body.client_id,
                name=body.name,
                size_bytes=body.size_bytes,
                declared_content_type=body.content_type,
            ),
        )
        return fs.CreateUploadOut(
            file=file_out(resp.file),
            url=resp.url,
            headers=dict(resp.headers),
            expires_at=resp.expires_at.ToDatetime(tzinfo=UTC),
            created=resp.created,
        )

    async def complete_upload(
        self, caller: Caller, conversation_id: str, file_id: str
    ) -> fs.StoredFileOut:
        await self._limiter.check(caller, Action.FILE_UPLOAD)
        resp = await self._c.complete_upload(
            caller, fpb.CompleteUploadRequest(conversation_id=conversation_id, file_id=file_id)
        )
        return file_out(resp.file)

    async def list(
        self, caller: Caller, conversation_id: str, limit: int, cursor: str, ticket_id: str = ""
    ) -> fs.FilePageOut:
        await self._limiter.check(caller, Action.FILE_READ)
        resp = await self._c.list_files(
            caller,
            fpb.ListFilesRequest(
                conversation_id=conversation_id,
                limit=limit,
                page_token=cursor,
                ticket_id=ticket_id,
            ),
        )
        return fs.FilePageOut(
            files=[file_out(f) for f in resp.files], next_cursor=resp.next_page_token or None
        )

    async def get(
        self, caller: Caller, conversation_id: str, file_id: str, ticket_id: str = ""
    ) -> fs.FileWithUrlsOut:
        """The file and its signed URLs. ``ticket_id``: platform staff reading an
        escalated ticket's conversation; their URLs name (and sign) it too."""
        await self._limiter.check(caller, Action.FILE_READ)
        resp = await self._c.get_file(
            caller,
            fpb.GetFileRequest(
                conversation_id=conversation_id, file_id=file_id, ticket_id=ticket_id
            ),
        )
        urls = self.urls(caller, resp.file, ticket_id)
        return fs.FileWithUrlsOut(
            **file_fields(resp.file),
            url=urls.url,
            thumbnail_url=urls.thumbnail_url,
            preview_url=urls.preview_url,
            url_expires_at=urls.expires_at,
        )

    def urls(self, caller: Caller, f: fpb.File, ticket_id: str = "") -> Urls:
        if f.status not in _URL_STATUSES:
            return Urls(None, None, None, None)
        wanted: list[VariantName] = ["original"]
        if f.has_thumbnail:
            wanted.append("thumbnail")
        if f.has_preview:
            wanted.append("preview")
        signed = {
            v: self._urls.sign(
                tenant_id=caller.tenant_id,
                user_id=caller.user_id,
                conversation_id=f.conversation_id,
                file_id=f.id,
                variant=v,
                ticket_id=ticket_id,
            )
            for v in wanted
        }
        return Urls(
            url=signed["original"].path,
            thumbnail_url=signed["thumbnail"].path if "thumbnail" in signed else None,
            preview_url=signed["preview"].path if "preview" in signed else None,
            expires_at=datetime.fromtimestamp(signed["original"].expires_at, UTC),
        )

    async def delete(self, caller: Caller, conversation_id: str, file_id: str) -> None:
        await self._limiter.check(caller, Action.FILE_UPLOAD)
        await self._c.delete_file(
            caller, fpb.DeleteFileRequest(conversation_id=conversation_id, file_id=file_id)
        )

    async def download(
        self,
        caller: Caller,
        file_id: str,
        conversation_id: str,
        variant: str,
        expires_at: str,
        signature: str,
        ticket_id: str = "",
    ) -> tuple[Download, int]:
        """The bytes behind a signed URL, and the seconds the URL has left."""
        await self._limiter.check(caller, Action.FILE_DOWNLOAD)
        verified = self._urls.verify(
            tenant_id=caller.tenant_id,
            user_id=caller.user_id,
            file_id=file_id,
            conversation_id=conversation_id,
            variant=variant,
            expires_at=expires_at,
            signature=signature,
            ticket_id=ticket_id,
        )
        download = await self._c.download(
            caller,
            fpb.DownloadFileRequest(
                conversation_id=verified.conversation_id,
                file_id=file_id,
                variant=_VARIANTS[verified.variant],
                ticket_id=verified.ticket_id,
            ),
        )
        return download, verified.remaining_seconds


# Types a browser shows inline without running anything: raster images and PDF
# (in its sandboxed viewer; the response's CSP sandbox covers the rest).
INLINE_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "application/pdf"}
)
# Types a browser would run or render as a page: never served as what they are.
_ACTIVE = re.compile(
    r"html|xml|svg|javascript|ecmascript|json|css|x-sh|wasm|x-shockwave|multipart", re.I
)
_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_EXTENSIONS = {"image/webp": ".webp", "image/png": ".png", "image/jpeg": ".jpg"}


def safe_content_type(declared: str) -> str:
    """What a download is served as: the service's type when it is inert,
    text/plain for other text, octet-stream for anything a browser could run."""
    mime = declared.split(";", 1)[0].strip().lower()
    if not _MIME.match(mime) or _ACTIVE.search(mime):
        return "application/octet-stream"
    if mime.startswith("text/"):
        return "text/plain; charset=utf-8"
    return mime


def download_filename(name: str, variant: int, content_type: str) -> str:
    if variant in (fpb.FILE_VARIANT_UNSPECIFIED, fpb.FILE_VARIANT_ORIGINAL):
        return name or "file"
    stem = (name or "file").rsplit(".", 1)[0]
    label = "thumbnail" if variant == fpb.FILE_VARIANT_THUMBNAIL else "preview"
    return f"{stem}-{label}{_EXTENSIONS.get(content_type, '')}"


def content_disposition(disposition: str, filename: str) -> str:
    """RFC 6266: an ASCII fallback for old clients and the exact name as
    RFC 5987 ``filename*`` (UTF-8, percent-encoded)."""
    cleaned = "".join(ch for ch in filename if ch.isprintable()) or "file"
    fallback = "".join(
        ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\%;' else "_" for ch in cleaned
    )
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(cleaned, safe='')}"


def download_headers(header: fpb.DownloadHeader, remaining_seconds: int) -> dict[str, str]:
    content_type = safe_content_type(header.content_type)
    inline = (
        content_type in INLINE_TYPES and not header.attachment and not header.file.download_only
    )
    name = download_filename(header.file.name, header.variant, content_type)
    return {
        "Content-Type": content_type,
        "Content-Length": str(header.size_bytes),
        "Content-Disposition": content_disposition("inline" if inline else "attachment", name),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
        "Cache-Control": f"private, max-age={max(0, remaining_seconds)}",
        "Referrer-Policy": "no-referrer",
    }
