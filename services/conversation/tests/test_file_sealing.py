"""Sealed file frames: what comes back is what went in, or nothing.

The sealer is pure logic over a tenant's keys: tampering, truncation, frame
reordering and moving frames between files are all refused. Key rotation is
checked over the real key vault.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

import pytest

from confab_core import mongo
from confab_core.clock import FakeClock
from confab_core.crypto import DataKey, LocalKeyFileProvider, TenantKeys, UndecryptableError
from confab_devservers import MongoServer
from conversation.storage.blobs import ObjectKey
from conversation.storage.db import Database
from conversation.storage.filebytes import (
    FRAME_BYTES,
    SEALED_FRAME_BYTES,
    FileSealer,
    header,
)

pytestmark = pytest.mark.asyncio

KEY = ObjectKey("tenant-a", "c1", "f1", "original")
K1 = DataKey.generate("k1")
KEYS = TenantKeys("tenant-a", K1, {"k1": K1}, b"s" * 32)


async def chunks_of(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def collect(stream: AsyncIterable[bytes]) -> bytes:
    return b"".join([c async for c in stream])


async def sealed(plain: bytes, where: ObjectKey = KEY, split: int = 10_000) -> bytes:
    parts = [plain[i : i + split] for i in range(0, len(plain), split)]
    return await collect(FileSealer(KEYS).seal(where, chunks_of(*parts)))


async def opened(blob: bytes, where: ObjectKey = KEY, *, pieces: int = 7_777) -> bytes:
    parts = [blob[i : i + pieces] for i in range(0, len(blob), pieces)]
    return await collect(FileSealer(KEYS).open(where, chunks_of(*parts)))


def frames(blob: bytes) -> tuple[bytes, list[bytes]]:
    head = len(header("k1"))
    body = blob[head:]
    return blob[:head], [
        body[i : i + SEALED_FRAME_BYTES] for i in range(0, len(body), SEALED_FRAME_BYTES)
    ]


@pytest.mark.parametrize(
    "size", [0, 1, FRAME_BYTES - 1, FRAME_BYTES, FRAME_BYTES + 1, 3 * FRAME_BYTES, 200_001]
)
async def test_round_trip_any_size_and_any_chunking(size: int) -> None:
    plain = os.urandom(size)
    stream = FileSealer(KEYS).seal(KEY, chunks_of(plain[:3], plain[3:50_000], plain[50_000:]))
    blob = await collect(stream)
    assert (stream.size, stream.sha256) == (size, hashlib.sha256(plain).hexdigest())
    assert stream.key_id == "k1"
    for pieces in (1000, SEALED_FRAME_BYTES, 1 << 20):
        assert await opened(blob, pieces=pieces) == plain
    # A frame per 64 KiB, and at least one (the last).
    _, fs = frames(blob)
    assert len(fs) == max(1, -(-size // FRAME_BYTES))


async def test_a_flipped_bit_anywhere_is_refused() -> None:
    blob = await sealed(os.urandom(150_000))
    for at in (len(header("k1")) + 5, len(blob) // 2, len(blob) - 1):
        bad = bytearray(blob)
        bad[at] ^= 1
        with pytest.raises(UndecryptableError):
            await opened(bytes(bad))


async def test_truncation_is_refused_even_at_a_frame_boundary() -> None:
    blob = await sealed(os.urandom(3 * FRAME_BYTES + 10))
    head, fs = frames(blob)
    for cut in (head, head + fs[0], head + fs[0] + fs[1], blob[:-1], blob[: len(head) - 1]):
        with pytest.raises(UndecryptableError):
            await opened(cut)


async def test_appending_a_frame_is_refused() -> None:
    blob = await sealed(os.urandom(2 * FRAME_BYTES))
    _, fs = frames(blob)
    with pytest.raises(UndecryptableError):
        await opened(blob + fs[0])


async def test_reordered_frames_are_refused() -> None:
    blob = await sealed(os.urandom(3 * FRAME_BYTES + 10))
    head, fs = frames(blob)
    with pytest.raises(UndecryptableError):
        await opened(head + fs[1] + fs[0] + fs[2] + fs[3])


async def test_frames_of_another_file_variant_or_tenant_do_not_open_here() -> None:
    plain = os.urandom(FRAME_BYTES + 5)
    for other in (
        ObjectKey("tenant-a", "c1", "f2", "original"),
        ObjectKey("tenant-a", "c2", "f1", "original"),
        ObjectKey("tenant-a", "c1", "f1", "thumbnail"),
    ):
        with pytest.raises(UndecryptableError):
            await opened(await sealed(plain, other))
    # One frame swapped in from another file of the same tenant, at the same index.
    mine, theirs = (
        await sealed(plain),
        await sealed(plain, ObjectKey("tenant-a", "c1", "f2", "original")),
    )
    head, fs = frames(mine)
    _, other_fs = frames(theirs)
    with pytest.raises(UndecryptableError):
        await opened(head + other_fs[0] + fs[1])
    with pytest.raises(ValueError):
        FileSealer(KEYS).seal(ObjectKey("tenant-b", "c1", "f1", "original"), chunks_of(b"x"))


async def test_a_blob_naming_another_key_than_its_record_is_refused() -> None:
    blob = await sealed(b"hello")
    with pytest.raises(UndecryptableError):
        await collect(FileSealer(KEYS).open(KEY, chunks_of(blob), key_id="k2"))
    assert await collect(FileSealer(KEYS).open(KEY, chunks_of(blob), key_id="k1")) == b"hello"


async def test_key_rotation_keeps_old_files_readable(
    mongo_server: MongoServer, key_file: Path
) -> None:
    clock = FakeClock()
    client = mongo.connect(mongo_server.url, "test")
    name = f"sealing_{os.urandom(6).hex()}"
    db = Database(client, name, LocalKeyFileProvider(key_file), clock)
    try:
        old = FileSealer(await db.keys.keys("tenant-a"))
        stream = old.seal(KEY, chunks_of(b"sealed before rotation"))
        blob = await collect(stream)
        assert stream.key_id == "k1"
        await db.keys.rotate("tenant-a")
        clock.advance(db.keys.rotation_delay.total_seconds() + 1)
        new = FileSealer(await db.keys.fresh_keys("tenant-a"))
        again = new.seal(KEY, chunks_of(b"after"))
        assert (await collect(again))[: len(header("k2"))] == header("k2")
        assert again.key_id == "k2"
        assert (
            await collect(new.open(KEY, chunks_of(blob), key_id="k1")) == b"sealed before rotation"
        )
    finally:
        await client.drop_database(name)
        await client.close()
