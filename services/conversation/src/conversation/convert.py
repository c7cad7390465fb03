"""Storage records to protobuf messages."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from google.protobuf.timestamp_pb2 import Timestamp

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import events_pb2, files_pb2
from confab.conversation.v1 import support_pb2 as spb
from conversation.handlers.ticketflow import STATUS_TO_PROTO
from conversation.storage.conversations import Conversation
from conversation.storage.files import FileRecord, FileStatus
from conversation.storage.members import Member
from conversation.storage.messages import Message
from conversation.storage.tickets import Ticket
from conversation.storage.users import UserProfile

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
        agent_id=conv.agent_id,
    )


def reactions(message: Message) -> list[pb.Reaction]:
    return [
        pb.Reaction(emoji=r.emoji, count=len(r.users), user_ids=r.users[:MAX_REACTORS_SHOWN])
        for r in message.reactions
        if r.users
    ]


def message(m: Message) -> pb.Message:
    f = m.file
    return pb.Message(
        id=m.id,
        conversation_id=m.conversation_id,
        seq=m.seq,
        sender_id=m.sender_id,
        sender_name=m.sender_name,
        kind=cast(pb.MessageKind.ValueType, m.kind),
        text=m.text,
        client_msg_id=m.client_msg_id,
        created_at=ts(m.created_at),
        thread_root_id=m.thread_root_id,
        edited_at=ts(m.edited_at),
        deleted=m.deleted,
        reply_count=m.reply_count,
        last_reply_at=ts(m.last_reply_at),
        mentions=m.mentions,
        mentions_all=m.mentions_all,
        reactions=reactions(m),
        file=(
            pb.FileAttachment(
                url=f.url,
                name=f.name,
                content_type=f.content_type,
                size_bytes=f.size_bytes,
                file_id=f.file_id,
            )
            if f
            else None
        ),
        sender_role=m.sender_role,
        ticket_id=m.ticket_id,
        stream_state=cast(pb.StreamState.ValueType, m.stream_state),
    )


def member(m: Member, profile: UserProfile | None) -> pb.Member:
    return pb.Member(
        user_id=m.user_id,
        role=_role(m.role),
        joined_at=ts(m.joined_at),
        last_read_seq=m.last_read_seq,
        display_name=profile.display_name if profile else "",
        email=profile.email if profile else "",
    )


def ticket_status(status: str) -> spb.TicketStatus.ValueType:
    return cast(
        spb.TicketStatus.ValueType,
        STATUS_TO_PROTO.get(status, spb.TICKET_STATUS_UNSPECIFIED),
    )


def ticket(t: Ticket) -> spb.Ticket:
    """The ticket's own fields; names and the SLA view are filled by the handler."""
    return spb.Ticket(
        id=t.id,
        conversation_id=t.conversation_id,
        subject=t.subject,
        category=t.category,
        priority=cast(spb.TicketPriority.ValueType, t.priority),
        tags=t.tags,
        requester_id=t.requester_id,
        assignee_id=t.assignee_id,
        team_id=t.team_id,
        context=pb.ContextLink(kind=t.context[0], id=t.context[1]) if t.context else None,
        status=ticket_status(t.status),
        escalated=t.escalated,
        escalated_at=ts(t.escalated_at),
        platform=t.platform,
        source=spb.MessageRef(conversation_id=t.source[0], message_id=t.source[1])
        if t.source
        else None,
        created_at=ts(t.created_at),
        updated_at=ts(t.updated_at),
        queued_at=ts(t.queued_at),
        first_response_at=ts(t.first_response_at),
        resolved_at=ts(t.resolved_at),
        closed_at=ts(t.closed_at),
        version=t.version,
        handoff_reason=cast(spb.HandoffReason.ValueType, t.handoff_reason),
        handoff_summary=t.handoff_summary,
        handed_off_at=ts(t.handed_off_at),
        agent_id=t.agent_id,
    )


FILE_STATUS_TO_PROTO: dict[FileStatus, files_pb2.FileStatus.ValueType] = {
    FileStatus.UPLOADING: files_pb2.FILE_STATUS_UPLOADING,
    FileStatus.PENDING: files_pb2.FILE_STATUS_PENDING,
    FileStatus.CLEAN: files_pb2.FILE_STATUS_CLEAN,
    FileStatus.INFECTED: files_pb2.FILE_STATUS_INFECTED,
    FileStatus.REJECTED: files_pb2.FILE_STATUS_REJECTED,
    FileStatus.DELETED: files_pb2.FILE_STATUS_DELETED,
}


def file(f: FileRecord) -> files_pb2.File:
    return files_pb2.File(
        id=f.id,
        conversation_id=f.conversation_id,
        uploader_id=f.uploader_id,
        name=f.name,
        content_type=f.content_type,
        kind=f.kind,
        size_bytes=f.size_bytes,
        status=FILE_STATUS_TO_PROTO[f.status],
        width=f.width,
        height=f.height,
        has_thumbnail=f.has_thumbnail,
        has_preview=f.has_preview,
        download_only=f.download_only,
        message_id=f.message_id,
        client_id=f.client_id,
        sha256=f.sha256,
        created_at=ts(f.created_at),
        updated_at=ts(f.updated_at),
    )


def file_updated(f: FileRecord) -> events_pb2.ConversationEvent:
    """A file's FileUpdated event. Every member hears it (event_seq is gapless per
    conversation), but an unattached file is still its uploader's draft, hidden
    from the others: its event leaves out the name, hash and client id."""
    out = file(f)
    if not f.message_id:
        for field in ("name", "sha256", "client_id"):
            out.ClearField(field)
    return events_pb2.ConversationEvent(file_updated=files_pb2.FileUpdated(file=out))
