"""The database handle, its indexes, and tenant-scoped repositories."""

from __future__ import annotations

from dataclasses import dataclass

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from confab_core.mongo import Doc, TenantCollection
from conversation.storage.conversations import ConversationRepo
from conversation.storage.members import MemberRepo
from conversation.storage.messages import SEARCH_COLLECTION, MessageRepo, search_entry
from conversation.storage.outbox import EVENT_RETENTION, OutboxWriter
from conversation.storage.users import UserRepo

_OLD_SEARCH_INDEX = "tenant_id_1_search_terms_1_conversation_id_1"

INDEXES: dict[str, list[IndexModel]] = {
    # Every index starts with tenant_id, so a tenant's data is one key range.
    "conversations": [
        IndexModel([("tenant_id", ASCENDING), ("direct_key", ASCENDING)], unique=True),
        IndexModel([("tenant_id", ASCENDING), ("_id", ASCENDING)]),
    ],
    "members": [
        IndexModel(
            [("tenant_id", ASCENDING), ("user_id", ASCENDING), ("conversation_id", ASCENDING)],
            unique=True,
        ),
        IndexModel([("tenant_id", ASCENDING), ("conversation_id", ASCENDING)]),
    ],
    "messages": [
        IndexModel(
            [("tenant_id", ASCENDING), ("conversation_id", ASCENDING), ("seq", ASCENDING)],
            unique=True,
        ),
        IndexModel(
            [
                ("tenant_id", ASCENDING),
                ("conversation_id", ASCENDING),
                ("sender_id", ASCENDING),
                ("client_msg_id", ASCENDING),
            ],
            unique=True,
        ),
        # Threads.
        IndexModel(
            [
                ("tenant_id", ASCENDING),
                ("conversation_id", ASCENDING),
                ("thread_root_id", ASCENDING),
                ("seq", ASCENDING),
            ]
        ),
        # No multikey index here: see MessageRepo (storage/messages.py).
    ],
    # Search: a multikey index over each message's words works the same on
    # MongoDB and SecantusDB (which has no text index).
    SEARCH_COLLECTION: [
        IndexModel(
            [("tenant_id", ASCENDING), ("search_terms", ASCENDING), ("conversation_id", ASCENDING)]
        ),
    ],
    "users": [IndexModel([("tenant_id", ASCENDING), ("user_id", ASCENDING)], unique=True)],
    # The outbox is read across tenants by the relay, in per-conversation order,
    # and per conversation by resuming clients; published events expire.
    "outbox": [
        IndexModel(
            [("published", ASCENDING), ("conversation_id", ASCENDING), ("event_seq", ASCENDING)]
        ),
        IndexModel(
            [("tenant_id", ASCENDING), ("conversation_id", ASCENDING), ("event_seq", ASCENDING)],
            unique=True,
        ),
        IndexModel(
            [("published_at", ASCENDING)],
            expireAfterSeconds=int(EVENT_RETENTION.total_seconds()),
        ),
    ],
    "leases": [IndexModel([("expires_at", DESCENDING)])],
}


@dataclass(frozen=True)
class TenantStore:
    conversations: ConversationRepo
    members: MemberRepo
    messages: MessageRepo
    users: UserRepo
    outbox: OutboxWriter


class Database:
    def __init__(self, client: AsyncMongoClient[Doc], name: str) -> None:
        self.client = client
        self.db: AsyncDatabase[Doc] = client[name]

    async def ensure_indexes(self) -> None:
        for collection, models in INDEXES.items():
            await self.db[collection].create_indexes(models)
        await self._move_search_terms()

    async def _move_search_terms(self) -> None:
        """Once, for a database from before ``message_search``: copy the messages'
        words there, then drop the multikey index from the messages collection."""
        messages = self.db["messages"]
        if _OLD_SEARCH_INDEX not in await messages.index_information():
            return
        search = self.db[SEARCH_COLLECTION]
        batch: list[UpdateOne] = []
        async for doc in messages.find({"search_terms.0": {"$exists": True}}):
            entry = {**search_entry(doc), "tenant_id": doc["tenant_id"]}
            batch.append(UpdateOne({"_id": doc["_id"]}, {"$set": entry}, upsert=True))
            if len(batch) >= 1000:
                await search.bulk_write(batch, ordered=False)
                batch = []
        if batch:
            await search.bulk_write(batch, ordered=False)
        try:
            await messages.drop_index(_OLD_SEARCH_INDEX)
        except OperationFailure:
            # Another instance starting at the same time dropped it first.
            if _OLD_SEARCH_INDEX in await messages.index_information():
                raise

    def for_tenant(self, tenant_id: str) -> TenantStore:
        def scoped(name: str) -> TenantCollection:
            return TenantCollection(self.db[name], tenant_id)

        return TenantStore(
            conversations=ConversationRepo(scoped("conversations")),
            members=MemberRepo(scoped("members")),
            messages=MessageRepo(scoped("messages"), scoped(SEARCH_COLLECTION)),
            users=UserRepo(scoped("users")),
            outbox=OutboxWriter(scoped("outbox")),
        )
