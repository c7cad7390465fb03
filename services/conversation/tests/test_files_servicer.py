"""FileService over a real loopback gRPC connection with the production
interceptors: a streamed upload, a streamed download, and refusals that keep
their status and stable code (streams included)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio

from confab.conversation.v1 import files_pb2 as fpb
from confab.conversation.v1 import files_pb2_grpc as fpb_grpc
from confab_core.clock import SystemClock
from confab_core.errors import ERROR_CODE_METADATA_KEY
from confab_core.grpcx.client import channel
from confab_core.grpcx.server import GrpcServer
from confab_core.identity import acting_as
from confab_core.servicetoken import CONVERSATION, GATEWAY, InternalAuth
from conversation.files_servicer import FileServicer
from conversation.handlers.audit import AuditTrail
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.fileprocess import FileWork
from conversation.handlers.files import FileHandler
from conversation.handlers.tenant_settings import SettingsHandler
from conversation.handlers.unit import UnitOfWork
from conversation.storage.blobs import GridFsBlobStore
from conversation.storage.db import Database
from conversation.storage.filebytes import FileBytes
from conversation.storage.files import FileStatus

from .conftest import ALICE, MALLORY, create

pytestmark = pytest.mark.asyncio

KEY = b"conversation-tests-internal-key-32b"
AUTH = InternalAuth(CONVERSATION, KEY, SystemClock())
GATEWAY_AUTH = InternalAuth(GATEWAY, KEY, SystemClock())


@pytest_asyncio.fixture
async def stub(unit: UnitOfWork, db: Database) -> AsyncIterator[fpb_grpc.FileServiceStub]:
    server = GrpcServer(0, AUTH, host="127.0.0.1")
    trail = AuditTrail(unit.database, unit.clock, unit.locks)
    settings = SettingsHandler(unit.database, unit.clock, trail, asyncio.Event())
    blobs = FileBytes(GridFsBlobStore(db.db), db.keys)
    servicer = FileServicer(FileHandler(unit, blobs, settings, FileWork()))
    server.add(
        lambda s: fpb_grpc.add_FileServiceServicer_to_server(servicer, s),
        fpb.DESCRIPTOR.services_by_name["FileService"].full_name,
    )
    port = await server.start()
    gateway = channel(f"127.0.0.1:{port}", GATEWAY_AUTH, CONVERSATION)
    try:
        yield fpb_grpc.FileServiceStub(gateway)
    finally:
        await gateway.close()
        await server.stop(0)


def _code(err: grpc.aio.AioRpcError) -> str:
    return dict(err.trailing_metadata() or ()).get(ERROR_CODE_METADATA_KEY, "")  # type: ignore[arg-type]


async def _upload(
    conv: str, data: bytes, name: str = "n.txt", start: bool = True
) -> AsyncIterator[fpb.UploadFileRequest]:
    if start:
        yield fpb.UploadFileRequest(
            start=fpb.UploadStart(conversation_id=conv, client_id="c1", name=name)
        )
    for i in range(0, len(data), 100_000):
        yield fpb.UploadFileRequest(chunk=data[i : i + 100_000])


async def test_upload_then_download_streamed(
    stub: fpb_grpc.FileServiceStub, conversations: ConversationHandler, db: Database
) -> None:
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    data = b"some text line\n" * 40_000
    with acting_as(ALICE):
        up = await stub.UploadFile(_upload(conv, data))
    assert up.created and up.file.status == fpb.FILE_STATUS_PENDING
    assert up.file.size_bytes == len(data) and up.file.kind == "text"
    # The uploader's own file (sent with no message yet: nobody else sees it).
    with acting_as(ALICE):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            _ = [
                m
                async for m in stub.DownloadFile(
                    fpb.DownloadFileRequest(conversation_id=conv, file_id=up.file.id)
                )
            ]
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert _code(err.value) == "file_pending"
        await db.db["files"].update_one(
            {"_id": up.file.id}, {"$set": {"status": FileStatus.CLEAN.value}}
        )
        parts = [
            m
            async for m in stub.DownloadFile(
                fpb.DownloadFileRequest(conversation_id=conv, file_id=up.file.id)
            )
        ]
    assert parts[0].WhichOneof("part") == "header"
    assert parts[0].header.content_type == "text/plain; charset=utf-8"
    assert parts[0].header.attachment and parts[0].header.size_bytes == len(data)
    assert b"".join(p.chunk for p in parts[1:]) == data
    with acting_as(MALLORY):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetFile(fpb.GetFileRequest(conversation_id=conv, file_id=up.file.id))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_refusals_keep_their_codes(
    stub: fpb_grpc.FileServiceStub, conversations: ConversationHandler
) -> None:
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    with acting_as(ALICE):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.UploadFile(_upload(conv, b"MZ" + b"\x00" * 300_000, "cat.png"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert _code(err.value) == "file_type_not_allowed"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.UploadFile(_upload(conv, b"data", start=False))
        assert _code(err.value) == "invalid_upload"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.CreateUploadUrl(
                fpb.CreateUploadUrlRequest(
                    conversation_id=conv, client_id="d1", name="a.bin", size_bytes=10
                )
            )
        assert _code(err.value) == "direct_upload_unavailable"


async def _streamed(
    conv: str, client_id: str, chunks: int, declared: int = 0
) -> AsyncIterator[fpb.UploadFileRequest]:
    yield fpb.UploadFileRequest(
        start=fpb.UploadStart(
            conversation_id=conv, client_id=client_id, name="a.txt", declared_size_bytes=declared
        )
    )
    for _ in range(chunks):
        yield fpb.UploadFileRequest(chunk=b"line of text\n" * 80_000)


async def test_answers_before_the_body_ends_reach_the_client_as_sent(
    stub: fpb_grpc.FileServiceStub, conversations: ConversationHandler
) -> None:
    # The service answers at the start (a declared size over the policy, a retry
    # of a stored upload) while the client still streams: the client must get
    # that answer, not the INTERNAL grpcio's asyncio client makes of a write
    # after the status (grpc/grpc#36066). Rounds, since it is a race.
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    with acting_as(ALICE):
        stored = await stub.UploadFile(_streamed(conv, "kept", 1))
        for _ in range(8):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.UploadFile(_streamed(conv, "big", 30, declared=30 * 1024 * 1024))
            assert (err.value.code(), _code(err.value)) == (
                grpc.StatusCode.OUT_OF_RANGE,
                "file_too_large",
            )
            again = await stub.UploadFile(_streamed(conv, "kept", 10))
            assert (again.file.id, again.created) == (stored.file.id, False)
