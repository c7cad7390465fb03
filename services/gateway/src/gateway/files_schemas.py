"""The JSON shapes of files (docs/api.md, "Files"), for REST and ``file:updated``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from confab_core import limits
from gateway.schemas import Strict

FileStatusName = Literal["uploading", "pending", "clean", "infected", "rejected", "deleted"]
# What UploadStart.client_id accepts (files.proto).
CLIENT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ClientId = Annotated[str, StringConstraints(pattern=CLIENT_ID_PATTERN)]


class StoredFileOut(BaseModel):
    """An uploaded file. Only ``clean`` files can be downloaded; ``pending`` ones
    wait for the virus scan (clients show "scanning")."""

    id: str
    conversation_id: str
    uploader_id: str
    name: str
    content_type: str = Field(description="Sniffed from the bytes, never the client's claim")
    kind: str = Field(description="image, pdf, text, document, spreadsheet, ... (docs/files.md)")
    size_bytes: int
    status: FileStatusName
    width: int | None = Field(default=None, description="Images and PDFs, once processed")
    height: int | None = None
    has_thumbnail: bool
    has_preview: bool
    download_only: bool = Field(description="Always served as an attachment (SVG)")
    message_id: str | None = Field(description="The message it is attached to")
    client_id: str
    sha256: str
    created_at: datetime
    updated_at: datetime


class FileUploadOut(StoredFileOut):
    created: bool = Field(description="False when a retry with the same client_id found it")


class FileWithUrlsOut(StoredFileOut):
    url: str | None = Field(
        description="Download URL (pending and clean files), valid url_expires_at; "
        "use it with the same bearer token"
    )
    thumbnail_url: str | None
    preview_url: str | None
    url_expires_at: datetime | None


class FilePageOut(BaseModel):
    files: list[StoredFileOut]
    next_cursor: str | None


class CreateUploadIn(Strict):
    client_id: ClientId
    name: Annotated[str, StringConstraints(min_length=1, max_length=limits.MAX_FILE_NAME_CHARS)]
    size_bytes: Annotated[int, Field(ge=1, le=limits.MAX_FILE_BYTES)]
    content_type: Annotated[
        str,
        StringConstraints(
            min_length=3, max_length=limits.MAX_CONTENT_TYPE_CHARS, pattern=r"^\S+/\S+$"
        ),
    ] = "application/octet-stream"


class CreateUploadOut(BaseModel):
    file: StoredFileOut
    url: str = Field(description="PUT the bytes here, with exactly `headers`")
    headers: dict[str, str]
    expires_at: datetime
    created: bool
