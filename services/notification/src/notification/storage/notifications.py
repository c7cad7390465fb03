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

    async def list_for_user(self, user_id: str, limit: int) -> list[Doc]:
        cursor = self._col.find(
            {"user_id": user_id}, sort=[("created_at", -1), ("_id", -1)], limit=limit
        )
        return [doc async for doc in cursor]

    async def get_for_message(self, user_id: str, message_id: str) -> Doc | None:
        return await self._col.find_one({"user_id": user_id, "message_id": message_id})
