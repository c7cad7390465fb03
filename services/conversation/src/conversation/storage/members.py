from __future__ import annotations

from pymongo.asynchronous.client_session import AsyncClientSession

from confab.conversation.v1 import conversation_pb2 as pb
from confab_core.mongo import Doc, TenantCollection


def member_id(conversation_id: str, user_id: str) -> str:
    return f"{conversation_id}:{user_id}"


class MemberRepo:
    def __init__(self, col: TenantCollection) -> None:
        self._col = col

    async def insert(self, doc: Doc, session: AsyncClientSession | None = None) -> None:
        await self._col.insert_one(doc, session=session)

    async def get(
        self, conversation_id: str, user_id: str, session: AsyncClientSession | None = None
    ) -> Doc | None:
        return await self._col.find_one(
            {"_id": member_id(conversation_id, user_id)}, session=session
        )

    async def get_many(self, conversation_id: str, user_ids: list[str]) -> list[Doc]:
        cursor = self._col.find({"_id": {"$in": [member_id(conversation_id, u) for u in user_ids]}})
        return [doc async for doc in cursor]

    async def list_for_conversation(self, conversation_id: str, limit: int = 0) -> list[Doc]:
        cursor = self._col.find(
            {"conversation_id": conversation_id},
            sort=[("joined_at", 1), ("user_id", 1)],
            limit=limit,
        )
        return [doc async for doc in cursor]

    async def list_for_user(self, user_id: str) -> list[Doc]:
        cursor = self._col.find({"user_id": user_id})
        return [doc async for doc in cursor]

    async def count_owners(
        self, conversation_id: str, session: AsyncClientSession | None = None
    ) -> int:
        return await self._col.count(
            {"conversation_id": conversation_id, "role": pb.MEMBER_ROLE_OWNER}, session=session
        )

    async def remove(
        self, conversation_id: str, user_id: str, session: AsyncClientSession | None = None
    ) -> bool:
        result = await self._col.delete_many(
            {"_id": member_id(conversation_id, user_id)}, session=session
        )
        return result.deleted_count == 1

    async def set_role(
        self, conversation_id: str, user_id: str, role: int, session: AsyncClientSession
    ) -> Doc | None:
        return await self._col.find_one_and_update(
            {"_id": member_id(conversation_id, user_id)}, {"$set": {"role": role}}, session=session
        )

    async def advance_read_many(
        self, marks: list[tuple[str, str, int]], session: AsyncClientSession
    ) -> None:
        """``advance_read`` for several (conversation, user, seq) in one round trip."""
        await self._col.update_each(
            [({"_id": member_id(c, u)}, {"$max": {"last_read_seq": seq}}) for c, u, seq in marks],
            session=session,
        )

    async def advance_read(
        self,
        conversation_id: str,
        user_id: str,
        seq: int,
        session: AsyncClientSession | None = None,
    ) -> Doc | None:
        """Moves the read marker forward only; a stale mark never moves it back."""
        return await self._col.find_one_and_update(
            {"_id": member_id(conversation_id, user_id)},
            {"$max": {"last_read_seq": seq}},
            session=session,
        )
