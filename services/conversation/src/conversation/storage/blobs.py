"""Object storage for file bytes: one protocol, two real backends (docs/files.md#storage).

Keys are never free strings: an ``ObjectKey`` names the tenant, conversation,
file and variant, and renders as ``t/<tenant>/c/<conversation>/f/<file>/<variant>``.
Every stored object also carries the tenant and conversation as metadata, and
every read checks them against the key, so an object copied or renamed under
another tenant's key is not found there.

The backends store opaque bytes; ``FileBytes`` (storage/filebytes.py) seals them
with the tenant's data key before they get here, except a direct upload's
``staging`` object, which the client PUTs in plaintext and the processor seals.

- ``GridFsBlobStore``: GridFS in the MongoDB-wire server (bucket ``blobs``),
  the embedded default: nothing more to run.
- ``S3BlobStore``: any S3-compatible store through aiobotocore, streamed as a
  multipart upload (parts of ``S3_PART_BYTES``) so memory stays flat, and
  presigned PUTs for direct uploads.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal, Protocol, get_args

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError
from bson import Int64, ObjectId
from gridfs.asynchronous import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from confab_core.errors import FailedPrecondition
from confab_core.mongo import Doc
from conversation.settings import ConversationSettings

if TYPE_CHECKING:
    # A dev dependency: the stubs of aiobotocore's S3 client.
    from types_aiobotocore_s3 import S3Client

Variant = Literal["original", "thumbnail", "preview", "staging"]
VARIANTS: tuple[Variant, ...] = get_args(Variant)

BUCKET = "blobs"
GRIDFS_FILES = f"{BUCKET}.files"
GRIDFS_CHUNKS = f"{BUCKET}.chunks"
# GridFS's default chunk size; a few chunks per insert keeps memory flat.
GRIDFS_CHUNK_BYTES = 255 * 1024
_GRIDFS_BATCH = 4
# GridFS's own indexes, and one for delete_prefix.
INDEXES: dict[str, list[IndexModel]] = {
    GRIDFS_FILES: [
        IndexModel(
            [
                ("metadata.tenant_id", ASCENDING),
                ("metadata.conversation_id", ASCENDING),
                ("_id", ASCENDING),
            ]
        ),
        IndexModel([("filename", ASCENDING), ("uploadDate", DESCENDING)]),
    ],
    GRIDFS_CHUNKS: [
        IndexModel([("files_id", ASCENDING), ("n", ASCENDING)], unique=True),
    ],
}

# S3 parts: at least 5 MiB except the last (the S3 rule); 8 MiB keeps a
# 100 MiB upload at 13 parts and one part's buffer in memory.
S3_PART_BYTES = 8 * 1024 * 1024
READ_BYTES = 256 * 1024
# One DeleteObjects call takes at most this many keys.
_S3_DELETE_BATCH = 1000

_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")


class BlobNotFound(Exception):
    """No object under the key, or one whose metadata names another tenant or
    conversation (which must look the same from outside)."""


class DirectUploadUnavailable(FailedPrecondition):
    """Presigned PUTs need an S3 backend."""

    def __init__(self) -> None:
        super().__init__("direct uploads need the S3 storage backend", "direct_upload_unavailable")


def _checked_id(what: str, value: str) -> str:
    if not _ID.fullmatch(value) or value in (".", ".."):
        raise ValueError(f"{what} {value!r} cannot be part of an object key")
    return value


@dataclass(frozen=True, slots=True)
class ObjectKey:
    tenant_id: str
    conversation_id: str
    file_id: str
    variant: Variant

    def __post_init__(self) -> None:
        _checked_id("tenant id", self.tenant_id)
        _checked_id("conversation id", self.conversation_id)
        _checked_id("file id", self.file_id)
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}")

    def render(self) -> str:
        return f"{prefix(self.tenant_id, self.conversation_id)}f/{self.file_id}/{self.variant}"

    def metadata(self) -> dict[str, str]:
        """What the stored object carries, and every read checks."""
        return {
            "tenant_id": self.tenant_id,
            "conversation_id": self.conversation_id,
            "file_id": self.file_id,
            "variant": self.variant,
        }

    def matches(self, stored: dict[str, str] | Doc | None) -> bool:
        if not stored:
            return False
        return (
            stored.get("tenant_id") == self.tenant_id
            and stored.get("conversation_id") == self.conversation_id
        )


def prefix(tenant_id: str, conversation_id: str | None = None) -> str:
    """The key prefix of a tenant's (or one of its conversations') objects."""
    head = f"t/{_checked_id('tenant id', tenant_id)}/"
    if conversation_id is None:
        return head
    return f"{head}c/{_checked_id('conversation id', conversation_id)}/"


class BlobStore(Protocol):
    # Whether presign_put works (S3): a GridFS deployment has no direct uploads.
    direct_upload: bool
    backend: str

    async def put(self, key: ObjectKey, chunks: AsyncIterable[bytes]) -> int:
        """Stores the bytes under ``key`` (replacing what was there); how many.

        An exception from ``chunks`` (a policy refusal) or the store aborts the
        write: nothing new is left stored, and what was there before stays."""
        ...

    def get(self, key: ObjectKey) -> AsyncIterator[bytes]:
        """The stored bytes; BlobNotFound (on first iteration) when absent or misplaced."""
        ...

    async def size(self, key: ObjectKey) -> int | None:
        """The stored object's size; None when absent or misplaced."""
        ...

    async def delete(self, key: ObjectKey) -> None:
        """Deletes the object; nothing to delete is fine."""
        ...

    async def delete_prefix(self, tenant_id: str, conversation_id: str | None = None) -> int:
        """Deletes every object of the tenant (or of one of its conversations); how many."""
        ...

    async def presign_put(
        self, key: ObjectKey, size: int, expires: timedelta
    ) -> tuple[str, dict[str, str]]:
        """A URL the client PUTs exactly ``size`` bytes to, with these headers."""
        ...

    async def close(self) -> None: ...


class GridFsBlobStore:
    """GridFS (bucket ``blobs``): filename is the rendered key, metadata the key's parts.

    Writes follow the GridFS layout (chunks, then the files document that makes
    them visible) a few chunks at a time: pymongo's upload stream buffers 32 MB
    before writing, which is not flat memory. Deletes go through pymongo's
    ``AsyncGridFSBucket``. A put writes a new GridFS file, then deletes older
    ones of the same name: a retried put replaces, and a reader meanwhile sees
    the old or the new bytes, never a mix."""

    direct_upload = False
    backend = "gridfs"

    def __init__(self, db: AsyncDatabase[Doc], *, chunk_bytes: int = GRIDFS_CHUNK_BYTES) -> None:
        self._bucket = AsyncGridFSBucket(db, bucket_name=BUCKET)
        self._files = db[GRIDFS_FILES]
        self._chunks = db[GRIDFS_CHUNKS]
        self._chunk_bytes = chunk_bytes

    async def put(self, key: ObjectKey, chunks: AsyncIterable[bytes]) -> int:
        name = key.render()
        file_id = ObjectId()
        size = self._chunk_bytes
        buffer = bytearray()
        batch: list[Doc] = []
        number = 0
        total = 0

        async def flush(final: bool) -> None:
            nonlocal number
            while len(buffer) >= size or (final and buffer):
                batch.append({"files_id": file_id, "n": number, "data": bytes(buffer[:size])})
                del buffer[:size]
                number += 1
                if len(batch) >= _GRIDFS_BATCH or final:
                    await self._chunks.insert_many(batch)
                    batch.clear()
            if final and batch:
                await self._chunks.insert_many(batch)
                batch.clear()

        try:
            async for chunk in chunks:
                buffer += chunk
                total += len(chunk)
                await flush(final=False)
            await flush(final=True)
            uploaded = datetime.now(UTC)
            await self._files.insert_one(
                {
                    "_id": file_id,
                    "length": Int64(total),
                    "chunkSize": size,
                    "uploadDate": uploaded,
                    "filename": name,
                    "metadata": key.metadata(),
                }
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await self._chunks.delete_many({"files_id": file_id})
            raise
        # Older versions only: of two puts racing, the one finishing last stays.
        async for old in self._files.find(
            {"filename": name, "_id": {"$ne": file_id}, "uploadDate": {"$lte": uploaded}},
            {"_id": 1},
        ):
            with contextlib.suppress(NoFile):
                await self._bucket.delete(old["_id"])
        return total

    async def _newest(self, key: ObjectKey) -> Doc | None:
        doc = await self._files.find_one(
            {"filename": key.render()}, sort=[("uploadDate", DESCENDING), ("_id", DESCENDING)]
        )
        if doc is None or not key.matches(doc.get("metadata")):
            return None
        return doc

    async def get(self, key: ObjectKey) -> AsyncIterator[bytes]:
        doc = await self._newest(key)
        if doc is None:
            raise BlobNotFound(key.render())
        expected = 0
        # Small batches: a cursor's default batch grows to 16 MB.
        cursor = self._chunks.find(
            {"files_id": doc["_id"]}, sort=[("n", ASCENDING)], batch_size=_GRIDFS_BATCH
        )
        async for chunk in cursor:
            if chunk["n"] != expected:
                raise BlobNotFound(f"{key.render()}: chunk {expected} missing")
            expected += 1
            yield bytes(chunk["data"])

    async def size(self, key: ObjectKey) -> int | None:
        doc = await self._newest(key)
        return None if doc is None else int(doc["length"])

    async def delete(self, key: ObjectKey) -> None:
        async for doc in self._files.find({"filename": key.render()}, {"_id": 1}):
            with contextlib.suppress(NoFile):
                await self._bucket.delete(doc["_id"])

    async def delete_prefix(self, tenant_id: str, conversation_id: str | None = None) -> int:
        flt: Doc = {"metadata.tenant_id": _checked_id("tenant id", tenant_id)}
        if conversation_id is not None:
            flt["metadata.conversation_id"] = _checked_id("conversation id", conversation_id)
        deleted = 0
        async for doc in self._files.find(flt, {"_id": 1}):
            with contextlib.suppress(NoFile):
                await self._bucket.delete(doc["_id"])
                deleted += 1
        return deleted

    async def presign_put(
        self, key: ObjectKey, size: int, expires: timedelta
    ) -> tuple[str, dict[str, str]]:
        raise DirectUploadUnavailable()

    async def close(self) -> None:
        return None


def _s3_metadata(key: ObjectKey) -> dict[str, str]:
    # S3 metadata names are lowercase and travel as x-amz-meta-<name> headers.
    return {
        "tenant": key.tenant_id,
        "conversation": key.conversation_id,
        "file": key.file_id,
        "variant": key.variant,
    }


def _s3_matches(key: ObjectKey, metadata: dict[str, str]) -> bool:
    return metadata.get("tenant") == key.tenant_id and (
        metadata.get("conversation") == key.conversation_id
    )


def _not_found(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error.get("Code") in ("NoSuchKey", "404", "NotFound") or status == 404


class S3BlobStore:
    """An S3-compatible bucket through aiobotocore.

    ``client`` does the I/O; ``presigner`` (a client configured with the public
    endpoint, often the same one) only signs URLs, which is local computation.
    """

    direct_upload = True
    backend = "s3"

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        presigner: S3Client | None = None,
        part_bytes: int = S3_PART_BYTES,
        closer: AsyncExitStack | None = None,
    ) -> None:
        self._client = client
        self._presigner = presigner or client
        self._bucket = bucket
        self._part_bytes = part_bytes
        self._closer = closer

    @classmethod
    async def connect(
        cls,
        *,
        endpoint_url: str | None,
        public_endpoint_url: str | None,
        bucket: str,
        region: str,
        access_key_id: str | None,
        secret_access_key: str | None,
    ) -> S3BlobStore:
        """Opens the clients; ``close`` ends them (the service's lifetime)."""
        session = get_session()
        # Path-style: S3-compatible servers on a plain host:port have no
        # per-bucket DNS names.
        config = AioConfig(
            s3={"addressing_style": "path"},
            signature_version="s3v4",
            retries={"max_attempts": 3, "mode": "standard"},
        )
        credentials = {}
        if access_key_id and secret_access_key:
            credentials = {
                "aws_access_key_id": access_key_id,
                "aws_secret_access_key": secret_access_key,
            }
        stack = AsyncExitStack()
        try:
            client = await stack.enter_async_context(
                session.create_client(
                    "s3",
                    endpoint_url=endpoint_url,
                    region_name=region,
                    config=config,
                    **credentials,
                )
            )
            presigner = client
            public = public_endpoint_url or endpoint_url
            if public != endpoint_url:
                presigner = await stack.enter_async_context(
                    session.create_client(
                        "s3",
                        endpoint_url=public,
                        region_name=region,
                        config=config,
                        **credentials,
                    )
                )
        except BaseException:
            await stack.aclose()
            raise
        return cls(client, bucket, presigner=presigner, closer=stack)

    async def put(self, key: ObjectKey, chunks: AsyncIterable[bytes]) -> int:
        name = key.render()
        buffer = bytearray()
        total = 0
        upload_id: str | None = None
        parts: list[dict[str, object]] = []
        try:
            async for chunk in chunks:
                buffer += chunk
                total += len(chunk)
                while len(buffer) >= self._part_bytes:
                    if upload_id is None:
                        created = await self._client.create_multipart_upload(
                            Bucket=self._bucket, Key=name, Metadata=_s3_metadata(key)
                        )
                        upload_id = created["UploadId"]
                    part = bytes(buffer[: self._part_bytes])
                    del buffer[: self._part_bytes]
                    number = len(parts) + 1
                    sent = await self._client.upload_part(
                        Bucket=self._bucket,
                        Key=name,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=part,
                    )
                    del part
                    parts.append({"PartNumber": number, "ETag": sent["ETag"]})
            if upload_id is None:
                # Smaller than one part: one PUT.
                await self._client.put_object(
                    Bucket=self._bucket, Key=name, Body=bytes(buffer), Metadata=_s3_metadata(key)
                )
                return total
            if buffer:
                number = len(parts) + 1
                sent = await self._client.upload_part(
                    Bucket=self._bucket,
                    Key=name,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=bytes(buffer),
                )
                parts.append({"PartNumber": number, "ETag": sent["ETag"]})
            await self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=name,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
            )
        except BaseException:
            if upload_id is not None:
                with contextlib.suppress(Exception):
                    await self._client.abort_multipart_upload(
                        Bucket=self._bucket, Key=name, UploadId=upload_id
                    )
            raise
        return total

    async def get(self, key: ObjectKey) -> AsyncIterator[bytes]:
        try:
            got = await self._client.get_object(Bucket=self._bucket, Key=key.render())
        except ClientError as exc:
            if _not_found(exc):
                raise BlobNotFound(key.render()) from exc
            raise
        async with got["Body"] as body:
            if not _s3_matches(key, got.get("Metadata", {})):
                raise BlobNotFound(key.render())
            while chunk := await body.read(READ_BYTES):
                yield chunk

    async def size(self, key: ObjectKey) -> int | None:
        try:
            head = await self._client.head_object(Bucket=self._bucket, Key=key.render())
        except ClientError as exc:
            if _not_found(exc):
                return None
            raise
        if not _s3_matches(key, head.get("Metadata", {})):
            return None
        return int(head["ContentLength"])

    async def delete(self, key: ObjectKey) -> None:
        await self._client.delete_object(Bucket=self._bucket, Key=key.render())

    async def delete_prefix(self, tenant_id: str, conversation_id: str | None = None) -> int:
        paginator = self._client.get_paginator("list_objects_v2")
        deleted = 0
        async for page in paginator.paginate(
            Bucket=self._bucket, Prefix=prefix(tenant_id, conversation_id)
        ):
            names = [obj["Key"] for obj in page.get("Contents", [])]
            for start in range(0, len(names), _S3_DELETE_BATCH):
                batch = names[start : start + _S3_DELETE_BATCH]
                await self._client.delete_objects(
                    Bucket=self._bucket,
                    Delete={"Objects": [{"Key": n} for n in batch], "Quiet": True},
                )
                deleted += len(batch)
        return deleted

    async def presign_put(
        self, key: ObjectKey, size: int, expires: timedelta
    ) -> tuple[str, dict[str, str]]:
        if size < 0:
            raise ValueError("a size is at least 0")
        metadata = _s3_metadata(key)
        url = await self._presigner.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": self._bucket,
                "Key": key.render(),
                "ContentLength": size,
                "Metadata": metadata,
            },
            ExpiresIn=int(expires.total_seconds()),
        )
        headers = {"Content-Length": str(size)}
        headers.update({f"x-amz-meta-{k}": v for k, v in metadata.items()})
        return url, headers

    async def close(self) -> None:
        if self._closer is not None:
            await self._closer.aclose()


async def build_blob_store(settings: ConversationSettings, db: AsyncDatabase[Doc]) -> BlobStore:
    """The backend settings name; the caller closes it with the service."""
    if settings.files_backend == "s3":
        return await S3BlobStore.connect(
            endpoint_url=settings.s3_endpoint_url,
            public_endpoint_url=settings.s3_public_endpoint_url,
            bucket=settings.s3_bucket,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
        )
    return GridFsBlobStore(db)
