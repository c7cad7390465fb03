"""File bytes sealed at rest with the tenant's data key (docs/files.md#storage).

What handlers and the processor call: ``FileBytes.store`` streams plaintext in
and returns its size, SHA-256 and the key that sealed it; ``FileBytes.open``
streams plaintext back out. Nobody else sees frames.

Stored layout (version 1)::

    "CFB" | 0x01 | len(key_id) (1 byte) | key_id (ascii)
    then frames: nonce (12 bytes) | AES-256-GCM(plaintext frame) | tag (16 bytes)

Plaintext frames are ``FRAME_BYTES`` (64 KiB) each, the last one shorter (and
empty for an empty file, so there is always a last frame). Each frame's
associated data binds the tenant, conversation, file, variant, key id, its
index and whether it is the last: frames cannot be reordered, dropped, cut
after, or moved into another file, variant or tenant without failing their tag.
Memory stays at about one frame per stream whatever the file's size.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from confab_core.crypto import DataKey, TenantKeys, UndecryptableError
from conversation.storage.blobs import BlobStore, ObjectKey
from conversation.storage.keys import KeyVault

FRAME_BYTES = 64 * 1024
NONCE_BYTES = 12
TAG_BYTES = 16
SEALED_FRAME_BYTES = FRAME_BYTES + NONCE_BYTES + TAG_BYTES
_MAGIC = b"CFB\x01"
_AAD_PREFIX = b"confab.file.v1"


def _part(value: str) -> bytes:
    raw = value.encode("utf-8")
    return len(raw).to_bytes(4, "big") + raw


def _file_aad(key: ObjectKey, key_id: str) -> bytes:
    return (
        _AAD_PREFIX
        + _part(key.tenant_id)
        + _part(key.conversation_id)
        + _part(key.file_id)
        + _part(key.variant)
        + _part(key_id)
    )


def _frame_aad(base: bytes, index: int, last: bool) -> bytes:
    return base + struct.pack(">QB", index, 1 if last else 0)


def header(key_id: str) -> bytes:
    raw = key_id.encode("ascii")
    return _MAGIC + bytes((len(raw),)) + raw


@dataclass(frozen=True, slots=True)
class StoredBlob:
    # Of the plaintext.
    size: int
    sha256: str
    key_id: str
    # What the object store holds (header and frame overhead included).
    stored_size: int


class SealedStream:
    """Seals plaintext chunks of any size into frames as they are iterated; once
    exhausted, ``size`` and ``sha256`` describe the plaintext."""

    def __init__(self, key: DataKey, where: ObjectKey, chunks: AsyncIterable[bytes]) -> None:
        self._aead = AESGCM(key.key)
        self.key_id = key.key_id
        self._base = _file_aad(where, key.key_id)
        self._chunks = chunks
        self._digest = hashlib.sha256()
        self.size = 0

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def _frame(self, index: int, plain: bytes, last: bool) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plain, _frame_aad(self._base, index, last))

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield header(self.key_id)
        buffer = bytearray()
        index = 0
        async for chunk in self._chunks:
            self._digest.update(chunk)
            self.size += len(chunk)
            buffer += chunk
            # A full frame is sealed only once a byte past it arrives: until
            # then it may be the last one.
            while len(buffer) > FRAME_BYTES:
                yield self._frame(index, bytes(buffer[:FRAME_BYTES]), last=False)
                del buffer[:FRAME_BYTES]
                index += 1
        yield self._frame(index, bytes(buffer), last=True)


class FileSealer:
    """Seals and opens one tenant's file bytes (pure: the keys are given)."""

    def __init__(self, keys: TenantKeys) -> None:
        self._keys = keys

    def seal(self, where: ObjectKey, chunks: AsyncIterable[bytes]) -> SealedStream:
        if where.tenant_id != self._keys.tenant_id:
            raise ValueError("sealing another tenant's object")
        return SealedStream(self._keys.current, where, chunks)

    async def open(
        self, where: ObjectKey, sealed: AsyncIterable[bytes], key_id: str | None = None
    ) -> AsyncIterator[bytes]:
        """Plaintext frames; UndecryptableError on anything tampered, cut or misplaced.

        ``key_id``: the one the file's record names; a blob naming another fails."""
        if where.tenant_id != self._keys.tenant_id:
            raise UndecryptableError("opening another tenant's object")
        buffer = bytearray()
        aead: AESGCM | None = None
        base = b""
        index = 0
        ended = False
        iterator = aiter(sealed)
        while not ended:
            try:
                buffer += await anext(iterator)
            except StopAsyncIteration:
                ended = True
            if aead is None:
                if len(buffer) < len(_MAGIC) + 1:
                    if ended:
                        raise UndecryptableError("sealed file too short")
                    continue
                if buffer[: len(_MAGIC)] != _MAGIC:
                    raise UndecryptableError("not a sealed file of a known version")
                end = len(_MAGIC) + 1 + buffer[len(_MAGIC)]
                if len(buffer) < end:
                    if ended:
                        raise UndecryptableError("sealed file too short")
                    continue
                stored_id = bytes(buffer[len(_MAGIC) + 1 : end]).decode("ascii", "replace")
                if key_id is not None and stored_id != key_id:
                    raise UndecryptableError("sealed with another key than its record names")
                data_key = self._keys.by_id.get(stored_id)
                if data_key is None:
                    raise UndecryptableError(f"sealed with key {stored_id!r}, not held")
                aead = AESGCM(data_key.key)
                base = _file_aad(where, stored_id)
                del buffer[:end]
            # Keep the newest full frame back until the stream says whether it is the last.
            while len(buffer) > SEALED_FRAME_BYTES or (ended and buffer):
                size = min(SEALED_FRAME_BYTES, len(buffer))
                last = ended and size == len(buffer)
                frame = bytes(buffer[:size])
                del buffer[:size]
                if len(frame) < NONCE_BYTES + TAG_BYTES:
                    raise UndecryptableError("sealed frame too short")
                try:
                    plain = aead.decrypt(
                        frame[:NONCE_BYTES], frame[NONCE_BYTES:], _frame_aad(base, index, last)
                    )
                except InvalidTag as exc:
                    raise UndecryptableError(
                        f"frame {index} failed its check (tampered, cut or misplaced)"
                    ) from exc
                index += 1
                if plain:
                    yield plain
                if last:
                    return
        raise UndecryptableError("sealed file has no last frame")


class FileBytes:
    """Where file bytes go: sealed with the tenant's current key into a BlobStore."""

    def __init__(self, blobs: BlobStore, vault: KeyVault) -> None:
        self.blobs = blobs
        self._vault = vault

    async def sealer(self, tenant_id: str) -> FileSealer:
        return FileSealer(await self._vault.keys(tenant_id))

    async def store(self, key: ObjectKey, chunks: AsyncIterable[bytes]) -> StoredBlob:
        """Seals and stores the plaintext (replacing ``key``'s object); an
        exception from ``chunks`` (a refusal) leaves nothing new stored."""
        if key.variant == "staging":
            raise ValueError("staging objects hold a direct upload's plaintext")
        sealed = (await self.sealer(key.tenant_id)).seal(key, chunks)
        stored = await self.blobs.put(key, sealed)
        return StoredBlob(sealed.size, sealed.sha256, sealed.key_id, stored)

    async def open(self, key: ObjectKey, key_id: str | None = None) -> AsyncIterator[bytes]:
        """The plaintext; BlobNotFound when absent or misplaced, UndecryptableError
        when tampered with."""
        sealer = await self.sealer(key.tenant_id)
        async for plain in sealer.open(key, self.blobs.get(key), key_id):
            yield plain

    async def seal_staging(self, key: ObjectKey) -> StoredBlob:
        """Seals a direct upload's plaintext ``staging`` object into ``key`` (its
        ``original``), then deletes the staging object."""
        staging = ObjectKey(key.tenant_id, key.conversation_id, key.file_id, "staging")
        stored = await self.store(key, self.blobs.get(staging))
        await self.blobs.delete(staging)
        return stored
