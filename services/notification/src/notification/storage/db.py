"""The database handle, its indexes, and tenant-scoped repositories."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from confab_core.crypto import KeySource
from confab_core.mongo import Doc, TenantCollection
from notification.storage.notifications import COLLECTION, NotificationRepo

INDEXES: dict[str, list[IndexModel]] = {
    COLLECTION: [
        # The claim: one record per recipient and message, whatever Kafka redelivers.
        IndexModel(
            [("tenant_id", ASCENDING), ("user_id", ASCENDING), ("message_id", ASCENDING)],
            unique=True,
        ),
        IndexModel([("tenant_id", ASCENDING), ("user_id", ASCENDING), ("created_at", DESCENDING)]),
        # An edit or delete rewrites the previews of one message, for all its recipients.
        IndexModel([("tenant_id", ASCENDING), ("message_id", ASCENDING)]),
    ],
}


class Database:
    """``keys``: the tenants' data keys (conversation's KeyService, cached), which
    seal the user content notification stores."""

    def __init__(self, client: AsyncMongoClient[Doc], name: str, keys: KeySource) -> None:
        self.client = client
        self.db: AsyncDatabase[Doc] = client[name]
        self._keys = keys

    async def ensure_indexes(self) -> None:
        for collection, models in INDEXES.items():
            await self.db[collection].create_indexes(models)

    def notifications(self, tenant_id: str) -> NotificationRepo:
        return NotificationRepo(TenantCollection(self.db[COLLECTION], tenant_id), self._keys)
