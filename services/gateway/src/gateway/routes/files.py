"""Files of a conversation and their signed downloads (docs/api.md, "Files")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from confab_core import limits
from confab_core.errors import Unavailable
from gateway import files_schemas as fs
from gateway.deps import CallerDep, ContextDep
from gateway.fileops import MAX_UPLOAD_BODY_BYTES, FileOps, download_headers
from gateway.routes.conversations import ERRORS, LIMITED, WRITE_ERRORS, ConversationId
from gateway.schemas import ErrorOut

router = APIRouter(tags=["files"])

FileId = Annotated[str, Path(min_length=1, max_length=limits.MAX_ID_CHARS)]
TicketQuery = Annotated[str, Query(max_length=limits.MAX_ID_CHARS)]
TOO_LARGE: dict[int | str, dict[str, object]] = {413: {"model": ErrorOut}}
RESPONSES = {**WRITE_ERRORS, **LIMITED}

# The upload's body, documented by hand: the route reads it as a stream, never
# as a parsed form.
_MULTIPART = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "client_id": {
                            "type": "string",
                            "pattern": fs.CLIENT_ID_PATTERN,
                            "description": "Before the file part: a retry with the same one "
                            "returns the stored file (or send the Idempotency-Key header)",
                        },
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "Exactly one; its filename is the file's name",
                        },
                    },
                },
                "encoding": {"file": {"contentType": "application/octet-stream"}},
            }
        },
    }
}


def get_file_ops(ctx: ContextDep) -> FileOps:
    if ctx.file_urls is None:
        raise Unavailable("file downloads are not configured", "files_unavailable")
    return FileOps(ctx.backends.files, ctx.ops.limiter, ctx.file_urls, MAX_UPLOAD_BODY_BYTES)


FileOpsDep = Annotated[FileOps, Depends(get_file_ops)]


@router.post(
    "/conversations/{conversation_id}/files",
    response_model=fs.FileUploadOut,
    status_code=status.HTTP_201_CREATED,
    responses={**RESPONSES, **TOO_LARGE},
    openapi_extra=_MULTIPART,
)
async def upload_file(
    conversation_id: ConversationId,
    request: Request,
    caller: CallerDep,
    ops: FileOpsDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=64)] = None,
) -> fs.FileUploadOut:
    """Streams one file to storage (multipart/form-data: an optional ``client_id``
    field, then exactly one ``file`` part). The answer is ``pending`` until the
    virus scan; ``file:updated`` follows. 200 instead of 201 for a retry with the
    same client id. 422 ``invalid_multipart``, ``invalid_client_id``,
    ``empty_file``, ``file_type_not_allowed``, ``image_too_large``; 413
    ``file_too_large``, ``quota_exceeded``."""
    length = request.headers.get("content-length", "")
    result = await ops.upload(
        caller,
        conversation_id,
        request.headers.get("content-type", ""),
        int(length) if length.isdigit() else None,
        idempotency_key,
        request.stream(),
    )
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return result


@router.post(
    "/conversations/{conversation_id}/files/uploads",
    response_model=fs.CreateUploadOut,
    status_code=status.HTTP_201_CREATED,
    responses={**RESPONSES, **TOO_LARGE},
)
async def create_upload(
    conversation_id: ConversationId,
    body: fs.CreateUploadIn,
    caller: CallerDep,
    ops: FileOpsDep,
    response: Response,
) -> fs.CreateUploadOut:
    """Direct upload (S3 only; 409 ``direct_upload_unavailable`` otherwise): PUT the
    bytes to ``url`` with ``headers`` before ``expires_at``, then call ``complete``."""
    result = await ops.create_upload_url(caller, conversation_id, body)
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return result


@router.post(
    "/conversations/{conversation_id}/files/{file_id}/complete",
    response_model=fs.StoredFileOut,
    responses={**RESPONSES, **TOO_LARGE},
)
async def complete_upload(
    conversation_id: ConversationId, file_id: FileId, caller: CallerDep, ops: FileOpsDep
) -> fs.StoredFileOut:
    """Checks the stored bytes as an upload does and moves the file to ``pending``."""
    return await ops.complete_upload(caller, conversation_id, file_id)


@router.get(
    "/conversations/{conversation_id}/files",
    response_model=fs.FilePageOut,
    responses={**ERRORS, **LIMITED},
)
async def list_files(
    conversation_id: ConversationId,
    caller: CallerDep,
    ops: FileOpsDep,
    limit: Annotated[int, Query(ge=1, le=limits.MAX_PAGE)] = limits.DEFAULT_PAGE,
    cursor: Annotated[str, Query(max_length=1024)] = "",
    ticket_id: TicketQuery = "",
) -> fs.FilePageOut:
    """Newest first; deleted files left out. Platform staff name the escalated
    ``ticket_id`` whose conversation it is (audited)."""
    return await ops.list(caller, conversation_id, limit, cursor, ticket_id)


@router.get(
    "/conversations/{conversation_id}/files/{file_id}",
    response_model=fs.FileWithUrlsOut,
    responses={**ERRORS, **LIMITED},
)
async def get_file(
    conversation_id: ConversationId,
    file_id: FileId,
    caller: CallerDep,
    ops: FileOpsDep,
    ticket_id: TicketQuery = "",
) -> fs.FileWithUrlsOut:
    """The file and, for a pending or clean one, download URLs valid 120 s for the
    caller only (the bearer token must come with them). Platform staff name the
    escalated ``ticket_id`` whose conversation it is (audited)."""
    return await ops.get(caller, conversation_id, file_id, ticket_id)


@router.delete(
    "/conversations/{conversation_id}/files/{file_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=RESPONSES,
)
async def delete_file(
    conversation_id: ConversationId, file_id: FileId, caller: CallerDep, ops: FileOpsDep
) -> None:
    """The uploader or a moderator; 409 ``file_attached`` for a file of a message
    (delete the message instead)."""
    await ops.delete(caller, conversation_id, file_id)


@router.get(
    "/files/{file_id}/content",
    response_class=StreamingResponse,
    responses={
        **ERRORS,
        **LIMITED,
        200: {"content": {"application/octet-stream": {}}, "description": "The bytes"},
        403: {"model": ErrorOut},
        409: {"model": ErrorOut},
    },
)
async def file_content(
    file_id: FileId,
    caller: CallerDep,
    ops: FileOpsDep,
    c: Annotated[str, Query(min_length=1, max_length=limits.MAX_ID_CHARS)],
    v: Annotated[str, Query(max_length=16)],
    e: Annotated[str, Query(max_length=16)],
    s: Annotated[str, Query(max_length=64)],
    t: TicketQuery = "",
) -> StreamingResponse:
    """A signed URL from ``GET .../files/{file_id}``, with the same user's bearer
    token. Another user's, tenant's or a tampered URL: 404 ``not_found``; expired:
    403 ``url_expired``; not scanned yet: 409 ``file_pending``."""
    download, remaining = await ops.download(caller, file_id, c, v, e, s, t)
    return StreamingResponse(download.chunks, headers=download_headers(download.header, remaining))
