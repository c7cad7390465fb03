"""MongoDB documents to protobuf messages."""

from __future__ import annotations

from confab.notification.v1 import notification_pb2 as pb
from confab_core.mongo import Doc


def notification(doc: Doc) -> pb.Notification:
    out = pb.Notification(
        id=doc["_id"],
        user_id=doc["user_id"],
        reason=doc["reason"],
        conversation_id=doc["conversation_id"],
        message_id=doc["message_id"],
        preview=doc.get("preview", ""),
        email_status=doc["email_status"],
    )
    out.created_at.FromDatetime(doc["created_at"])
    return out
