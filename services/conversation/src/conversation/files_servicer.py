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
        done = await self._files.upload(current_caller(), first.start, _chunks(requests))
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
