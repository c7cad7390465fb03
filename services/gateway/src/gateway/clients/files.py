"""The conversation service's FileService, as the gateway calls it: uploads
stream in, downloads stream out, every call acting as the user."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import grpc

from confab.conversation.v1 import files_pb2 as fpb
from confab_core.errors import Unavailable
from confab_core.grpcx.client import translate
from confab_core.identity import Caller, acting_as
from gateway import files_schemas as fs
from gateway.clients.peer import PeerClient

if TYPE_CHECKING:
    from confab.conversation.v1.files_pb2_grpc import FileServiceAsyncStub

# UploadFileRequest.chunk is at most 1 MiB (files.proto).
MAX_CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Download:
    header: fpb.DownloadHeader
    chunks: AsyncIterator[bytes]


class FileClient(PeerClient):
    def __init__(self, stub: FileServiceAsyncStub, timeout: float, transfer_timeout: float) -> None:
        super().__init__(timeout)
        self._stub = stub
        self.transfer_timeout = transfer_timeout

    async def upload(
        self, caller: Caller, start: fpb.UploadStart, chunks: AsyncIterator[bytes]
    ) -> fpb.UploadFileResponse:
        """Streams ``start`` then ``chunks`` (split to the RPC's limit); the call is
        half-closed, which is what completes an upload, only once ``chunks`` ends."""

        async def requests() -> AsyncIterator[fpb.UploadFileRequest]:
            yield fpb.UploadFileRequest(start=start)
            async for chunk in chunks:
                for at in range(0, len(chunk), MAX_CHUNK_BYTES):
                    yield fpb.UploadFileRequest(chunk=chunk[at : at + MAX_CHUNK_BYTES])

        try:
            with acting_as(caller):
                call = self._stub.UploadFile(requests(), timeout=self.transfer_timeout)
            return await call
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from None

    async def download(self, caller: Caller, request: fpb.DownloadFileRequest) -> Download:
        """Waits for the header (so a refusal is an error here, before any byte is
        sent on); the chunks follow from ``Download.chunks``."""
        with acting_as(caller):
            call: Any = self._stub.DownloadFile(request, timeout=self.transfer_timeout)
        responses = call.__aiter__()
        try:
            first = await anext(responses)
        except StopAsyncIteration:
            call.cancel()
            raise Unavailable("the file service sent no header", "bad_upstream_response") from None
        except grpc.aio.AioRpcError as exc:
            raise translate(exc) from None
        if first.WhichOneof("part") != "header":
            call.cancel()
            raise Unavailable("the file service sent no header", "bad_upstream_response")

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for part in responses:
                    yield part.chunk
            except grpc.aio.AioRpcError as exc:
                raise translate(exc) from None
            finally:
                call.cancel()

        return Download(first.header, chunks())

    async def create_upload_url(
        self, caller: Caller, request: fpb.CreateUploadUrlRequest
    ) -> fpb.CreateUploadUrlResponse:
        return await self._call(self._stub.CreateUploadUrl, request, caller)

    async def complete_upload(
        self, caller: Caller, request: fpb.CompleteUploadRequest
    ) -> fpb.CompleteUploadResponse:
        return await self._call(self._stub.CompleteUpload, request, caller)

    async def get_file(self, caller: Caller, request: fpb.GetFileRequest) -> fpb.GetFileResponse:
        return await self._call(self._stub.GetFile, request, caller)

    async def list_files(
        self, caller: Caller, request: fpb.ListFilesRequest
    ) -> fpb.ListFilesResponse:
        return await self._call(self._stub.ListFiles, request, caller)

    async def delete_file(
        self, caller: Caller, request: fpb.DeleteFileRequest
    ) -> fpb.DeleteFileResponse:
        return await self._call(self._stub.DeleteFile, request, caller)


STATUS_NAMES: dict[int, fs.FileStatusName] = {
    fpb.FILE_STATUS_UPLOADING: "uploading",
    fpb.FILE_STATUS_PENDING: "pending",
    fpb.FILE_STATUS_CLEAN: "clean",
    fpb.FILE_STATUS_INFECTED: "infected",
    fpb.FILE_STATUS_REJECTED: "rejected",
    fpb.FILE_STATUS_DELETED: "deleted",
}


def _dt(f: fpb.File, name: str) -> datetime:
    return cast(datetime, getattr(f, name).ToDatetime(tzinfo=UTC))


def file_fields(f: fpb.File) -> dict[str, Any]:
    """A File as the JSON of StoredFileOut and what extends it."""
    return {
        "id": f.id,
        "conversation_id": f.conversation_id,
        "uploader_id": f.uploader_id,
        "name": f.name,
        "content_type": f.content_type,
        "kind": f.kind,
        "size_bytes": f.size_bytes,
        # A status this gateway does not know yet is one nobody may download.
        "status": STATUS_NAMES.get(f.status, "pending"),
        "width": f.width or None,
        "height": f.height or None,
        "has_thumbnail": f.has_thumbnail,
        "has_preview": f.has_preview,
        "download_only": f.download_only,
        "message_id": f.message_id or None,
        "client_id": f.client_id,
        "sha256": f.sha256,
        "created_at": _dt(f, "created_at"),
        "updated_at": _dt(f, "updated_at"),
    }


def file_out(f: fpb.File) -> fs.StoredFileOut:
    return fs.StoredFileOut(**file_fields(f))
