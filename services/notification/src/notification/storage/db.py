"""The database handle, its indexes, and tenant-scoped repositories."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from confab_core.mongo import Doc, TenantCollection
from notification.storage.notifications import NotificationRepo

INDEXES: dict[str, list[IndexModel]] = {
    "notifications": [
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
    def __init__(self, client: AsyncMongoClient[Doc], name: str) -> None:
        self.client = client
        self.db: AsyncDatabase[Doc] = client[name]

    async def ensure_indexes(self) -> None:
        for collection, models in INDEXES.items():
            await self.db[collection].create_indexes(models)

    def notifications(self, tenant_id: str) -> NotificationRepo:
        return NotificationRepo(TenantCollection(self.db["notifications"], tenant_id))
