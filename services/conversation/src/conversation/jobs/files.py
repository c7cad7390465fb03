"""Files in the compliance jobs: removing a file takes every variant's bytes, then
its record and the quota it held.

Bytes first: a job that dies between the two finds the record again on its next
step and deletes again (deleting an object that is gone is not an error), so
neither orphaned bytes nor a record naming bytes that are gone survive a crash.
"""

from __future__ import annotations

from collections.abc import Sequence

from conversation.storage.blobs import BlobStore, ObjectKey
from conversation.storage.db import Database
from conversation.storage.files import FileRecord

# Every object a file can have: what was uploaded, its previews, and the
# plaintext of a direct upload not yet sealed.
VARIANTS = ("original", "thumbnail", "preview", "staging")


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
            for variant in VARIANTS:
                await self._blobs.delete(ObjectKey(tenant_id, f.conversation_id, f.id, variant))
        return await self._db.for_tenant(tenant_id).files.purge(files)

    async def remove_conversation(self, tenant_id: str, conversation_id: str, batch: int) -> int:
        """Every object under the conversation's prefix, then its records."""
        await self._blobs.delete_prefix(tenant_id, conversation_id)
        store = self._db.for_tenant(tenant_id)
        removed = 0
        while files := await store.files.of_conversation(conversation_id, batch):
            removed += await store.files.purge(files)
        return removed

    async def remove_tenant(self, tenant_id: str) -> None:
        """Every object of the tenant; the records go with the tenant's collections."""
        await self._blobs.delete_prefix(tenant_id)
