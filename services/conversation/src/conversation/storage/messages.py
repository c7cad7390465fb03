from __future__ import annotations

from pymongo.asynchronous.client_session import AsyncClientSession

from confab_core.mongo import Doc, TenantCollection


class MessageRepo:
    def __init__(self, col: TenantCollection) -> None:
        self._col = col

    async def insert(self, doc: Doc, session: AsyncClientSession | None = None) -> None:
        await self._col.insert_one(doc, session=session)

    async def get(self, conversation_id: str, message_id: str) -> Doc | None:
        return await self._col.find_one({"conversation_id": conversation_id, "_id": message_id})

    async def by_client_id(
        self,
        conversation_id: str,
        sender_id: str,
        client_msg_id: str,
        session: AsyncClientSession | None = None,
    ) -> Doc | None:
        return await self._col.find_one(
            {
                "conversation_id": conversation_id,
                "sender_id": sender_id,
                "client_msg_id": client_msg_id,
            },
            session=session,
        )

    async def page_after(self, conversation_id: str, after_seq: int, limit: int) -> list[Doc]:
        cursor = self._col.find(
            {"conversation_id": conversation_id, "seq": {"$gt": after_seq}},
            sort=[("seq", 1)],
            limit=limit,
        )
        return [doc async for doc in cursor]

    async def page_before(self, conversation_id: str, before_seq: int, limit: int) -> list[Doc]:
        cursor = self._col.find(
            {"conversation_id": conversation_id, "seq": {"$lt": before_seq}},
            sort=[("seq", -1)],
            limit=limit,
        )
        return [doc async for doc in cursor]
