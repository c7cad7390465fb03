"""An upload's bytes as they stream in, judged on the way to storage.

``CheckedBytes`` wraps the client's chunks: it holds back the first
``SNIFF_BYTES`` (or the whole file when shorter), decides the type from them and
checks it against the policy (and an image's header dimensions), then passes
every chunk on while counting the size and hashing. Any refusal raises inside
the storage write, which aborts it; the caller deletes whatever was stored.
Memory stays at one sniff buffer plus one chunk whatever the file's size.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import AsyncIterable, AsyncIterator

from confab_core.errors import InvalidArgument, TooLarge
from confab_core.limits import MAX_FILE_NAME_CHARS
from conversation.handlers import filetypes
from conversation.handlers.filepolicy import FilePolicy

# What one UploadFile chunk may hold (files.proto).
MAX_CHUNK_BYTES = 1024 * 1024
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def file_too_large(limit: int) -> TooLarge:
    return TooLarge(f"the file is larger than {limit} bytes", "file_too_large")


def quota_exceeded() -> TooLarge:
    return TooLarge("the storage quota is used up", "quota_exceeded")


def image_too_large(limit: int) -> InvalidArgument:
    return InvalidArgument(f"the image has more than {limit} pixels", "image_too_large")


def valid_client_id(client_id: str) -> str:
    if not _CLIENT_ID.fullmatch(client_id):
        raise InvalidArgument("client_id: 1 to 64 of [A-Za-z0-9_-]", "invalid_client_id")
    return client_id


def clean_name(name: str) -> str:
    """The client's file name without a path or control characters, at most
    255 characters (the extension kept); ``file`` when nothing is left."""
    base = re.split(r"[/\\]", name)[-1]
    base = "".join(
        ch for ch in unicodedata.normalize("NFC", base) if unicodedata.category(ch)[0] != "C"
    )
    base = base.strip().strip(".").strip() or "file"
    if len(base) > MAX_FILE_NAME_CHARS:
        stem, dot, ext = base.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            base = stem[: MAX_FILE_NAME_CHARS - len(ext) - 1] + "." + ext
        else:
            base = base[:MAX_FILE_NAME_CHARS]
    return base


def judge(head: bytes, name: str, policy: FilePolicy, complete: bool) -> filetypes.Sniffed:
    """The type of a file from its first bytes, refused unless the policy allows
    it (executables and unknown binaries never), and an image's dimensions."""
    sniffed = filetypes.sniff(head, name, complete)
    if not policy.allows(sniffed):
        raise filetypes.type_not_allowed(
            sniffed.content_type if not sniffed.refused else sniffed.kind
        )
    pixels = filetypes.image_pixels(head, sniffed.content_type)
    if pixels is not None and pixels > policy.max_image_pixels:
        raise image_too_large(policy.max_image_pixels)
    return sniffed


class CheckedBytes:
    """Async-iterable over the checked bytes; ``sniffed``, ``size`` and
    ``sha256`` are final once it is exhausted."""

    def __init__(
        self, chunks: AsyncIterable[bytes], name: str, policy: FilePolicy, limit: int
    ) -> None:
        """``limit``: the most bytes allowed (the policy's maximum, or less)."""
        self._chunks = chunks
        self._name = name
        self._policy = policy
        self._limit = limit
        self._hash = hashlib.sha256()
        self.size = 0
        self.sniffed: filetypes.Sniffed | None = None

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def _count(self, chunk: bytes) -> bytes:
        if len(chunk) > MAX_CHUNK_BYTES:
            raise InvalidArgument(f"chunks hold at most {MAX_CHUNK_BYTES} bytes", "chunk_too_large")
        self.size += len(chunk)
        if self.size > self._limit:
            raise file_too_large(self._limit)
        self._hash.update(chunk)
        return chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        head = bytearray()
        source = aiter(self._chunks)
        async for chunk in source:
            head += self._count(chunk)
            if len(head) >= filetypes.SNIFF_BYTES:
                break
        else:
            # The whole file fitted in the sniff buffer.
            if not head:
                raise InvalidArgument("the file is empty", "empty_file")
            self.sniffed = judge(bytes(head), self._name, self._policy, complete=True)
            yield bytes(head)
            return
        self.sniffed = judge(bytes(head), self._name, self._policy, complete=False)
        yield bytes(head)
        async for chunk in source:
            if chunk:
                yield self._count(chunk)
