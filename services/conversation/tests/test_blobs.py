"""The blob stores, the same tests over both real backends: GridFS in the
MongoDB-wire server and an S3-compatible server (versitygw, the devservers'
``s3_server``), plus sealed file bytes (FileBytes) on each."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import aiohttp
import pytest
import pytest_asyncio
from aiobotocore.session import get_session

from confab_core.crypto import UndecryptableError
from conversation.storage.blobs import (
    BlobNotFound,
    BlobStore,
    DirectUploadUnavailable,
    GridFsBlobStore,
    ObjectKey,
    S3BlobStore,
    prefix,
)
from conversation.storage.db import Database
from conversation.storage.filebytes import FileBytes

pytestmark = pytest.mark.asyncio

MiB = 1024 * 1024


def key(
    variant: str = "original", *, tenant: str = "tenant-a", conv: str = "c1", file: str = "f1"
) -> ObjectKey:
    return ObjectKey(tenant, conv, file, variant)  # type: ignore[arg-type]


async def chunks_of(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read_all(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in stream])


class Backend:
    """A store under test, and a way to misplace an object behind its back."""

    def __init__(
        self, store: BlobStore, misplace: Callable[[ObjectKey, ObjectKey], Awaitable[None]]
    ) -> None:
        self.store = store
        self.misplace = misplace


@pytest_asyncio.fixture(params=["gridfs", "s3"])
async def backend(request: pytest.FixtureRequest, db: Database) -> AsyncIterator[Backend]:
    if request.param == "gridfs":
        store = GridFsBlobStore(db.db)
        files = db.db["blobs.files"]

        async def rename(src: ObjectKey, dst: ObjectKey) -> None:
            await files.update_many(
                {"filename": src.render()}, {"$set": {"filename": dst.render()}}
            )

        yield Backend(store, rename)
        return
    try:
        server = request.getfixturevalue("s3_server")
    except pytest.FixtureLookupError:
        pytest.skip("the s3_server fixture (files-infra) is not merged yet")
    s3 = await S3BlobStore.connect(
        endpoint_url=server.endpoint_url,
        public_endpoint_url=None,
        bucket=server.bucket,
        region="us-east-1",
        access_key_id=server.access_key,
        secret_access_key=server.secret_key,
    )
    # Each test its own tenant prefix would do, but a fresh bucket view is simpler:
    # every key here starts with the tenant, and tests delete what they made.
    session = get_session()
    async with session.create_client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
    ) as raw:

        async def copy(src: ObjectKey, dst: ObjectKey) -> None:
            await raw.copy_object(
                Bucket=server.bucket,
                Key=dst.render(),
                CopySource={"Bucket": server.bucket, "Key": src.render()},
            )
            await raw.delete_object(Bucket=server.bucket, Key=src.render())

        try:
            yield Backend(s3, copy)
        finally:
            for tenant in ("tenant-a", "tenant-b"):
                await s3.delete_prefix(tenant)
            await s3.close()


async def test_keys_render_their_parts_and_refuse_free_strings() -> None:
    assert key().render() == "t/tenant-a/c/c1/f/f1/original"
    assert prefix("tenant-a") == "t/tenant-a/"
    assert prefix("tenant-a", "c1") == "t/tenant-a/c/c1/"
    for bad in ("", "a/b", "..", "x y", "é", "a" * 129):
        with pytest.raises(ValueError):
            key(tenant=bad)
        with pytest.raises(ValueError):
            key(conv=bad)
        with pytest.raises(ValueError):
            key(file=bad)
    with pytest.raises(ValueError):
        key("exe")


async def test_put_get_size_delete(backend: Backend) -> None:
    store = backend.store
    assert await store.put(key(), chunks_of(b"hello ", b"", b"world")) == 11
    assert await read_all(store.get(key())) == b"hello world"
    assert await store.size(key()) == 11
    await store.delete(key())
    assert await store.size(key()) is None
    with pytest.raises(BlobNotFound):
        await read_all(store.get(key()))
    # Deleting what is not there is fine.
    await store.delete(key())


async def test_empty_object(backend: Backend) -> None:
    assert await backend.store.put(key(), chunks_of()) == 0
    assert await backend.store.size(key()) == 0
    assert await read_all(backend.store.get(key())) == b""


async def test_a_second_put_replaces_the_first(backend: Backend) -> None:
    store = backend.store
    await store.put(key(), chunks_of(b"first version, longer"))
    await store.put(key(), chunks_of(b"second"))
    assert await read_all(store.get(key())) == b"second"
    assert await store.size(key()) == 6


async def test_a_failed_put_stores_nothing_and_keeps_the_old(backend: Backend) -> None:
    store = backend.store

    async def refused() -> AsyncIterator[bytes]:
        yield b"x" * 1000
        raise ValueError("file_type_not_allowed")

    with pytest.raises(ValueError):
        await store.put(key(file="new"), refused())
    assert await store.size(key(file="new")) is None
    await store.put(key(), chunks_of(b"kept"))
    with pytest.raises(ValueError):
        await store.put(key(), refused())
    assert await read_all(store.get(key())) == b"kept"


async def test_an_object_under_another_tenants_key_is_not_found(backend: Backend) -> None:
    store = backend.store
    await store.put(key(tenant="tenant-b"), chunks_of(b"tenant b's secret"))
    await backend.misplace(key(tenant="tenant-b"), key())
    assert await store.size(key()) is None
    with pytest.raises(BlobNotFound):
        await read_all(store.get(key()))
    # Another conversation of the same tenant likewise.
    await store.put(key(conv="c2"), chunks_of(b"other conversation"))
    await backend.misplace(key(conv="c2"), key(file="f2"))
    assert await store.size(key(file="f2")) is None


async def test_delete_prefix_by_tenant_and_conversation(backend: Backend) -> None:
    store = backend.store
    for k in (
        key(),
        key("thumbnail"),
        key(conv="c2"),
        key(tenant="tenant-b"),
    ):
        await store.put(k, chunks_of(b"data"))
    assert await store.delete_prefix("tenant-a", "c1") == 2
    assert await store.size(key()) is None
    assert await store.size(key("thumbnail")) is None
    assert await store.size(key(conv="c2")) == 4
    assert await store.delete_prefix("tenant-a") == 1
    assert await store.size(key(conv="c2")) is None
    assert await store.size(key(tenant="tenant-b")) == 4


async def test_presigned_put(backend: Backend) -> None:
    store = backend.store
    staging = key("staging")
    if not store.direct_upload:
        with pytest.raises(DirectUploadUnavailable):
            await store.presign_put(staging, 5, timedelta(minutes=2))
        return
    url, headers = await store.presign_put(staging, 5, timedelta(minutes=2))
    async with aiohttp.ClientSession() as http:
        # Another size than the signed one is refused.
        async with http.put(url, data=b"toolong", headers={**headers, "Content-Length": "7"}) as r:
            assert r.status >= 400
        assert await store.size(staging) is None
        async with http.put(url, data=b"bytes", headers=headers) as r:
            assert r.status == 200, await r.text()
    assert await store.size(staging) == 5
    assert await read_all(store.get(staging)) == b"bytes"


async def test_sealed_bytes_round_trip_and_stay_sealed(backend: Backend, db: Database) -> None:
    files = FileBytes(backend.store, db.keys)
    plain = os.urandom(200_000)
    stored = await files.store(key(), chunks_of(plain[:1], plain[1:70_000], plain[70_000:]))
    assert stored.size == len(plain)
    assert stored.key_id == "k1"
    assert stored.sha256 == hashlib.sha256(plain).hexdigest()
    assert await read_all(files.open(key(), stored.key_id)) == plain
    raw = await read_all(backend.store.get(key()))
    assert len(raw) == stored.stored_size > len(plain)
    assert plain[:64] not in raw
    # Copied under another file's key, the frames no longer open.
    await backend.store.put(key(file="f9"), chunks_of(raw))
    with pytest.raises(UndecryptableError):
        await read_all(files.open(key(file="f9")))


async def test_staging_is_sealed_into_the_original(backend: Backend, db: Database) -> None:
    files = FileBytes(backend.store, db.keys)
    await backend.store.put(key("staging"), chunks_of(b"plain upload"))
    stored = await files.seal_staging(key())
    assert stored.size == len(b"plain upload")
    assert await backend.store.size(key("staging")) is None
    assert await read_all(files.open(key(), stored.key_id)) == b"plain upload"


async def test_a_100_mib_put_keeps_memory_flat(backend: Backend, db: Database) -> None:
    files = FileBytes(backend.store, db.keys)
    block = os.urandom(MiB)
    await db.keys.keys("tenant-a")  # the key load is not the upload's memory

    async def hundred_mib() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield block

    tracemalloc.start()
    try:
        stored = await files.store(key(file="big"), hundred_mib())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stored.size == 100 * MiB
    # One S3 part (8 MiB) and its copy, or GridFS chunks, plus a frame: far from 100 MiB.
    assert peak < 40 * MiB, f"peak {peak / MiB:.1f} MiB"
    tracemalloc.start()
    try:
        total = 0
        async for chunk in files.open(key(file="big"), stored.key_id):
            total += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 100 * MiB
    assert peak < 20 * MiB, f"peak {peak / MiB:.1f} MiB"
