"""gRPC servicer of FileService: translation only (handlers/files.py holds the rules)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from confab.conversation.v1 import files_pb2 as fpb
from confab.conversation.v1 import files_pb2_grpc as fpb_grpc
from confab_core.errors import InvalidArgument
from confab_core.grpcx import Ctx
from confab_core.identity import current_caller
from conversation import convert
from conversation.convert import ts
from conversation.handlers.files import FileHandler


def _no_start() -> InvalidArgument:
    return InvalidArgument("an upload starts with `start`, once", "invalid_upload")


async def _chunks(requests: AsyncIterator[fpb.UploadFileRequest]) -> AsyncIterator[bytes]:
    async for request in requests:
        if request.WhichOneof("part") != "chunk":
            raise _no_start()
        yield request.chunk


# How much of an upload's remaining body is read (and dropped) when it was
# answered early: see _drained.
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024


async def _drained(requests: AsyncIterator[fpb.UploadFileRequest]) -> None:
    """Reads what the client still sends of an upload answered early, up to its
    end or DRAIN_LIMIT_BYTES. Ending the call while the client is still writing
    makes grpcio's asyncio client replace the answer with INTERNAL
    (grpc/grpc#36066): the gateway would say 502 instead of 413, 422 or the
    stored file."""
    drained = 0
    async for request in requests:
        drained += len(request.chunk)
        if drained > DRAIN_LIMIT_BYTES:
            return


class FileServicer(fpb_grpc.FileServiceServicer):
    def __init__(self, files: FileHandler) -> None:
        self._files = files

    async def UploadFile(
        self, request_iterator: AsyncIterator[fpb.UploadFileRequest], context: Ctx
    ) -> fpb.UploadFileResponse:
        requests = aiter(request_iterator)
        try:
            first = await anext(requests)
        except StopAsyncIteration:
            raise _no_start() from None
        if first.WhichOneof("part") != "start":
            raise _no_start()
        try:
            done = await self._files.upload(current_caller(), first.start, _chunks(requests))
        finally:
            # A refusal, or a retry answered with the stored file, comes before
            # the body ends.
            await _drained(requests)
        return fpb.UploadFileResponse(file=convert.file(done.file), created=done.created)

    async def CreateUploadUrl(
        self, request: fpb.CreateUploadUrlRequest, context: Ctx
    ) -> fpb.CreateUploadUrlResponse:
        done = await self._files.create_upload_url(
            current_caller(),
            conversation_id=request.conversation_id,
            client_id=request.client_id,
            name=request.name,
            size_bytes=request.size_bytes,
            declared_content_type=request.declared_content_type,
        )
        return fpb.CreateUploadUrlResponse(
            file=convert.file(done.file),
            url=done.url,
            headers=done.headers,
            expires_at=ts(done.expires_at),
            created=done.created,
        )

    async def CompleteUpload(
        self, request: fpb.CompleteUploadRequest, context: Ctx
    ) -> fpb.CompleteUploadResponse:
        done = await self._files.complete_upload(
            current_caller(), conversation_id=request.conversation_id, file_id=request.file_id
        )
        return fpb.CompleteUploadResponse(file=convert.file(done))

    async def GetFile(self, request: fpb.GetFileRequest, context: Ctx) -> fpb.GetFileResponse:
        found = await self._files.get(
            current_caller(), request.conversation_id, request.file_id, request.ticket_id
        )
        return fpb.GetFileResponse(file=convert.file(found))

    async def ListFiles(self, request: fpb.ListFilesRequest, context: Ctx) -> fpb.ListFilesResponse:
        page = await self._files.list(
            current_caller(),
            request.conversation_id,
            limit=request.limit,
            page_token=request.page_token,
            ticket_id=request.ticket_id,
        )
        return fpb.ListFilesResponse(
            files=[convert.file(f) for f in page.files], next_page_token=page.next_page_token
        )

    async def DownloadFile(
        self, request: fpb.DownloadFileRequest, context: Ctx
    ) -> AsyncIterator[fpb.DownloadFileResponse]:
        found = await self._files.download(
            current_caller(),
            request.conversation_id,
            request.file_id,
            request.variant,
            request.ticket_id,
        )
        yield fpb.DownloadFileResponse(
            header=fpb.DownloadHeader(
                file=convert.file(found.file),
                variant=found.variant,  # type: ignore[arg-type]
                content_type=found.content_type,
                size_bytes=found.size_bytes,
                attachment=found.attachment,
            )
        )
        async for chunk in found.chunks:
            yield fpb.DownloadFileResponse(chunk=chunk)

    async def DeleteFile(
        self, request: fpb.DeleteFileRequest, context: Ctx
    ) -> fpb.DeleteFileResponse:
        await self._files.delete(current_caller(), request.conversation_id, request.file_id)
        return fpb.DeleteFileResponse()
