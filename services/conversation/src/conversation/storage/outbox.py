"""The transactional outbox: events written with the change they describe."""

from __future__ import annotations

from datetime import datetime

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from confab_core.mongo import Doc, TenantCollection


class OutboxWriter:
    def __init__(self, col: TenantCollection) -> None:
        self._col = col

    async def add(
        self,
        *,
        event_id: str,
        topic: str,
        conversation_id: str,
        event_seq: int,
        payload: bytes,
        headers: list[tuple[str, bytes]],
        now: datetime,
        session: AsyncClientSession,
    ) -> None:
        await self._col.insert_one(
            {
                "_id": event_id,
                "topic": topic,
                "conversation_id": conversation_id,
                "event_seq": event_seq,
                "payload": payload,
                "headers": [[k, v] for k, v in headers],
                "created_at": now,
            },
            session=session,
        )


class OutboxReader:
    """The relay's view: all tenants, because publishing is tenant-blind.

    This is the one cross-tenant access in the service; it only moves opaque
    records that already carry their tenant inside the payload.
    """

    def __init__(self, col: AsyncCollection[Doc]) -> None:
        self._col = col

    async def pending(self, limit: int) -> list[Doc]:
        # Sorting by (conversation, event_seq) means a batch cut by the limit
        # still holds each conversation's oldest events first.
        cursor = self._col.find({}).sort([("conversation_id", 1), ("event_seq", 1)]).limit(limit)
        return [doc async for doc in cursor]

    async def remove(self, ids: list[str]) -> None:
        await self._col.delete_many({"_id": {"$in": ids}})
