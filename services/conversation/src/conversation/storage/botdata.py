"""What the bot keeps: its memory of conversations (``bot_memory``), the summary
cache (``bot_summaries``) and the tenant's model usage (``bot_usage`` and the
recorded calls, ``bot_usage_calls``).

Memory and summaries are user content (they retell what members wrote): sealed
at rest like messages. Each has a fixed ``_id`` derived from what it is about
(tenant, conversation, agent), so a write that should not land (an older
summary than the stored one) meets the unique ``_id`` and is refused by the
database itself, whatever the interleaving of writers.

Usage holds no content: token counts per tenant, month and agent, and the ids of
the model calls already counted (kept ``CALL_RETENTION``, longer than any
redelivery of the event that records one, so a call is never counted twice).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from confab_core.mongo import Doc, TenantCollection
from conversation.storage.keys import TenantCrypto

MEMORY_COLLECTION = "bot_memory"
SUMMARY_COLLECTION = "bot_summaries"
USAGE_COLLECTION = "bot_usage"
USAGE_CALLS_COLLECTION = "bot_usage_calls"
# Written by the settings document's owner; read here for the quota only.
TENANT_SETTINGS_COLLECTION = "tenant_settings"
CALL_RETENTION = timedelta(days=40)


def _doc_id(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class StoredMemory:
    conversation_id: str
    agent_id: str
    summary: str
    through_seq: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CachedSummary:
    conversation_id: str
    last_seq: int
    summary: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class MemoryRecord:
    """A memory or a cached summary, as an export lists it."""

    id: str
    kind: str
    conversation_id: str
    agent_id: str
    summary: str
    through_seq: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AgentTokens:
    agent_id: str
    tokens_in: int
    tokens_out: int
    calls: int


@dataclass(frozen=True, slots=True)
class Call:
    call_id: str
    agent_id: str
    conversation_id: str
    purpose: str
    tokens_in: int
    tokens_out: int
    month: str
    at: datetime


class BotMemoryRepo:
    """The agents' memories and the conversations' cached summaries."""

    def __init__(
        self,
        memory: TenantCollection,
        summaries: TenantCollection,
        crypto: TenantCrypto,
        session: AsyncClientSession | None = None,
    ) -> None:
        self._memory = memory
        self._summaries = summaries
        self._crypto = crypto
        self._session = session

    def _memory_id(self, conversation_id: str, agent_id: str) -> str:
        return _doc_id(self._memory.tenant_id, conversation_id, agent_id)

    def _summary_id(self, conversation_id: str) -> str:
        return _doc_id(self._summaries.tenant_id, conversation_id)

    async def memory(self, conversation_id: str, agent_id: str) -> StoredMemory | None:
        doc = await self._memory.find_one(
            {"_id": self._memory_id(conversation_id, agent_id)}, session=self._session
        )
        if doc is None:
            return None
        c = await self._crypto.cipher()
        return StoredMemory(
            conversation_id=str(doc["conversation_id"]),
            agent_id=str(doc["agent_id"]),
            summary=c.open(MEMORY_COLLECTION, str(doc["_id"]), "summary", doc.get("summary")),
            through_seq=int(doc["through_seq"]),
            updated_at=doc["updated_at"],
        )

    async def put_memory(self, memory: StoredMemory) -> bool:
        """Stores ``memory`` unless the stored one covers more messages; whether it did."""
        doc_id = self._memory_id(memory.conversation_id, memory.agent_id)
        c = await self._crypto.cipher()
        try:
            await self._memory.update_one(
                {"_id": doc_id, "through_seq": {"$lte": memory.through_seq}},
                {
                    "$set": {
                        "conversation_id": memory.conversation_id,
                        "agent_id": memory.agent_id,
                        "summary": c.seal(MEMORY_COLLECTION, doc_id, "summary", memory.summary),
                        "through_seq": memory.through_seq,
                        "updated_at": memory.updated_at,
                    }
                },
                upsert=True,
                session=self._session,
            )
        except DuplicateKeyError:
            # The document exists and covers more: the filter missed, the upsert collided.
            return False
        return True

    async def cached_summary(self, conversation_id: str) -> CachedSummary | None:
        doc = await self._summaries.find_one(
            {"_id": self._summary_id(conversation_id)}, session=self._session
        )
        if doc is None:
            return None
        c = await self._crypto.cipher()
        return CachedSummary(
            conversation_id=str(doc["conversation_id"]),
            last_seq=int(doc["last_seq"]),
            summary=c.open(SUMMARY_COLLECTION, str(doc["_id"]), "summary", doc.get("summary")),
            updated_at=doc["updated_at"],
        )

    async def put_summary(self, summary: CachedSummary) -> bool:
        """Keeps only the latest summary of a conversation (by ``last_seq``)."""
        doc_id = self._summary_id(summary.conversation_id)
        c = await self._crypto.cipher()
        try:
            await self._summaries.update_one(
                {"_id": doc_id, "last_seq": {"$lte": summary.last_seq}},
                {
                    "$set": {
                        "conversation_id": summary.conversation_id,
                        "summary": c.seal(SUMMARY_COLLECTION, doc_id, "summary", summary.summary),
                        "last_seq": summary.last_seq,
                        "updated_at": summary.updated_at,
                    }
                },
                upsert=True,
                session=self._session,
            )
        except DuplicateKeyError:
            return False
        return True

    async def forget_conversations(self, conversation_ids: list[str]) -> int:
        """Every memory and cached summary of these conversations (deletion,
        retention, and the erasure of a member)."""
        if not conversation_ids:
            return 0
        flt: Doc = {"conversation_id": {"$in": conversation_ids}}
        gone = await self._memory.delete_many(flt, session=self._session)
        cached = await self._summaries.delete_many(flt, session=self._session)
        return gone.deleted_count + cached.deleted_count

    async def page(self, conversation_id: str, after: str, limit: int) -> list[MemoryRecord]:
        """Memories then cached summaries, by a key past ``after`` (an export);
        one conversation's, or every conversation's when ``conversation_id`` is ""."""
        flt: Doc = {"conversation_id": conversation_id} if conversation_id else {}
        kind, _, last_id = after.partition(":") if after else ("memory", "", "")
        out: list[MemoryRecord] = []
        c = await self._crypto.cipher()
        if kind == "memory":
            cursor = self._memory.find(
                {**flt, "_id": {"$gt": last_id}},
                sort=[("_id", 1)],
                limit=limit,
                session=self._session,
            )
            async for doc in cursor:
                out.append(
                    MemoryRecord(
                        id=f"memory:{doc['_id']}",
                        kind="bot_memory",
                        conversation_id=str(doc["conversation_id"]),
                        agent_id=str(doc["agent_id"]),
                        summary=c.open(
                            MEMORY_COLLECTION, str(doc["_id"]), "summary", doc.get("summary")
                        ),
                        through_seq=int(doc["through_seq"]),
                        updated_at=doc["updated_at"],
                    )
                )
            if len(out) == limit:
                return out
            last_id = ""
        cursor = self._summaries.find(
            {**flt, "_id": {"$gt": last_id}},
            sort=[("_id", 1)],
            limit=limit - len(out),
            session=self._session,
        )
        async for doc in cursor:
            out.append(
                MemoryRecord(
                    id=f"summary:{doc['_id']}",
                    kind="bot_summary",
                    conversation_id=str(doc["conversation_id"]),
                    agent_id="",
                    summary=c.open(
                        SUMMARY_COLLECTION, str(doc["_id"]), "summary", doc.get("summary")
                    ),
                    through_seq=int(doc["last_seq"]),
                    updated_at=doc["updated_at"],
                )
            )
        return out

    async def count(self, conversation_id: str) -> int:
        flt: Doc = {"conversation_id": conversation_id} if conversation_id else {}
        return await self._memory.count(flt, session=self._session) + await self._summaries.count(
            flt, session=self._session
        )


class AlreadyRecorded(Exception):
    """The model call was counted before (a redelivery)."""


class UsageRepo:
    """Token counts per month and agent; one document per (month, agent)."""

    def __init__(
        self,
        usage: TenantCollection,
        calls: TenantCollection,
        settings: TenantCollection,
        session: AsyncClientSession | None = None,
    ) -> None:
        self._usage = usage
        self._calls = calls
        self._settings = settings
        self._session = session

    async def record(self, call: Call) -> None:
        """Counts ``call`` once; AlreadyRecorded when its id was counted before.
        Run it in a transaction: the call's id and its tokens land together."""
        tenant_id = self._usage.tenant_id
        try:
            await self._calls.insert_one(
                {
                    "_id": _doc_id(tenant_id, call.call_id),
                    "month": call.month,
                    "at": call.at,
                },
                session=self._session,
            )
        except DuplicateKeyError as exc:
            raise AlreadyRecorded(call.call_id) from exc
        await self._usage.update_one(
            {"_id": _doc_id(tenant_id, call.month, call.agent_id)},
            {
                "$inc": {
                    "tokens_in": call.tokens_in,
                    "tokens_out": call.tokens_out,
                    "calls": 1,
                    f"purposes.{call.purpose}": call.tokens_in + call.tokens_out,
                },
                "$setOnInsert": {"month": call.month, "agent_id": call.agent_id},
            },
            upsert=True,
            session=self._session,
        )

    async def month(self, month: str) -> list[AgentTokens]:
        cursor = self._usage.find({"month": month}, sort=[("agent_id", 1)], session=self._session)
        return [
            AgentTokens(
                agent_id=str(doc["agent_id"]),
                tokens_in=int(doc.get("tokens_in", 0)),
                tokens_out=int(doc.get("tokens_out", 0)),
                calls=int(doc.get("calls", 0)),
            )
            async for doc in cursor
        ]

    async def quota(self) -> int:
        """The tenant's monthly token quota from its settings document; 0: none."""
        doc = await self._settings.find_one({}, projection={"ai_quota": 1}, session=self._session)
        quota = (doc or {}).get("ai_quota") or {}
        value = quota.get("monthly_tokens", 0) if isinstance(quota, dict) else 0
        return int(value) if isinstance(value, int) and value > 0 else 0
