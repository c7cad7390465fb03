"""Notification records: the claim that makes delivery at most once.

The preview (message text) and the recipient's email are sealed with the
tenant's data key, the same keys conversation seals with (KeyService): callers
of this module only ever see them opened, MongoDB only sealed. The preview's
associated data names the message rather than the record: one write sets it on
every recipient's record, and it is the same text for all of them. Records
written before encryption hold plain strings, which read as they are.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from confab.notification.v1 import notification_pb2 as pb
from confab_core.crypto import KeySource, TenantKeys, aad, seal, unseal
from confab_core.mongo import Doc, TenantCollection

COLLECTION = "notifications"


def _seal(keys: TenantKeys, doc_id: str, field: str, value: str) -> bytes | str:
    if not value:
        return value
    where = aad(keys.tenant_id, COLLECTION, doc_id, field)
    return seal(keys.current, value.encode("utf-8"), where)


def _open(keys: TenantKeys, doc_id: str, field: str, stored: Any) -> str:
    if isinstance(stored, bytes):
        where = aad(keys.tenant_id, COLLECTION, doc_id, field)
        return unseal(keys, stored, where).decode("utf-8")
    return "" if stored is None else str(stored)


def _opened(keys: TenantKeys, doc: Doc) -> Doc:
    return {
        **doc,
        "preview": _open(keys, str(doc["message_id"]), "preview", doc.get("preview")),
        "email": _open(keys, str(doc["_id"]), "email", doc.get("email")),
    }


class NotificationRepo:
    def __init__(self, col: TenantCollection, keys: KeySource) -> None:
        self._col = col
        self._keys = keys

    async def _tenant_keys(self) -> TenantKeys:
        return await self._keys.keys(self._col.tenant_id)

    async def claim(
        self,
        *,
        user_id: str,
        conversation_id: str,
        message_id: str,
        reason: int,
        preview: str,
        event_seq: int,
        email: str,
        now: datetime,
    ) -> Doc | None:
        """Inserts a PENDING record, or returns None when one already exists.

        The unique (tenant_id, user_id, message_id) index makes the insert the
        claim: whoever inserts first sends, a redelivery finds the record and
        sends nothing.
        """
        keys = await self._tenant_keys()
        record_id = str(ObjectId())
        doc: Doc = {
            # Time-ordered, so records created within one millisecond still
            # list newest first.
            "_id": record_id,
            "user_id": user_id,
            "conversation_id": conversation_id,
            "message_id": message_id,
            "reason": reason,
            "preview": _seal(keys, message_id, "preview", preview),
            # The conversation event the preview was taken from: a later edit
            # or delete replaces it, an older one never does.
            "preview_event_seq": event_seq,
            "email": _seal(keys, record_id, "email", email),
            "email_status": pb.DELIVERY_STATUS_PENDING,
            "email_error": "",
            "created_at": now,
            "updated_at": now,
        }
        try:
            await self._col.insert_one(doc)
        except DuplicateKeyError:
            return None
        return {**doc, "preview": preview, "email": email}

    async def set_status(self, record_id: str, status: int, error: str, now: datetime) -> None:
        await self._col.update_one(
            {"_id": record_id},
            {"$set": {"email_status": status, "email_error": error, "updated_at": now}},
        )

    async def set_preview(
        self, message_id: str, preview: str, event_seq: int, now: datetime
    ) -> int:
        """Sets the preview of every notification of ``message_id`` (one write for all
        recipients) unless it already comes from event ``event_seq`` or a later one, so
        a redelivered or late event is a no-op. Returns how many records changed."""
        sealed = _seal(await self._tenant_keys(), message_id, "preview", preview)
        result = await self._col.update_many(
            {
                "message_id": message_id,
                "$or": [
                    {"preview_event_seq": {"$lt": event_seq}},
                    # Records claimed before previews were tracked by event.
                    {"preview_event_seq": {"$exists": False}},
                ],
            },
            {"$set": {"preview": sealed, "preview_event_seq": event_seq, "updated_at": now}},
        )
        return result.modified_count

    async def list_for_user(self, user_id: str, limit: int) -> list[Doc]:
        cursor = self._col.find(
            {"user_id": user_id}, sort=[("created_at", -1), ("_id", -1)], limit=limit
        )
        docs = [doc async for doc in cursor]
        if not docs:
            return []
        keys = await self._tenant_keys()
        return [_opened(keys, doc) for doc in docs]

    async def get_for_message(self, user_id: str, message_id: str) -> Doc | None:
        doc = await self._col.find_one({"user_id": user_id, "message_id": message_id})
        return None if doc is None else _opened(await self._tenant_keys(), doc)

    async def page_for_user(self, user_id: str, after_id: str, limit: int) -> list[Doc]:
        """The user's notifications by id (time-ordered), past ``after_id`` (export)."""
        cursor = self._col.find(
            {"user_id": user_id, "_id": {"$gt": after_id}}, sort=[("_id", 1)], limit=limit
        )
        docs = [doc async for doc in cursor]
        if not docs:
            return []
        keys = await self._tenant_keys()
        return [_opened(keys, doc) for doc in docs]

    async def delete_for_user(self, user_id: str) -> int:
        """Erasure: the user's notifications, previews and addresses with them."""
        return (await self._col.delete_many({"user_id": user_id})).deleted_count

    async def delete_all(self) -> int:
        """Tenant erasure."""
        return (await self._col.delete_many({})).deleted_count

    async def delete_before(self, cutoff: datetime) -> int:
        """Retention: notifications created before ``cutoff``."""
        return (await self._col.delete_many({"created_at": {"$lt": cutoff}})).deleted_count
