from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pymongo.asynchronous.client_session import AsyncClientSession

from confab.conversation.v1 import conversation_pb2 as pb
from confab_core.mongo import Doc, TenantCollection
from conversation.storage.inserts import insert_all


def member_id(conversation_id: str, user_id: str) -> str:
    return f"{conversation_id}:{user_id}"


def new_member(conversation_id: str, user_id: str, role: int, now: datetime) -> Doc:
    return {
        "_id": member_id(conversation_id, user_id),
        "conversation_id": conversation_id,
        "user_id": user_id,
        "role": role,
        "joined_at": now,
        "last_read_seq": 0,
    }


class MemberRepo:
    def __init__(self, col: TenantCollection, session: AsyncClientSession | None = None) -> None:
        self._col = col
        self._session = session

    async def insert_members(
        self, conversation_id: str, roles: Mapping[str, int], now: datetime
    ) -> list[Doc]:
        """New memberships (user id to role), in one round trip; the stored documents."""
        docs = [new_member(conversation_id, u, role, now) for u, role in roles.items()]
        await insert_all(self._col, docs, self._session)
        return docs

    async def get(self, conversation_id: str, user_id: str) -> Doc | None:
        return await self._col.find_one(
            {"_id": member_id(conversation_id, user_id)}, session=self._session
        )

    async def get_many(self, conversation_id: str, user_ids: list[str]) -> list[Doc]:
        cursor = self._col.find(
            {"_id": {"$in": [member_id(conversation_id, u) for u in user_ids]}},
            session=self._session,
        )
        return [doc async for doc in cursor]

    async def list_for_conversation(self, conversation_id: str, limit: int = 0) -> list[Doc]:
        cursor = self._col.find(
            {"conversation_id": conversation_id},
            sort=[("joined_at", 1), ("user_id", 1)],
            limit=limit,
            session=self._session,
        )
        return [doc async for doc in cursor]

    async def list_for_user(self, user_id: str) -> list[Doc]:
        cursor = self._col.find({"user_id": user_id}, session=self._session)
        return [doc async for doc in cursor]

    async def count_owners(self, conversation_id: str) -> int:
        return await self._col.count(
            {"conversation_id": conversation_id, "role": pb.MEMBER_ROLE_OWNER},
            session=self._session,
        )

    async def remove(self, conversation_id: str, user_id: str) -> bool:
        result = await self._col.delete_many(
            {"_id": member_id(conversation_id, user_id)}, session=self._session
        )
        return result.deleted_count == 1

    async def set_role(self, conversation_id: str, user_id: str, role: int) -> Doc | None:
        return await self._col.find_one_and_update(
            {"_id": member_id(conversation_id, user_id)},
            {"$set": {"role": role}},
            session=self._session,
        )

    async def advance_read_many(self, marks: list[tuple[str, str, int]]) -> None:
        """``advance_read`` for several (conversation, user, seq) in one round trip."""
        await self._col.update_each(
            [({"_id": member_id(c, u)}, {"$max": {"last_read_seq": seq}}) for c, u, seq in marks],
            session=self._session,
        )

    async def advance_read(self, conversation_id: str, user_id: str, seq: int) -> Doc | None:
        """Moves the read marker forward only; a stale mark never moves it back."""
        return await self._col.find_one_and_update(
            {"_id": member_id(conversation_id, user_id)},
            {"$max": {"last_read_seq": seq}},
            session=self._session,
        )
