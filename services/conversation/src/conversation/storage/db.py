"""The database handle, its indexes, and tenant-scoped repositories."""

from __future__ import annotations

from dataclasses import dataclass

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from confab_core.mongo import Doc, TenantCollection
from conversation.storage.conversations import ConversationRepo
from conversation.storage.members import MemberRepo
from conversation.storage.messages import MessageRepo
from conversation.storage.outbox import EVENT_RETENTION, OutboxWriter
from conversation.storage.users import UserRepo

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
        # Threads, and search: a multikey index over each message's words works
        # the same on MongoDB and SecantusDB (which has no text index).
        IndexModel(
            [
                ("tenant_id", ASCENDING),
                ("conversation_id", ASCENDING),
                ("thread_root_id", ASCENDING),
                ("seq", ASCENDING),
            ]
        ),
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

    def for_tenant(self, tenant_id: str) -> TenantStore:
        def scoped(name: str) -> TenantCollection:
            return TenantCollection(self.db[name], tenant_id)

        return TenantStore(
            conversations=ConversationRepo(scoped("conversations")),
            members=MemberRepo(scoped("members")),
            messages=MessageRepo(scoped("messages")),
            users=UserRepo(scoped("users")),
            outbox=OutboxWriter(scoped("outbox")),
        )
