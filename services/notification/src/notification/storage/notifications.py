"""Notification records: the claim that makes delivery at most once."""

from __future__ import annotations

from datetime import datetime

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from confab.notification.v1 import notification_pb2 as pb
from confab_core.mongo import Doc, TenantCollection


class NotificationRepo:
    def __init__(self, col: TenantCollection) -> None:
        self._col = col

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
        doc: Doc = {
            # Time-ordered, so records created within one millisecond still
            # list newest first.
            "_id": str(ObjectId()),
            "user_id": user_id,
            "conversation_id": conversation_id,
            "message_id": message_id,
            "reason": reason,
            "preview": preview,
            # The conversation event the preview was taken from: a later edit
            # or delete replaces it, an older one never does.
            "preview_event_seq": event_seq,
            "email": email,
            "email_status": pb.DELIVERY_STATUS_PENDING,
            "email_error": "",
            "created_at": now,
            "updated_at": now,
        }
        try:
            await self._col.insert_one(doc)
        except DuplicateKeyError:
            return None
        return doc

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
        result = await self._col.update_many(
            {
                "message_id": message_id,
                "$or": [
                    {"preview_event_seq": {"$lt": event_seq}},
                    # Records claimed before previews were tracked by event.
                    {"preview_event_seq": {"$exists": False}},
                ],
            },
            {"$set": {"preview": preview, "preview_event_seq": event_seq, "updated_at": now}},
        )
        return result.modified_count

    async def list_for_user(self, user_id: str, limit: int) -> list[Doc]:
        cursor = self._col.find(
            {"user_id": user_id}, sort=[("created_at", -1), ("_id", -1)], limit=limit
        )
        return [doc async for doc in cursor]

    async def get_for_message(self, user_id: str, message_id: str) -> Doc | None:
        return await self._col.find_one({"user_id": user_id, "message_id": message_id})

    async def page_for_user(self, user_id: str, after_id: str, limit: int) -> list[Doc]:
        """The user's notifications by id (time-ordered), past ``after_id`` (export)."""
        cursor = self._col.find(
            {"user_id": user_id, "_id": {"$gt": after_id}}, sort=[("_id", 1)], limit=limit
        )
        return [doc async for doc in cursor]

    async def delete_for_user(self, user_id: str) -> int:
        """Erasure: the user's notifications, previews and addresses with them."""
        return (await self._col.delete_many({"user_id": user_id})).deleted_count

    async def delete_all(self) -> int:
        """Tenant erasure."""
        return (await self._col.delete_many({})).deleted_count

    async def delete_before(self, cutoff: datetime) -> int:
        """Retention: notifications created before ``cutoff``."""
        return (await self._col.delete_many({"created_at": {"$lt": cutoff}})).deleted_count
