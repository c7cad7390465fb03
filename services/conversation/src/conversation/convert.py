"""MongoDB documents to protobuf messages."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from google.protobuf.timestamp_pb2 import Timestamp

from confab.conversation.v1 import conversation_pb2 as pb
from confab_core.mongo import Doc
from conversation.storage.conversations import Conversation
from conversation.storage.members import Member

MAX_REACTORS_SHOWN = 50


def _role(value: int) -> pb.MemberRole.ValueType:
    return cast(pb.MemberRole.ValueType, value)


def ts(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    out = Timestamp()
    out.FromDatetime(value)
    return out


def conversation(
    conv: Conversation, member: Member | None, *, unread: int = 0, mentions: int = 0
) -> pb.Conversation:
    return pb.Conversation(
        id=conv.id,
        kind=cast(pb.ConversationKind.ValueType, conv.kind),
        title=conv.title,
        description=conv.description,
        topic=conv.topic,
        created_by=conv.created_by,
        created_at=ts(conv.created_at),
        last_activity_at=ts(conv.last_activity_at),
        last_seq=conv.last_seq,
        member_count=conv.member_count,
        context=pb.ContextLink(kind=conv.context[0], id=conv.context[1]) if conv.context else None,
        archived=conv.archived,
        unread_count=unread,
        my_role=_role(member.role) if member else pb.MEMBER_ROLE_UNSPECIFIED,
        last_read_seq=member.last_read_seq if member else 0,
        mention_count=mentions,
        last_event_seq=conv.last_event_seq,
    )


def reactions(doc: Doc) -> list[pb.Reaction]:
    return [
        pb.Reaction(
            emoji=r["emoji"], count=len(r["users"]), user_ids=r["users"][:MAX_REACTORS_SHOWN]
        )
        for r in doc.get("reactions", [])
        if r["users"]
    ]


def message(doc: Doc) -> pb.Message:
    file = doc.get("file")
    return pb.Message(
        id=doc["_id"],
        conversation_id=doc["conversation_id"],
        seq=int(doc["seq"]),
        sender_id=doc["sender_id"],
        sender_name=doc.get("sender_name", ""),
        kind=doc["kind"],
        text=doc["text"],
        client_msg_id=doc["client_msg_id"],
        created_at=ts(doc["created_at"]),
        thread_root_id=doc.get("thread_root_id", ""),
        edited_at=ts(doc.get("edited_at")),
        deleted=bool(doc.get("deleted", False)),
        reply_count=int(doc.get("reply_count", 0)),
        last_reply_at=ts(doc.get("last_reply_at")),
        mentions=doc.get("mentions", []),
        mentions_all=bool(doc.get("mentions_all", False)),
        reactions=reactions(doc),
        file=pb.FileAttachment(**file) if file else None,
    )


def member(m: Member, profile: Doc | None) -> pb.Member:
    return pb.Member(
        user_id=m.user_id,
        role=_role(m.role),
        joined_at=ts(m.joined_at),
        last_read_seq=m.last_read_seq,
        display_name=(profile or {}).get("display_name", ""),
        email=(profile or {}).get("email", ""),
    )
