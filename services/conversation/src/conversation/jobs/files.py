"""Files in the compliance jobs: removing a file takes every variant's bytes, then
its record and the quota it held.

Bytes first: a job that dies between the two finds the record again on its next
step and deletes again (deleting an object that is gone is not an error), so
neither orphaned bytes nor a record naming bytes that are gone survive a crash.
"""

from __future__ import annotations

from collections.abc import Sequence

from conversation.storage.blobs import VARIANTS, BlobStore, ObjectKey
from conversation.storage.db import Database, Transaction
from conversation.storage.files import FileRecord


def export_link(conversation_id: str, file_id: str) -> str:
    """Where an authorised reader of an export gets the file's signed URLs."""
    return f"/api/v1/conversations/{conversation_id}/files/{file_id}"


class FileReaper:
    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self._db = db
        self._blobs = blobs

    async def remove(self, tenant_id: str, files: Sequence[FileRecord]) -> int:
        """Deletes the files' bytes, then their records and the quota they held;
        how many records went."""
        if not files:
            return 0
        for f in files:
            # Every object a file can have, not only those its record lists: a
            # staging object or a preview written just before a crash is not.
            for variant in VARIANTS:
                await self._blobs.delete(ObjectKey(tenant_id, f.conversation_id, f.id, variant))
        return await self._forget(tenant_id, files)

    async def _forget(self, tenant_id: str, files: Sequence[FileRecord]) -> int:
        async def body(tx: Transaction) -> int:
            store = tx.for_tenant(tenant_id)
            removed = 0
            for f in files:
                # Only the step that deletes the record gives back what it held.
                held = await store.files.remove(f.id)
                if held is not None:
                    await store.file_usage.release(f.uploader_id, held)
                    removed += 1
            return removed

        return await self._db.transaction(body)

    async def remove_conversation(self, tenant_id: str, conversation_id: str, batch: int) -> int:
        """Every object under the conversation's prefix, then its records."""
        await self._blobs.delete_prefix(tenant_id, conversation_id)
        files = self._db.for_tenant(tenant_id).files
        removed = 0
        while page := await files.of_conversation(conversation_id, "", batch):
            removed += await self._forget(tenant_id, page)
        return removed

    async def remove_tenant(self, tenant_id: str) -> None:
        """Every object of the tenant; the records go with the tenant's collections."""
        await self._blobs.delete_prefix(tenant_id)
