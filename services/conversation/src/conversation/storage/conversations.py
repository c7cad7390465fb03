from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from confab.conversation.v1 import conversation_pb2 as pb
from confab_core.mongo import Doc, TenantCollection


class ConversationRepo:
    def __init__(self, col: TenantCollection) -> None:
        self._col = col

    async def insert(self, doc: Doc, session: AsyncClientSession | None = None) -> None:
        await self._col.insert_one(doc, session=session)

    async def get(
        self, conversation_id: str, session: AsyncClientSession | None = None
    ) -> Doc | None:
        return await self._col.find_one({"_id": conversation_id}, session=session)

    async def get_direct(self, direct_key: str) -> Doc | None:
        return await self._col.find_one({"direct_key": direct_key})

    async def get_many_by_activity(self, ids: list[str], limit: int) -> list[Doc]:
        cursor = self._col.find(
            {"_id": {"$in": ids}, "deleted": {"$ne": True}},
            sort=[("last_activity_at", -1), ("_id", 1)],
            limit=limit,
        )
        return [doc async for doc in cursor]

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
        )
        return [str(doc["_id"]) async for doc in cursor]

    async def browse_public(self, query: str, limit: int) -> list[Doc]:
        flt: dict[str, Any] = {
            "kind": pb.CONVERSATION_KIND_PUBLIC_CHANNEL,
            "deleted": {"$ne": True},
        }
        if query:
            flt["title"] = {"$regex": re.escape(query), "$options": "i"}
        cursor = self._col.find(flt, sort=[("title", 1), ("_id", 1)], limit=limit)
        return [doc async for doc in cursor]

    async def next_seq(
        self,
        conversation_id: str,
        now: datetime,
        *,
        message: bool,
        session: AsyncClientSession,
        events: int = 1,
        set_fields: dict[str, Any] | None = None,
        inc_fields: dict[str, int] | None = None,
    ) -> Doc | None:
        """Takes the next event seqs (and message seq) inside the caller's transaction.

        The write on the conversation document makes concurrent writes to one
        conversation conflict, so seqs are committed in the order they are taken.
        """
        inc: dict[str, Any] = {"last_event_seq": events, **(inc_fields or {})}
        if message:
            inc["last_seq"] = 1
        update: dict[str, Any] = {"$inc": inc, "$set": {"last_activity_at": now}}
        if set_fields:
            update["$set"].update(set_fields)
        return await self._col.find_one_and_update(
            {"_id": conversation_id, "deleted": {"$ne": True}}, update, session=session
        )
