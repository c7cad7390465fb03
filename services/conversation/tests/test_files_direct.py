"""Direct uploads on a real S3-compatible server (versitygw): a presigned PUT,
then complete applies the upload policy to the stored object."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from PIL import Image

from confab_core.errors import FailedPrecondition, InvalidArgument, NotFound
from confab_devservers import S3Server
from confab_devservers.pytest_plugin import s3_server  # noqa: F401  (a fixture)
from conversation.handlers.audit import AuditTrail
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.fileprocess import FileWork
from conversation.handlers.files import FileHandler
from conversation.handlers.tenant_settings import SettingsHandler
from conversation.handlers.unit import UnitOfWork
from conversation.storage.blobs import ObjectKey, S3BlobStore
from conversation.storage.db import Database
from conversation.storage.filebytes import FileBytes
from conversation.storage.files import FileStatus

from .conftest import ALICE, BOB, TENANT_A, create

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def s3(s3_server: S3Server, db: Database) -> AsyncIterator[FileBytes]:  # noqa: F811
    blobs = await S3BlobStore.connect(
        endpoint_url=s3_server.endpoint_url,
        public_endpoint_url=None,
        bucket=s3_server.bucket,
        region="us-east-1",
        access_key_id=s3_server.access_key,
        secret_access_key=s3_server.secret_key,
    )
    try:
        yield FileBytes(blobs, db.keys)
    finally:
        await blobs.close()


@pytest.fixture
def files(unit: UnitOfWork, s3: FileBytes) -> FileHandler:
    trail = AuditTrail(unit.database, unit.clock, unit.locks)
    settings = SettingsHandler(unit.database, unit.clock, trail, asyncio.Event())
    return FileHandler(unit, s3, settings, FileWork())


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), "blue").save(out, "PNG")
    return out.getvalue()


async def _put(url: str, headers: dict[str, str], data: bytes) -> None:
    async with aiohttp.ClientSession() as http, http.put(url, data=data, headers=headers) as r:
        assert r.status == 200, await r.text()


async def _held(db: Database) -> int:
    doc = await db.db["file_usage"].find_one({"tenant_id": TENANT_A, "subject": "tenant"})
    return int(doc["bytes"]) if doc else 0


async def test_a_direct_upload_is_checked_and_sealed_on_complete(
    files: FileHandler, conversations: ConversationHandler, db: Database, s3: FileBytes
) -> None:
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    png = _png()
    made = await files.create_upload_url(
        ALICE,
        conversation_id=conv,
        client_id="d1",
        name="photo.png",
        size_bytes=len(png),
        declared_content_type="image/png",
    )
    assert made.created and made.file.status == FileStatus.UPLOADING and made.url
    with pytest.raises(FailedPrecondition) as err:
        await files.complete_upload(ALICE, conversation_id=conv, file_id=made.file.id)
    assert err.value.code == "upload_missing"
    await _put(made.url, made.headers, png)
    again = await files.create_upload_url(
        ALICE,
        conversation_id=conv,
        client_id="d1",
        name="photo.png",
        size_bytes=len(png),
        declared_content_type="",
    )
    assert not again.created and again.file.id == made.file.id
    with pytest.raises(NotFound):
        await files.complete_upload(BOB, conversation_id=conv, file_id=made.file.id)
    done = await files.complete_upload(ALICE, conversation_id=conv, file_id=made.file.id)
    assert (done.status, done.content_type, done.kind) == (FileStatus.PENDING, "image/png", "image")
    assert done.size_bytes == len(png)
    # The processor seals the client's plaintext into the original.
    staging = ObjectKey(TENANT_A, conv, done.id, "staging")
    assert await s3.blobs.size(staging) == len(png)
    sealed = await s3.seal_staging(ObjectKey(TENANT_A, conv, done.id, "original"))
    assert sealed.size == len(png) and await s3.blobs.size(staging) is None
    opened = b"".join([c async for c in s3.open(ObjectKey(TENANT_A, conv, done.id, "original"))])
    assert opened == png
    # Completing again answers it unchanged.
    assert (await files.complete_upload(ALICE, conversation_id=conv, file_id=done.id)).id == done.id
    assert await _held(db) == len(png)


async def test_a_refused_direct_upload_is_rejected_and_deleted(
    files: FileHandler, conversations: ConversationHandler, db: Database, s3: FileBytes
) -> None:
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    exe = b"MZ" + b"\x00" * 998
    made = await files.create_upload_url(
        ALICE,
        conversation_id=conv,
        client_id="d2",
        name="photo.png",
        size_bytes=len(exe),
        declared_content_type="image/png",
    )
    assert await _held(db) == len(exe)
    await _put(made.url, made.headers, exe)
    with pytest.raises(InvalidArgument) as err:
        await files.complete_upload(ALICE, conversation_id=conv, file_id=made.file.id)
    assert err.value.code == "file_type_not_allowed"
    stored = await db.for_tenant(TENANT_A).files.get(conv, made.file.id)
    assert stored is not None and stored.status == FileStatus.REJECTED
    assert await s3.blobs.size(ObjectKey(TENANT_A, conv, made.file.id, "staging")) is None
    assert await _held(db) == 0
