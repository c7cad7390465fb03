"""The transactional outbox, which doubles as each conversation's event log.

Events are written with the change they describe. The relay publishes them and
marks them published; they stay for ``EVENT_RETENTION`` so resuming clients can
replay a conversation's events, then a TTL index removes them.

Payloads carry message text and names, so they are sealed here with the
tenant's current data key (confab_core.sealed_events) and stay sealed all the
way to the consumers: the relay publishes the stored bytes as they are, with the
tenant and event id headers written beside them. Callers of this module see
plaintext payloads only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from confab.conversation.v1 import events_pb2
from confab_core.crypto import KeySource, TenantKeys
from confab_core.mongo import Doc, TenantCollection
from confab_core.sealed_events import event_headers, open_event, seal_event

EVENT_RETENTION = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """One event, serialized, on its way to ``topic``.

    ``message_id``: the message whose content the payload carries, if any, so
    an edit or a delete can rewrite every retained copy of that content.
    """

    event_id: str
    topic: str
    conversation_id: str
    event_seq: int
    payload: bytes
    headers: list[tuple[str, bytes]]
    created_at: datetime
    message_id: str = ""
    # False for an event that carries no content (TenantSettingsChanged): its
    # consumers hold no tenant keys.
    sealed: bool = True


@dataclass(frozen=True, slots=True)
class StoredEvent:
    event_seq: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class PendingRecord:
    """A record the relay has yet to publish (any tenant)."""

    id: str
    topic: str
    conversation_id: str
    event_seq: int
    payload: bytes
    headers: list[tuple[str, bytes]]


def carried_message_id(payload: bytes) -> str:
    """The message whose content an event payload carries ("" for none)."""
    event = events_pb2.ConversationEvent()
    event.ParseFromString(payload)
    kind = event.WhichOneof("payload")
    if kind == "message_created":
        return event.message_created.message.id
    if kind == "message_updated":
        return event.message_updated.message.id
    if kind == "message_deleted":
        return event.message_deleted.message.id
    if kind == "reaction_changed":
        return event.reaction_changed.message_id
    return ""


def opened_payload(keys: TenantKeys, doc: Doc) -> bytes:
    """A stored record's serialized event. Records written before sealing (no
    ``sealed`` flag) hold it in the clear until they expire or are rewritten."""
    payload = bytes(doc["payload"])
    if not doc.get("sealed"):
        return payload
    return open_event(keys, str(doc["_id"]), payload)


def _resealed(
    keys: TenantKeys, doc: Doc, rewrite: Callable[[bytes], bytes | None]
) -> tuple[Doc, Doc] | None:
    """The update that stores ``rewrite`` of a record's event, sealed again with the
    current key; None when the rewrite leaves it as it is."""
    payload = rewrite(opened_payload(keys, doc))
    if payload is None:
        return None
    sealed = seal_event(keys.current, keys.tenant_id, str(doc["_id"]), payload)
    return {"_id": doc["_id"]}, {"$set": {"payload": sealed, "sealed": True}}


def _document(r: OutboxRecord, keys: TenantKeys) -> Doc:
    tenant = keys.tenant_id
    headers = [*r.headers, *event_headers(tenant, r.event_id)]
    doc: Doc = {
        "_id": r.event_id,
        "topic": r.topic,
        "conversation_id": r.conversation_id,
        "event_seq": r.event_seq,
        "payload": seal_event(keys.current, tenant, r.event_id, r.payload)
        if r.sealed
        else r.payload,
        "sealed": r.sealed,
        "headers": [[k, v] for k, v in headers],
        "created_at": r.created_at,
        "published": False,
    }
    if r.message_id:
        doc["message_id"] = r.message_id
    return doc


class OutboxWriter:
    def __init__(
        self,
        col: TenantCollection,
        keys: KeySource,
        session: AsyncClientSession | None = None,
    ) -> None:
        self._col = col
        self._keys = keys
        self._session = session

    async def _tenant_keys(self) -> TenantKeys:
        return await self._keys.keys(self._col.tenant_id)

    async def add_many(self, records: list[OutboxRecord]) -> None:
        keys = await self._tenant_keys()
        await self._col.insert_many([_document(r, keys) for r in records], session=self._session)

    async def page(
        self, conversation_id: str, after_event_seq: int, limit: int
    ) -> list[StoredEvent]:
        cursor = self._col.find(
            {"conversation_id": conversation_id, "event_seq": {"$gt": after_event_seq}},
            sort=[("event_seq", 1)],
            limit=limit,
            projection={"payload": 1, "event_seq": 1, "sealed": 1},
            session=self._session,
        )
        docs = [d async for d in cursor]
        if not docs:
            return []
        keys = await self._tenant_keys()
        return [StoredEvent(int(d["event_seq"]), opened_payload(keys, d)) for d in docs]

    async def rewrite_message(
        self, conversation_id: str, message_id: str, rewrite: Callable[[bytes], bytes | None]
    ) -> int:
        """Replaces the payload of every retained event carrying ``message_id``'s
        content by ``rewrite(payload)`` (None: leave it); how many changed.

        Run in the transaction of the edit or delete, so neither a replay nor the
        stored log ever holds the content the message no longer has.
        """
        cursor = self._col.find(
            {"conversation_id": conversation_id, "message_id": message_id},
            projection={"payload": 1, "sealed": 1},
            session=self._session,
        )
        docs = [d async for d in cursor]
        if not docs:
            return 0
        keys = await self._tenant_keys()
        updates = [u for doc in docs if (u := _resealed(keys, doc, rewrite)) is not None]
        await self._col.update_each(updates, session=self._session)
        return len(updates)

    async def rewrite_messages(
        self, conversation_id: str, rewriters: Mapping[str, Callable[[bytes], bytes | None]]
    ) -> int:
        """``rewrite_message`` for many messages at once (by message id): one read,
        one bulk write."""
        if not rewriters:
            return 0
        cursor = self._col.find(
            {"conversation_id": conversation_id, "message_id": {"$in": list(rewriters)}},
            projection={"payload": 1, "message_id": 1, "sealed": 1},
            session=self._session,
        )
        docs = [d async for d in cursor]
        if not docs:
            return 0
        keys = await self._tenant_keys()
        updates = [
            u
            for doc in docs
            if (u := _resealed(keys, doc, rewriters[str(doc["message_id"])])) is not None
        ]
        await self._col.update_each(updates, session=self._session)
        return len(updates)

    async def purge_messages(self, conversation_id: str, message_ids: list[str]) -> int:
        """Hard-deletes the retained events carrying these messages' content."""
        if not message_ids:
            return 0
        result = await self._col.delete_many(
            {"conversation_id": conversation_id, "message_id": {"$in": message_ids}},
            session=self._session,
        )
        return result.deleted_count

    async def purge_conversation(self, conversation_id: str) -> int:
        result = await self._col.delete_many(
            {"conversation_id": conversation_id, "published": True}, session=self._session
        )
        return result.deleted_count

    async def purge_before(self, conversation_id: str, cutoff: datetime) -> int:
        """Hard-deletes the conversation's published events older than ``cutoff``."""
        result = await self._col.delete_many(
            {"conversation_id": conversation_id, "published": True, "created_at": {"$lt": cutoff}},
            session=self._session,
        )
        return result.deleted_count

    async def scrub_page(
        self, after_id: str, limit: int, rewrite: Callable[[bytes], bytes | None]
    ) -> ScrubbedPage:
        """Rewrites a page of the tenant's retained events (by id, past ``after_id``)
        with ``rewrite(payload)`` (None: leave it)."""
        cursor = self._col.find(
            {"_id": {"$gt": after_id}},
            sort=[("_id", 1)],
            limit=limit,
            projection={"payload": 1, "sealed": 1},
            session=self._session,
        )
        docs = [d async for d in cursor]
        if not docs:
            return ScrubbedPage(after_id, 0, 0)
        keys = await self._tenant_keys()
        updates = [u for doc in docs if (u := _resealed(keys, doc, rewrite)) is not None]
        await self._col.update_each(updates, session=self._session)
        return ScrubbedPage(str(docs[-1]["_id"]), len(docs), len(updates))


class OutboxReader:
    """The relay's view: all tenants, because publishing is tenant-blind.

    This is the one cross-tenant access in the service; it only moves sealed
    records, whose headers name their tenant, and never opens them.
    """

    def __init__(self, col: AsyncCollection[Doc]) -> None:
        self._col = col

    async def pending(self, limit: int) -> list[PendingRecord]:
        # Sorting by (conversation, event_seq) means a batch cut by the limit
        # still holds each conversation's oldest events first.
        cursor = (
            self._col.find({"published": False})
            .sort([("conversation_id", 1), ("event_seq", 1)])
            .limit(limit)
        )
        return [
            PendingRecord(
                id=str(d["_id"]),
                topic=str(d["topic"]),
                conversation_id=str(d["conversation_id"]),
                event_seq=int(d["event_seq"]),
                payload=bytes(d["payload"]),
                headers=[(str(k), bytes(v)) for k, v in d["headers"]],
            )
            async for d in cursor
        ]

    async def mark_published(self, ids: list[str], now: datetime) -> None:
        await self._col.update_many(
            {"_id": {"$in": ids}}, {"$set": {"published": True, "published_at": now}}
        )


@dataclass(frozen=True, slots=True)
class ScrubbedPage:
    """One page of a tenant's event log walked by an erasure: where it ended,
    how many records it read and how many it rewrote."""

    last_id: str
    read: int
    rewritten: int
