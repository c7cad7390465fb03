"""Moderation: the review queue (reports, PII flags) and sanctions (mutes, bans)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from pymongo.asynchronous.client_session import AsyncClientSession

from confab_core.mongo import Doc, TenantCollection
from conversation.storage.keys import TenantCipher, TenantCrypto

QUEUE_COLLECTION = "moderation_queue"
SANCTIONS_COLLECTION = "sanctions"

KIND_PII = "pii"
KIND_REPORT = "report"
QUEUE_KINDS = frozenset({KIND_PII, KIND_REPORT})

STATUS_OPEN = "open"
STATUS_RESOLVED = "resolved"

MUTE = "mute"
BAN = "ban"
SANCTION_KINDS = frozenset({MUTE, BAN})
# A sanction's conversation_id when it applies to every conversation of the tenant.
TENANT_WIDE = ""


@dataclass(frozen=True, slots=True)
class QueueEntry:
    id: str
    kind: str
    conversation_id: str
    message_id: str
    # The message's author, so a resolution can mute or ban them.
    author_id: str
    # Who reported it; empty for a PII flag.
    reporter_id: str
    reason: str
    # PII kinds found (email, card, ...); empty for a report.
    pii_kinds: tuple[str, ...]
    status: str
    created_at: datetime
    resolution: str
    resolved_by: str
    resolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class Sanction:
    kind: str
    user_id: str
    conversation_id: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    reason: str

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now


def _entry_id(
    tenant_id: str, kind: str, conversation_id: str, message_id: str, reporter: str
) -> str:
    # One entry per (kind, message, reporter): a second report by the same user,
    # or a second flag of the same message, finds the first.
    key = "|".join((tenant_id, kind, conversation_id, message_id, reporter))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _entry(doc: Doc, c: TenantCipher) -> QueueEntry:
    return QueueEntry(
        id=str(doc["_id"]),
        kind=str(doc["kind"]),
        conversation_id=str(doc["conversation_id"]),
        message_id=str(doc["message_id"]),
        author_id=str(doc.get("author_id", "")),
        reporter_id=str(doc.get("reporter_id", "")),
        reason=c.open(QUEUE_COLLECTION, str(doc["_id"]), "reason", doc.get("reason")),
        pii_kinds=tuple(str(k) for k in doc.get("pii_kinds", ())),
        status=str(doc["status"]),
        created_at=doc["created_at"],
        resolution=str(doc.get("resolution", "")),
        resolved_by=str(doc.get("resolved_by", "")),
        resolved_at=doc.get("resolved_at"),
    )


class ModerationQueueRepo:
    """Reports and PII flags. A reporter's reason is their words: sealed."""

    def __init__(
        self,
        col: TenantCollection,
        crypto: TenantCrypto,
        session: AsyncClientSession | None = None,
    ) -> None:
        self._col = col
        self._crypto = crypto
        self._session = session

    async def add(
        self,
        *,
        kind: str,
        conversation_id: str,
        message_id: str,
        author_id: str,
        now: datetime,
        reporter_id: str = "",
        reason: str = "",
        pii_kinds: tuple[str, ...] = (),
    ) -> tuple[QueueEntry, bool]:
        """Queues a message for review; usable inside a transaction (an upsert,
        so a repeat never aborts it). Returns the entry and whether it is new."""
        if kind not in QUEUE_KINDS:
            raise ValueError(f"unknown queue kind {kind!r}")
        entry_id = _entry_id(self._col.tenant_id, kind, conversation_id, message_id, reporter_id)
        c = await self._crypto.cipher()
        result = await self._col.update_one(
            {"_id": entry_id},
            {
                "$setOnInsert": {
                    "kind": kind,
                    "conversation_id": conversation_id,
                    "message_id": message_id,
                    "author_id": author_id,
                    "reporter_id": reporter_id,
                    "reason": c.seal(QUEUE_COLLECTION, entry_id, "reason", reason),
                    "pii_kinds": list(pii_kinds),
                    "status": STATUS_OPEN,
                    "created_at": now,
                }
            },
            upsert=True,
            session=self._session,
        )
        doc = await self._col.find_one({"_id": entry_id}, session=self._session)
        if doc is None:
            raise RuntimeError("queue entry vanished after its upsert")
        return _entry(doc, c), result.upserted_id is not None

    async def get(self, entry_id: str) -> QueueEntry | None:
        doc = await self._col.find_one({"_id": entry_id}, session=self._session)
        return None if doc is None else _entry(doc, await self._crypto.cipher())

    async def page(
        self, *, status: str, kind: str, limit: int, after: tuple[datetime, str] | None
    ) -> list[QueueEntry]:
        """Oldest first (the order to work through them); ``after`` is the
        (created_at, id) of the last entry of the previous page."""
        flt: Doc = {}
        if status:
            flt["status"] = status
        if kind:
            flt["kind"] = kind
        if after is not None:
            flt["$or"] = [
                {"created_at": {"$gt": after[0]}},
                {"created_at": after[0], "_id": {"$gt": after[1]}},
            ]
        cursor = self._col.find(
            flt, sort=[("created_at", 1), ("_id", 1)], limit=limit, session=self._session
        )
        c = await self._crypto.cipher()
        return [_entry(doc, c) async for doc in cursor]

    async def resolve(
        self, entry_id: str, resolution: str, by: str, now: datetime
    ) -> QueueEntry | None:
        """Resolves an open entry; None when it is not open (resolved meanwhile)."""
        doc = await self._col.find_one_and_update(
            {"_id": entry_id, "status": STATUS_OPEN},
            {
                "$set": {
                    "status": STATUS_RESOLVED,
                    "resolution": resolution,
                    "resolved_by": by,
                    "resolved_at": now,
                }
            },
            session=self._session,
        )
        return None if doc is None else _entry(doc, await self._crypto.cipher())


def _sanction(doc: Doc, c: TenantCipher) -> Sanction:
    return Sanction(
        kind=str(doc["kind"]),
        user_id=str(doc["user_id"]),
        conversation_id=str(doc.get("conversation_id", "")),
        created_by=str(doc.get("created_by", "")),
        created_at=doc["created_at"],
        expires_at=doc.get("expires_at"),
        reason=c.open(SANCTIONS_COLLECTION, str(doc["_id"]), "reason", doc.get("reason")),
    )


class SanctionRepo:
    """Mutes and bans. An expired sanction is simply not active: expiry is read
    when a sanction is checked, nothing needs to run at the expiry time. The
    moderator's reason is sealed."""

    def __init__(
        self,
        col: TenantCollection,
        crypto: TenantCrypto,
        session: AsyncClientSession | None = None,
    ) -> None:
        self._col = col
        self._crypto = crypto
        self._session = session

    async def _sanctions(self, docs: list[Doc]) -> list[Sanction]:
        if not docs:
            return []
        c = await self._crypto.cipher()
        return [_sanction(doc, c) for doc in docs]

    def _id(self, kind: str, user_id: str, conversation_id: str) -> str:
        return f"{self._col.tenant_id}:{kind}:{conversation_id or '*'}:{user_id}"

    async def get(self, kind: str, user_id: str, conversation_id: str) -> Sanction | None:
        doc = await self._col.find_one(
            {"_id": self._id(kind, user_id, conversation_id)}, session=self._session
        )
        return None if doc is None else _sanction(doc, await self._crypto.cipher())

    async def impose(self, s: Sanction) -> None:
        """Sets (or replaces: a new expiry, a new reason) one sanction."""
        sanction_id = self._id(s.kind, s.user_id, s.conversation_id)
        c = await self._crypto.cipher()
        await self._col.update_one(
            {"_id": sanction_id},
            {
                "$set": {
                    "kind": s.kind,
                    "user_id": s.user_id,
                    "conversation_id": s.conversation_id,
                    "created_by": s.created_by,
                    "created_at": s.created_at,
                    "expires_at": s.expires_at,
                    "reason": c.seal(SANCTIONS_COLLECTION, sanction_id, "reason", s.reason),
                }
            },
            upsert=True,
            session=self._session,
        )

    async def lift(self, kind: str, user_id: str, conversation_id: str) -> bool:
        result = await self._col.delete_many(
            {"_id": self._id(kind, user_id, conversation_id)}, session=self._session
        )
        return result.deleted_count == 1

    async def against(self, user_id: str, conversation_id: str) -> list[Sanction]:
        """The sanctions on ``user_id`` that reach ``conversation_id``: its own and
        the tenant-wide ones, active or expired (the caller knows the time)."""
        ids = [
            self._id(kind, user_id, scope)
            for kind in sorted(SANCTION_KINDS)
            for scope in {conversation_id, TENANT_WIDE}
        ]
        cursor = self._col.find({"_id": {"$in": ids}}, session=self._session)
        return await self._sanctions([doc async for doc in cursor])

    async def bans_among(self, user_ids: list[str], conversation_id: str) -> list[Sanction]:
        """Bans on any of ``user_ids`` that reach ``conversation_id`` (its own and
        tenant-wide ones; only tenant-wide ones when it is TENANT_WIDE)."""
        if not user_ids:
            return []
        scopes = {conversation_id, TENANT_WIDE}
        ids = [self._id(BAN, u, scope) for u in user_ids for scope in scopes]
        cursor = self._col.find({"_id": {"$in": ids}}, session=self._session)
        return await self._sanctions([doc async for doc in cursor])

    async def active(self, now: datetime, limit: int) -> list[Sanction]:
        """The tenant's sanctions in force at ``now`` (no expiry, or a later one)."""
        cursor = self._col.find(
            {"$or": [{"expires_at": None}, {"expires_at": {"$gt": now}}]},
            limit=limit,
            session=self._session,
        )
        return await self._sanctions([doc async for doc in cursor])

    async def listing(
        self, *, conversation_id: str | None, user_id: str, limit: int
    ) -> list[Sanction]:
        """Sanctions, newest first; ``conversation_id`` None lists every scope."""
        flt: Doc = {}
        if conversation_id is not None:
            flt["conversation_id"] = conversation_id
        if user_id:
            flt["user_id"] = user_id
        cursor = self._col.find(flt, sort=[("created_at", -1)], limit=limit, session=self._session)
        return await self._sanctions([doc async for doc in cursor])
