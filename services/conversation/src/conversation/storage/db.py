"""The database handle, its indexes, and tenant-scoped repositories."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from prometheus_client import Counter
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from confab_core.clock import Clock, SystemClock
from confab_core.crypto import KeyProvider, KeysShreddedError, blind_tokens
from confab_core.mongo import Doc, TenantCollection
from conversation.storage.agents import TENANT_SETTINGS_COLLECTION, AgentRepo
from conversation.storage.analytics import (
    ANALYTICS_CURSORS,
    ANALYTICS_DAYS,
    ANALYTICS_TICKETS,
    AnalyticsRepo,
)
from conversation.storage.assignment import (
    ASSIGNMENT_AGENTS_COLLECTION,
    ASSIGNMENT_SETTINGS_COLLECTION,
    AssignmentRepo,
)
from conversation.storage.audit import AUDIT_COLLECTION, HEADS_COLLECTION, AuditRepo
from conversation.storage.blobs import INDEXES as BLOB_INDEXES
from conversation.storage.botdata import (
    CALL_RETENTION,
    MEMORY_COLLECTION,
    SUMMARY_COLLECTION,
    USAGE_CALLS_COLLECTION,
    USAGE_COLLECTION,
    BotMemoryRepo,
    UsageRepo,
)
from conversation.storage.canned import (
    CANNED_COLLECTION,
    PROFILE_COLLECTION,
    CannedReplyRepo,
    SupportProfileRepo,
)
from conversation.storage.conversations import ConversationRepo
from conversation.storage.escalations import EscalationReader
from conversation.storage.files import FILES_COLLECTION, FileRepo, FileUsageRepo, FileWorkQueue
from conversation.storage.files import INDEXES as FILE_INDEXES
from conversation.storage.files import USAGE_COLLECTION as FILE_USAGE_COLLECTION
from conversation.storage.jobs import ChunkRepo, JobQueue, JobRepo
from conversation.storage.keys import JOBS_COLLECTION, KEYS_COLLECTION, KeyJobRepo, KeyVault
from conversation.storage.leases import LeaseRepo
from conversation.storage.members import MemberRepo
from conversation.storage.messages import SEARCH_COLLECTION, MessageRepo, _search_entry
from conversation.storage.moderation import (
    QUEUE_COLLECTION,
    SANCTIONS_COLLECTION,
    ModerationQueueRepo,
    SanctionRepo,
)
from conversation.storage.outbox import (
    EVENT_RETENTION,
    OutboxReader,
    OutboxWriter,
    carried_message_id,
    opened_payload,
)
from conversation.storage.policies import (
    PII_COUNT_COLLECTION,
    POLICY_COLLECTION,
    PiiCountRepo,
    PolicyRepo,
)
from conversation.storage.role_permissions import RolePermissionRepo
from conversation.storage.settings import SETTINGS_DOC_COLLECTION, SettingsRepo
from conversation.storage.sla import INDEXES as SLA_INDEXES
from conversation.storage.sla import (
    POLICY_COLLECTION as SLA_POLICY_COLLECTION,
)
from conversation.storage.sla import (
    STATE_COLLECTION as SLA_STATE_COLLECTION,
)
from conversation.storage.sla import (
    TIMER_COLLECTION as SLA_TIMER_COLLECTION,
)
from conversation.storage.sla import SlaPolicyRepo, SlaTimerQueue, TicketSlaRepo
from conversation.storage.tickets import (
    ESCALATIONS_COLLECTION,
    SETTINGS_COLLECTION,
    TEAMS_COLLECTION,
    TICKETS_COLLECTION,
    EscalationRepo,
    SupportConfigRepo,
    TicketRepo,
)
from conversation.storage.users import UserRepo

T = TypeVar("T")

TXN_RETRIES = Counter(
    "confab_conversation_transaction_retries_total",
    "Transactions run again after a transient error (a write conflict, most often)",
)

_OLD_SEARCH_INDEX = "tenant_id_1_search_terms_1_conversation_id_1"
_MESSAGE_ID_INDEX = "tenant_id_1_conversation_id_1_message_id_1"

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
        # A user's messages, for their export and erasure.
        IndexModel([("tenant_id", ASCENDING), ("sender_id", ASCENDING), ("_id", ASCENDING)]),
        # No multikey index here: see MessageRepo (storage/messages.py).
    ],
    # Search: a multikey index over each message's words works the same on
    # MongoDB and SecantusDB (which has no text index).
    SEARCH_COLLECTION: [
        IndexModel(
            [("tenant_id", ASCENDING), ("search_terms", ASCENDING), ("conversation_id", ASCENDING)]
        ),
    ],
    "users": [
        IndexModel([("tenant_id", ASCENDING), ("user_id", ASCENDING)], unique=True),
        # The agent roster (auto-assignment).
        IndexModel([("tenant_id", ASCENDING), ("roles", ASCENDING), ("user_id", ASCENDING)]),
    ],
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
        # Every retained copy of a message's content, for its edit or delete.
        IndexModel(
            [("tenant_id", ASCENDING), ("conversation_id", ASCENDING), ("message_id", ASCENDING)]
        ),
        IndexModel(
            [("published_at", ASCENDING)],
            expireAfterSeconds=int(EVENT_RETENTION.total_seconds()),
        ),
    ],
    "leases": [IndexModel([("expires_at", DESCENDING)])],
    # Runners look for unfinished jobs of any tenant; requesters read theirs by id.
    "jobs": [
        IndexModel([("status", ASCENDING), ("lease_expires_at", ASCENDING)]),
        IndexModel([("tenant_id", ASCENDING), ("_id", ASCENDING)]),
    ],
    "export_chunks": [
        IndexModel([("tenant_id", ASCENDING), ("job_id", ASCENDING), ("part", ASCENDING)]),
    ],
    # One document per tenant, keyed by the tenant id.
    POLICY_COLLECTION: [IndexModel([("tenant_id", ASCENDING)], unique=True)],
    PII_COUNT_COLLECTION: [IndexModel([("tenant_id", ASCENDING)], unique=True)],
    # One document per tenant (keyed by the tenant id); the sweep finds the
    # tenants with auto-assignment on.
    ASSIGNMENT_SETTINGS_COLLECTION: [
        IndexModel([("tenant_id", ASCENDING)], unique=True),
        IndexModel([("enabled", ASCENDING), ("tenant_id", ASCENDING)]),
        IndexModel([("dirty", ASCENDING), ("tenant_id", ASCENDING)]),
    ],
    ASSIGNMENT_AGENTS_COLLECTION: [
        IndexModel([("tenant_id", ASCENDING), ("user_id", ASCENDING)], unique=True)
    ],
    # The chain in order (verify, paging), and the query API's filters.
    AUDIT_COLLECTION: [
        IndexModel([("tenant_id", ASCENDING), ("seq", ASCENDING)], unique=True),
        IndexModel([("tenant_id", ASCENDING), ("actor_id", ASCENDING), ("seq", DESCENDING)]),
        IndexModel([("tenant_id", ASCENDING), ("action", ASCENDING), ("seq", DESCENDING)]),
        IndexModel(
            [
                ("tenant_id", ASCENDING),
                ("target_kind", ASCENDING),
                ("target_id", ASCENDING),
                ("seq", DESCENDING),
            ]
        ),
        IndexModel([("tenant_id", ASCENDING), ("at", ASCENDING)]),
    ],
    QUEUE_COLLECTION: [
        IndexModel(
            [
                ("tenant_id", ASCENDING),
                ("status", ASCENDING),
                ("created_at", ASCENDING),
                ("_id", ASCENDING),
            ]
        ),
    ],
    SANCTIONS_COLLECTION: [
        IndexModel(
            [("tenant_id", ASCENDING), ("conversation_id", ASCENDING), ("created_at", DESCENDING)]
        ),
        IndexModel([("tenant_id", ASCENDING), ("user_id", ASCENDING)]),
    ],
    # One document per tenant: the unique index makes concurrent first uses agree.
    KEYS_COLLECTION: [IndexModel([("tenant_id", ASCENDING)], unique=True)],
    # Shortcodes unique per scope and owner (a shared reply's owner is "").
    CANNED_COLLECTION: [
        IndexModel(
            [("tenant_id", ASCENDING), ("owner_id", ASCENDING), ("shortcode", ASCENDING)],
            unique=True,
        ),
    ],
    PROFILE_COLLECTION: [IndexModel([("tenant_id", ASCENDING)], unique=True)],
    # Read across tenants by the re-encrypt runner.
    JOBS_COLLECTION: [
        IndexModel([("state", ASCENDING), ("not_before", ASCENDING)]),
        IndexModel([("tenant_id", ASCENDING), ("created_at", ASCENDING)]),
    ],
    **SLA_INDEXES,
    **FILE_INDEXES,
    **BLOB_INDEXES,
    # One ticket per support conversation; the queue's order; a requester's tickets.
    TICKETS_COLLECTION: [
        IndexModel([("tenant_id", ASCENDING), ("conversation_id", ASCENDING)], unique=True),
        IndexModel(
            [
                ("tenant_id", ASCENDING),
                ("status", ASCENDING),
                ("priority", DESCENDING),
                ("queue_key", ASCENDING),
                ("_id", ASCENDING),
            ]
        ),
        IndexModel(
            [("tenant_id", ASCENDING), ("requester_id", ASCENDING), ("created_at", DESCENDING)]
        ),
        IndexModel([("tenant_id", ASCENDING), ("assignee_id", ASCENDING), ("status", ASCENDING)]),
    ],
    # The tenant's side, and the platform reader's order across tenants.
    ESCALATIONS_COLLECTION: [
        IndexModel([("tenant_id", ASCENDING), ("conversation_id", ASCENDING)]),
        IndexModel([("open", ASCENDING), ("priority", DESCENDING), ("escalated_at", ASCENDING)]),
    ],
    TEAMS_COLLECTION: [IndexModel([("tenant_id", ASCENDING), ("_id", ASCENDING)])],
    SETTINGS_COLLECTION: [IndexModel([("tenant_id", ASCENDING)], unique=True)],
    SETTINGS_DOC_COLLECTION: [IndexModel([("tenant_id", ASCENDING)], unique=True)],
    # Analytics: a range of one dimension's days; a ticket's and a
    # conversation's fold state by id.
    ANALYTICS_DAYS: [
        IndexModel(
            [("tenant_id", ASCENDING), ("dim", ASCENDING), ("day", ASCENDING), ("key", ASCENDING)],
            unique=True,
        ),
    ],
    ANALYTICS_TICKETS: [
        IndexModel([("tenant_id", ASCENDING), ("ticket_id", ASCENDING)], unique=True),
        IndexModel([("tenant_id", ASCENDING), ("conversation_id", ASCENDING)]),
    ],
    ANALYTICS_CURSORS: [
        IndexModel([("tenant_id", ASCENDING), ("conversation_id", ASCENDING)], unique=True),
    ],
    # The bot's data: _ids are derived from what a document is about (see
    # storage/botdata.py); these serve deletion and export by conversation.
    MEMORY_COLLECTION: [
        IndexModel([("tenant_id", ASCENDING), ("conversation_id", ASCENDING)]),
        IndexModel([("tenant_id", ASCENDING), ("_id", ASCENDING)]),
    ],
    SUMMARY_COLLECTION: [
        IndexModel([("tenant_id", ASCENDING), ("conversation_id", ASCENDING)]),
        IndexModel([("tenant_id", ASCENDING), ("_id", ASCENDING)]),
    ],
    USAGE_COLLECTION: [
        IndexModel([("tenant_id", ASCENDING), ("month", ASCENDING), ("agent_id", ASCENDING)]),
    ],
    USAGE_CALLS_COLLECTION: [
        IndexModel([("tenant_id", ASCENDING), ("_id", ASCENDING)]),
        IndexModel([("at", ASCENDING)], expireAfterSeconds=int(CALL_RETENTION.total_seconds())),
    ],
}
DEFAULT_KEY_CACHE_TTL = timedelta(minutes=5)
DEFAULT_ROTATION_DELAY = timedelta(minutes=10)

# What a tenant erasure deletes, in this order: the content first, the
# conversations that index it last. Its own job record stays (see TenantPurge).
TENANT_COLLECTIONS = (
    SEARCH_COLLECTION,
    "messages",
    # The bytes are not here: tenant erasure deletes them through
    # BlobStore.delete_prefix (and the shredded key leaves any copy unreadable).
    FILES_COLLECTION,
    FILE_USAGE_COLLECTION,
    "outbox",
    "members",
    "users",
    "export_chunks",
    QUEUE_COLLECTION,
    SANCTIONS_COLLECTION,
    AUDIT_COLLECTION,
    HEADS_COLLECTION,
    POLICY_COLLECTION,
    PII_COUNT_COLLECTION,
    ASSIGNMENT_SETTINGS_COLLECTION,
    ASSIGNMENT_AGENTS_COLLECTION,
    CANNED_COLLECTION,
    PROFILE_COLLECTION,
    JOBS_COLLECTION,
    SLA_TIMER_COLLECTION,
    SLA_STATE_COLLECTION,
    SLA_POLICY_COLLECTION,
    ESCALATIONS_COLLECTION,
    TICKETS_COLLECTION,
    TEAMS_COLLECTION,
    SETTINGS_COLLECTION,
    TENANT_SETTINGS_COLLECTION,
    SETTINGS_DOC_COLLECTION,
    ANALYTICS_DAYS,
    ANALYTICS_TICKETS,
    ANALYTICS_CURSORS,
    MEMORY_COLLECTION,
    SUMMARY_COLLECTION,
    USAGE_COLLECTION,
    USAGE_CALLS_COLLECTION,
    "conversations",
)


@dataclass(frozen=True)
class TenantStore:
    conversations: ConversationRepo
    members: MemberRepo
    messages: MessageRepo
    users: UserRepo
    outbox: OutboxWriter
    audit: AuditRepo
    moderation: ModerationQueueRepo
    sanctions: SanctionRepo
    sla: TicketSlaRepo
    sla_policy: SlaPolicyRepo
    assignment: AssignmentRepo
    canned: CannedReplyRepo
    support_profile: SupportProfileRepo
    tickets: TicketRepo
    escalations: EscalationRepo
    support: SupportConfigRepo
    analytics: AnalyticsRepo
    bot_memory: BotMemoryRepo
    usage: UsageRepo
    agents: AgentRepo
    settings: SettingsRepo
    files: FileRepo
    file_usage: FileUsageRepo


class TenantPurge:
    """Deletes every document of one tenant, a batch at a time (tenant erasure)."""

    def __init__(self, db: AsyncDatabase[Doc], tenant_id: str) -> None:
        self._db = db
        self.tenant_id = tenant_id

    async def delete_batch(self, collection: str, limit: int) -> int:
        """Deletes up to ``limit`` of the tenant's documents in ``collection``; how many."""
        if collection not in TENANT_COLLECTIONS:
            raise ValueError(f"{collection} is not tenant data")
        col = TenantCollection(self._db[collection], self.tenant_id)
        ids = [doc["_id"] async for doc in col.find({}, projection={"_id": 1}, limit=limit)]
        if not ids:
            return 0
        return (await col.delete_many({"_id": {"$in": ids}})).deleted_count

    async def count(self, collection: str) -> int:
        return await TenantCollection(self._db[collection], self.tenant_id).count({})


class Transaction:
    """One transaction's view of the database: every store it hands out is bound
    to the transaction's session, and to one tenant."""

    def __init__(self, db: Database, session: AsyncClientSession) -> None:
        self._db = db
        self._session = session

    def for_tenant(self, tenant_id: str) -> TenantStore:
        return self._db.for_tenant(tenant_id, self._session)


class Database:
    """The one owner of the MongoDB handle; nothing outside storage reaches past it.

    ``client`` and ``db`` stay readable for tests that inspect what was stored.
    """

    def __init__(
        self,
        client: AsyncMongoClient[Doc],
        name: str,
        key_provider: KeyProvider,
        clock: Clock | None = None,
        *,
        key_cache_ttl: timedelta = DEFAULT_KEY_CACHE_TTL,
        rotation_delay: timedelta = DEFAULT_ROTATION_DELAY,
    ) -> None:
        self.client = client
        self.db: AsyncDatabase[Doc] = client[name]
        self._clock = clock or SystemClock()
        # Every sealed field of every tenant goes through this one vault (and its cache).
        self.keys = KeyVault(
            self.db,
            key_provider,
            self._clock,
            cache_ttl=key_cache_ttl,
            rotation_delay=rotation_delay,
        )

    async def transaction(self, body: Callable[[Transaction], Awaitable[T]]) -> T:
        """Runs ``body`` in one transaction and commits it; runs it again on a
        transient error (a write conflict, most often), so ``body`` must only write
        through the stores it is given."""
        attempts = 0

        async def attempt(session: AsyncClientSession) -> T:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                TXN_RETRIES.inc()
            return await body(Transaction(self, session))

        async with self.client.start_session() as session:
            return await session.with_transaction(attempt)

    def outbox_reader(self) -> OutboxReader:
        return OutboxReader(self.db["outbox"])

    def escalations(self) -> EscalationReader:
        return EscalationReader(self.db[ESCALATIONS_COLLECTION])

    def policies(self, tenant_id: str) -> PolicyRepo:
        return PolicyRepo(TenantCollection(self.db[POLICY_COLLECTION], tenant_id))

    def role_permissions(self, tenant_id: str) -> RolePermissionRepo:
        return RolePermissionRepo(TenantCollection(self.db[TENANT_SETTINGS_COLLECTION], tenant_id))

    def pii_counts(self, tenant_id: str) -> PiiCountRepo:
        return PiiCountRepo(TenantCollection(self.db[PII_COUNT_COLLECTION], tenant_id))

    def sla_timers(self) -> SlaTimerQueue:
        return SlaTimerQueue(self.db[SLA_TIMER_COLLECTION])

    def files(self, tenant_id: str) -> FileRepo:
        return FileRepo(
            TenantCollection(self.db[FILES_COLLECTION], tenant_id), self.keys.for_tenant(tenant_id)
        )

    def file_usage(self, tenant_id: str) -> FileUsageRepo:
        return FileUsageRepo(TenantCollection(self.db[FILE_USAGE_COLLECTION], tenant_id))

    def file_queue(self) -> FileWorkQueue:
        return FileWorkQueue(self.db[FILES_COLLECTION], self.keys)

    def leases(self) -> LeaseRepo:
        return LeaseRepo(self.db["leases"])

    def job_queue(self) -> JobQueue:
        return JobQueue(self.db["jobs"])

    def jobs(self, tenant_id: str) -> JobRepo:
        return JobRepo(TenantCollection(self.db["jobs"], tenant_id))

    def chunks(self, tenant_id: str) -> ChunkRepo:
        return ChunkRepo(
            TenantCollection(self.db["export_chunks"], tenant_id), self.keys.for_tenant(tenant_id)
        )

    def purge(self, tenant_id: str) -> TenantPurge:
        return TenantPurge(self.db, tenant_id)

    async def tenant_ids(self, after: str, limit: int) -> list[str]:
        """Tenants that have conversations, by id past ``after`` (the retention
        scheduler's walk; it re-scopes to each tenant before touching anything)."""
        ids = await self.db["conversations"].distinct("tenant_id", {"tenant_id": {"$gt": after}})
        return sorted(str(t) for t in ids)[:limit]

    async def assignment_tenant_ids(
        self, after: str, limit: int, *, dirty_only: bool = False
    ) -> list[str]:
        """Tenants with auto-assignment on (only those another replica asked to
        run, with ``dirty_only``), by id past ``after``: the assigner's walks,
        which re-scope to each tenant before reading anything else."""
        flt: Doc = {"enabled": True, "tenant_id": {"$gt": after}}
        if dirty_only:
            flt["dirty"] = True
        cursor = self.db[ASSIGNMENT_SETTINGS_COLLECTION].find(
            flt,
            projection={"tenant_id": 1},
            sort=[("tenant_id", ASCENDING)],
            limit=limit,
        )
        return [str(doc["tenant_id"]) async for doc in cursor]

    def key_jobs(self) -> KeyJobRepo:
        return KeyJobRepo(self.db, self.keys, self._clock)

    async def ensure_indexes(self) -> None:
        tagged = _MESSAGE_ID_INDEX in await self.db["outbox"].index_information()
        for collection, models in INDEXES.items():
            await self.db[collection].create_indexes(models)
        await self._move_search_terms()
        if not tagged:
            await self._tag_message_events()

    async def _tag_message_events(self) -> None:
        """Once, for an event log from before ``message_id``: names the message each
        retained record carries, so an edit or delete rewrites those records too."""
        outbox = self.db["outbox"]
        batch: list[UpdateOne] = []
        projection = {"payload": 1, "sealed": 1, "tenant_id": 1}
        async for doc in outbox.find({"message_id": {"$exists": False}}, projection):
            try:
                keys = await self.keys.keys(str(doc["tenant_id"]))
            except KeysShreddedError:
                # Nothing of the tenant's can be read, or needs rewriting, again.
                continue
            message_id = carried_message_id(opened_payload(keys, doc))
            if message_id:
                batch.append(UpdateOne({"_id": doc["_id"]}, {"$set": {"message_id": message_id}}))
            if len(batch) >= 1000:
                await outbox.bulk_write(batch, ordered=False)
                batch = []
        if batch:
            await outbox.bulk_write(batch, ordered=False)

    async def _move_search_terms(self) -> None:
        """Once, for a database from before ``message_search``: copy the messages'
        words there (as blind tokens), then drop the multikey index from the
        messages collection. The words left on the messages go at the tenant's
        next key rotation (see KeyJobRepo)."""
        messages = self.db["messages"]
        if _OLD_SEARCH_INDEX not in await messages.index_information():
            return
        search = self.db[SEARCH_COLLECTION]
        batch: list[UpdateOne] = []
        async for doc in messages.find({"search_terms.0": {"$exists": True}}):
            # Words from before encryption: the index gets their blind tokens.
            keys = await self.keys.keys(doc["tenant_id"])
            doc["search_terms"] = blind_tokens(keys.search_key, doc["search_terms"])
            entry = {**_search_entry(doc), "tenant_id": doc["tenant_id"]}
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

    def for_tenant(self, tenant_id: str, session: AsyncClientSession | None = None) -> TenantStore:
        """A tenant's store; bound to ``session`` when a Transaction hands it out."""

        def scoped(name: str) -> TenantCollection:
            return TenantCollection(self.db[name], tenant_id)

        crypto = self.keys.for_tenant(tenant_id)
        return TenantStore(
            conversations=ConversationRepo(scoped("conversations"), crypto, session),
            members=MemberRepo(scoped("members"), session),
            messages=MessageRepo(scoped("messages"), scoped(SEARCH_COLLECTION), crypto, session),
            users=UserRepo(scoped("users"), crypto, session),
            outbox=OutboxWriter(scoped("outbox"), self.keys, session),
            audit=AuditRepo(scoped(AUDIT_COLLECTION), scoped(HEADS_COLLECTION), crypto, session),
            moderation=ModerationQueueRepo(scoped(QUEUE_COLLECTION), crypto, session),
            sanctions=SanctionRepo(scoped(SANCTIONS_COLLECTION), crypto, session),
            sla=TicketSlaRepo(scoped(SLA_STATE_COLLECTION), scoped(SLA_TIMER_COLLECTION), session),
            sla_policy=SlaPolicyRepo(scoped(SLA_POLICY_COLLECTION), session),
            assignment=AssignmentRepo(
                scoped(ASSIGNMENT_SETTINGS_COLLECTION),
                scoped(ASSIGNMENT_AGENTS_COLLECTION),
                session,
            ),
            canned=CannedReplyRepo(scoped(CANNED_COLLECTION), crypto, session),
            support_profile=SupportProfileRepo(scoped(PROFILE_COLLECTION), crypto, session),
            tickets=TicketRepo(scoped(TICKETS_COLLECTION), crypto, session),
            escalations=EscalationRepo(scoped(ESCALATIONS_COLLECTION), session),
            support=SupportConfigRepo(
                scoped(SETTINGS_COLLECTION),
                scoped(TEAMS_COLLECTION),
                crypto,
                session,
                scoped(SETTINGS_DOC_COLLECTION),
            ),
            analytics=AnalyticsRepo(
                scoped(ANALYTICS_DAYS),
                scoped(ANALYTICS_TICKETS),
                scoped(ANALYTICS_CURSORS),
                session,
            ),
            bot_memory=BotMemoryRepo(
                scoped(MEMORY_COLLECTION), scoped(SUMMARY_COLLECTION), crypto, session
            ),
            usage=UsageRepo(
                scoped(USAGE_COLLECTION),
                scoped(USAGE_CALLS_COLLECTION),
                scoped(TENANT_SETTINGS_COLLECTION),
                session,
            ),
            agents=AgentRepo(scoped(TENANT_SETTINGS_COLLECTION), session),
            settings=SettingsRepo(scoped(SETTINGS_DOC_COLLECTION), crypto, session),
            files=FileRepo(scoped(FILES_COLLECTION), crypto, session),
            file_usage=FileUsageRepo(scoped(FILE_USAGE_COLLECTION), session),
        )
