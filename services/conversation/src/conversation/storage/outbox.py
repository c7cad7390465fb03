"""The transactional outbox, which doubles as each conversation's event log.

Events are written with the change they describe. The relay publishes them and
marks them published; they stay for ``EVENT_RETENTION`` so resuming clients can
replay a conversation's events, then a TTL index removes them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from confab_core.mongo import Doc, TenantCollection

EVENT_RETENTION = timedelta(days=7)


def record(
    event_id: str,
    topic: str,
    conversation_id: str,
    event_seq: int,
    payload: bytes,
    headers: list[tuple[str, bytes]],
    now: datetime,
) -> Doc:
    return {
        "_id": event_id,
        "topic": topic,
        "conversation_id": conversation_id,
        "event_seq": event_seq,
        "payload": payload,
        "headers": [[k, v] for k, v in headers],
        "created_at": now,
        "published": False,
    }


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
            record(event_id, topic, conversation_id, event_seq, payload, headers, now),
            session=session,
        )

    async def add_many(self, records: list[Doc], session: AsyncClientSession) -> None:
        await self._col.insert_many(records, session=session)

    async def page(self, conversation_id: str, after_event_seq: int, limit: int) -> list[Doc]:
        cursor = self._col.find(
            {"conversation_id": conversation_id, "event_seq": {"$gt": after_event_seq}},
            sort=[("event_seq", 1)],
            limit=limit,
            projection={"payload": 1, "event_seq": 1},
        )
        return [doc async for doc in cursor]


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
        cursor = (
            self._col.find({"published": False})
            .sort([("conversation_id", 1), ("event_seq", 1)])
            .limit(limit)
        )
        return [doc async for doc in cursor]

    async def mark_published(self, ids: list[str], now: datetime) -> None:
        await self._col.update_many(
            {"_id": {"$in": ids}}, {"$set": {"published": True, "published_at": now}}
        )
