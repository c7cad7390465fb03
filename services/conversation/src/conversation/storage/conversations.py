from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from confab.conversation.v1 import conversation_pb2 as pb
from confab_core.mongo import Doc, TenantCollection
from conversation.storage.keys import TenantCipher, TenantCrypto

_C = "conversations"


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    kind: int
    title: str
    description: str
    topic: str
    created_by: str
    created_at: datetime
    last_activity_at: datetime
    # The last message seq, and the last event seq, taken so far.
    last_seq: int
    last_event_seq: int
    member_count: int
    # A link to what the conversation is about: (kind, id), e.g. ("ticket", "T-9").
    context: tuple[str, str] | None
    archived: bool
    deleted: bool
    # The bot agent that serves it (tenant settings; "" the legacy bot or none).
    agent_id: str = ""


def _record(doc: Doc, c: TenantCipher) -> Conversation:
    ctx = doc.get("context")
    doc_id = str(doc["_id"])
    return Conversation(
        id=doc_id,
        kind=int(doc["kind"]),
        title=c.open(_C, doc_id, "title", doc.get("title")),
        description=c.open(_C, doc_id, "description", doc.get("description")),
        topic=c.open(_C, doc_id, "topic", doc.get("topic")),
        created_by=str(doc["created_by"]),
        created_at=doc["created_at"],
        last_activity_at=doc["last_activity_at"],
        last_seq=int(doc["last_seq"]),
        last_event_seq=int(doc.get("last_event_seq", 0)),
        member_count=int(doc["member_count"]),
        context=(str(ctx["kind"]), str(ctx["id"])) if ctx else None,
        archived=bool(doc.get("archived", False)),
        deleted=bool(doc.get("deleted", False)),
        agent_id=str(doc.get("agent_id", "")),
    )


def _found(doc: Doc | None, c: TenantCipher) -> Conversation | None:
    return None if doc is None else _record(doc, c)


@dataclass(frozen=True, slots=True)
class Claim:
    """What one write takes from a conversation document, and what it changes there.

    ``events`` event seqs and ``messages`` message seqs are taken together;
    the other fields are the conversation's own changes, committed with them.
    """

    events: int = 1
    messages: int = 0
    member_delta: int = 0
    title: str | None = None
    description: str | None = None
    topic: str | None = None
    archive: bool = False
    deleted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ActivityCursor:
    """A position in a user's conversations ordered by activity: the last item seen."""

    last_activity_at: datetime
    conversation_id: str


class ConversationRepo:
    def __init__(
        self,
        col: TenantCollection,
        crypto: TenantCrypto,
        session: AsyncClientSession | None = None,
    ) -> None:
        self._col = col
        self._crypto = crypto
        self._session = session

    async def insert(self, conv: Conversation, direct_key: str) -> None:
        """``direct_key`` is unique per tenant: direct pairs collide on purpose,
        others (their own id) never do."""
        c = await self._crypto.cipher()
        doc: Doc = {
            "_id": conv.id,
            "kind": conv.kind,
            "title": c.seal(_C, conv.id, "title", conv.title),
            "description": c.seal(_C, conv.id, "description", conv.description),
            "topic": c.seal(_C, conv.id, "topic", conv.topic),
            "created_by": conv.created_by,
            "created_at": conv.created_at,
            "last_activity_at": conv.last_activity_at,
            "last_seq": conv.last_seq,
            "last_event_seq": conv.last_event_seq,
            "member_count": conv.member_count,
            "context": {"kind": conv.context[0], "id": conv.context[1]} if conv.context else None,
            "archived": conv.archived,
            "deleted": conv.deleted,
            "direct_key": direct_key,
            "agent_id": conv.agent_id,
        }
        await self._col.insert_one(doc, session=self._session)

    async def get(self, conversation_id: str) -> Conversation | None:
        c = await self._crypto.cipher()
        return _found(await self._col.find_one({"_id": conversation_id}, session=self._session), c)

    async def live_ids(self, ids: list[str]) -> set[str]:
        """Which of ``ids`` name a conversation that is not deleted."""
        if not ids:
            return set()
        cursor = self._col.find(
            {"_id": {"$in": ids}, "deleted": {"$ne": True}},
            projection={"_id": 1},
            session=self._session,
        )
        return {doc["_id"] async for doc in cursor}

    async def get_direct(self, direct_key: str) -> Conversation | None:
        c = await self._crypto.cipher()
        return _found(
            await self._col.find_one({"direct_key": direct_key}, session=self._session), c
        )

    async def get_many_by_activity(
        self, ids: list[str], limit: int, after: ActivityCursor | None = None
    ) -> list[Conversation]:
        """Most recent activity first (ties by id), from just past ``after``."""
        c = await self._crypto.cipher()
        flt: dict[str, Any] = {"_id": {"$in": ids}, "deleted": {"$ne": True}}
        if after is not None:
            flt["$or"] = [
                {"last_activity_at": {"$lt": after.last_activity_at}},
                {
                    "last_activity_at": after.last_activity_at,
                    "_id": {"$gt": after.conversation_id},
                },
            ]
        cursor = self._col.find(
            flt,
            sort=[("last_activity_at", -1), ("_id", 1)],
            limit=limit,
            session=self._session,
        )
        return [_record(doc, c) async for doc in cursor]

    async def ids_of(self, ids: list[str], max_members: int, limit: int) -> list[str]:
        """Which of ``ids`` exist, with at most ``max_members`` members (0: any), most
        recent activity first, at most ``limit`` (0: all)."""
        flt: dict[str, Any] = {"_id": {"$in": ids}, "deleted": {"$ne": True}}
        if max_members > 0:
            flt["member_count"] = {"$lte": max_members}
        cursor = self._col.find(
            flt,
            projection={"_id": 1},
            sort=[("last_activity_at", -1), ("_id", 1)],
            limit=limit,
            session=self._session,
        )
        return [str(doc["_id"]) async for doc in cursor]

    async def browse_public(self, query: str, limit: int) -> list[Conversation]:
        """Public channels by title, those whose title holds ``query`` (any case).

        Titles are sealed, so the server can neither match nor sort them: the
        tenant's public channels are opened here, then filtered and sorted. The
        cost grows with the number of public channels, not of messages.
        """
        c = await self._crypto.cipher()
        cursor = self._col.find(
            {"kind": pb.CONVERSATION_KIND_PUBLIC_CHANNEL, "deleted": {"$ne": True}},
            session=self._session,
        )
        needle = query.casefold()
        found = [
            conv async for doc in cursor if needle in (conv := _record(doc, c)).title.casefold()
        ]
        found.sort(key=lambda conv: (conv.title, conv.id))
        return found[:limit]

    async def claim(self, conversation_id: str, claim: Claim, now: datetime) -> Conversation | None:
        """Takes the claim's seqs and applies its changes; the document after, or
        None when the conversation is gone.

        The write on the conversation document makes concurrent writes to one
        conversation conflict, so seqs are committed in the order they are taken.
        """
        inc: dict[str, int] = {"last_event_seq": claim.events}
        if claim.messages:
            inc["last_seq"] = claim.messages
        if claim.member_delta:
            inc["member_count"] = claim.member_delta
        c = await self._crypto.cipher()
        changes: dict[str, Any] = {"last_activity_at": now}
        for name in ("title", "description", "topic"):
            value = getattr(claim, name)
            if value is not None:
                changes[name] = c.seal(_C, conversation_id, name, value)
        if claim.archive:
            changes["archived"] = True
        if claim.deleted_at is not None:
            # Freeing the direct pair's unique key lets the two users start a new
            # direct conversation; otherwise create() finds only the deleted one.
            changes.update(deleted=True, deleted_at=claim.deleted_at, direct_key=conversation_id)
        return _found(
            await self._col.find_one_and_update(
                {"_id": conversation_id, "deleted": {"$ne": True}},
                {"$inc": inc, "$set": changes},
                session=self._session,
            ),
            c,
        )

    async def page_by_id(self, after_id: str, limit: int) -> list[Conversation]:
        """Every conversation of the tenant (deleted ones too), by id, past ``after_id``."""
        c = await self._crypto.cipher()
        cursor = self._col.find(
            {"_id": {"$gt": after_id}}, sort=[("_id", 1)], limit=limit, session=self._session
        )
        return [_record(doc, c) async for doc in cursor]

    async def page_stale(
        self, after_id: str, limit: int, inactive_since: datetime, *, archived: bool
    ) -> list[str]:
        """Ids of conversations without activity since ``inactive_since``: archived
        ones only, or any."""
        flt: dict[str, Any] = {
            "_id": {"$gt": after_id},
            "last_activity_at": {"$lt": inactive_since},
        }
        if archived:
            flt["archived"] = True
        cursor = self._col.find(
            flt,
            projection={"_id": 1},
            sort=[("_id", 1)],
            limit=limit,
            session=self._session,
        )
        return [str(doc["_id"]) async for doc in cursor]

    async def count_all(self) -> int:
        return await self._col.count({}, session=self._session)

    async def purge(self, conversation_id: str) -> int:
        """Hard-deletes the conversation document (retention, erasure)."""
        result = await self._col.delete_many({"_id": conversation_id}, session=self._session)
        return result.deleted_count

    async def blank_titles(self, ids: list[str]) -> None:
        """Erasure: the titles of a user's support conversations are their ticket's
        subject, their words."""
        if ids:
            await self._col.update_many(
                {"_id": {"$in": ids}}, {"$set": {"title": ""}}, session=self._session
            )

    async def forget_user(self, user_id: str, pseudonym_id: str) -> int:
        """Erasure: the pseudonym becomes the creator of what the user created, and a
        direct pair's key that names the user becomes the conversation's own id."""
        await self._col.update_many(
            {"created_by": user_id}, {"$set": {"created_by": pseudonym_id}}, session=self._session
        )
        named = re.escape(user_id)
        cursor = self._col.find(
            {"direct_key": {"$regex": f"^direct:({named}\\||.*\\|{named}$)"}},
            projection={"_id": 1},
            session=self._session,
        )
        ids = [str(doc["_id"]) async for doc in cursor]
        await self._col.update_each(
            [({"_id": i}, {"$set": {"direct_key": i}}) for i in ids], session=self._session
        )
        return len(ids)
