"""Protobuf messages to the public JSON shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from google.protobuf.message import Message as PbMessage
from google.protobuf.timestamp_pb2 import Timestamp

from confab.bot.v1 import bot_pb2
from confab.conversation.v1 import conversation_pb2 as cpb
from confab.notification.v1 import notification_pb2 as npb
from confab.presence.v1 import presence_pb2 as ppb
from gateway import schemas


def enum_name(enum_type: Any, value: int, prefix: str) -> str:
    return cast(str, enum_type.Name(value)).removeprefix(prefix).lower()


KIND_BY_NAME: dict[str, int] = {
    name.removeprefix("CONVERSATION_KIND_").lower(): value
    for name, value in cpb.ConversationKind.items()
    if value
}
MESSAGE_KIND_BY_NAME: dict[str, int] = {
    name.removeprefix("MESSAGE_KIND_").lower(): value
    for name, value in cpb.MessageKind.items()
    if value
}


def _dt(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def _set(msg: PbMessage, field: str) -> bool:
    return msg.HasField(field)


def conversation(c: cpb.Conversation) -> schemas.ConversationOut:
    role = enum_name(cpb.MemberRole, c.my_role, "MEMBER_ROLE_") if c.my_role else None
    return schemas.ConversationOut(
        id=c.id,
        kind=cast(
            schemas.ConversationKindName,
            enum_name(cpb.ConversationKind, c.kind, "CONVERSATION_KIND_"),
        ),
        title=c.title,
        description=c.description,
        topic=c.topic,
        created_by=c.created_by,
        created_at=_dt(c.created_at),
        last_activity_at=_dt(c.last_activity_at),
        last_seq=c.last_seq,
        member_count=c.member_count,
        context=schemas.ContextLink(kind=c.context.kind, id=c.context.id)
        if _set(c, "context")
        else None,
        archived=c.archived,
        unread_count=c.unread_count,
        last_read_seq=c.last_read_seq,
        my_role=cast(schemas.MemberRoleName | None, role),
    )


def message(m: cpb.Message) -> schemas.MessageOut:
    return schemas.MessageOut(
        id=m.id,
        conversation_id=m.conversation_id,
        seq=m.seq,
        sender_id=m.sender_id,
        sender_name=m.sender_name,
        kind=cast(schemas.MessageKindName, enum_name(cpb.MessageKind, m.kind, "MESSAGE_KIND_")),
        text=m.text,
        client_msg_id=m.client_msg_id,
        created_at=_dt(m.created_at),
        thread_root_id=m.thread_root_id or None,
    )


def member(m: cpb.Member) -> schemas.MemberOut:
    return schemas.MemberOut(
        user_id=m.user_id,
        role=cast(schemas.MemberRoleName, enum_name(cpb.MemberRole, m.role, "MEMBER_ROLE_")),
        display_name=m.display_name,
        joined_at=_dt(m.joined_at),
        last_read_seq=m.last_read_seq,
    )


def presence(p: ppb.UserPresence) -> schemas.PresenceOut:
    status = enum_name(ppb.PresenceStatus, p.status, "PRESENCE_STATUS_") if p.status else "offline"
    return schemas.PresenceOut(
        user_id=p.user_id,
        status=cast(Any, status),
        device_count=p.device_count,
        last_active_at=_dt(p.last_active_at) if _set(p, "last_active_at") else None,
    )


def notification(n: npb.Notification) -> schemas.NotificationOut:
    return schemas.NotificationOut(
        id=n.id,
        reason=cast(Any, enum_name(npb.NotificationReason, n.reason, "NOTIFICATION_REASON_")),
        conversation_id=n.conversation_id,
        message_id=n.message_id,
        preview=n.preview,
        email_status=cast(Any, enum_name(npb.DeliveryStatus, n.email_status, "DELIVERY_STATUS_")),
        created_at=_dt(n.created_at),
    )


def summary(s: bot_pb2.SummarizeConversationResponse) -> schemas.SummaryOut:
    return schemas.SummaryOut(summary=s.summary, model_available=s.model_available)
