"""Protobuf messages to the public JSON shapes."""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, cast

from google.protobuf.message import Message as PbMessage
from google.protobuf.timestamp_pb2 import Timestamp

from confab.bot.v1 import bot_pb2
from confab.conversation.v1 import conversation_pb2 as cpb
from confab.conversation.v1 import events_pb2 as cev
from confab.notification.v1 import notification_pb2 as npb
from confab.presence.v1 import events_pb2 as pev
from confab.presence.v1 import presence_pb2 as ppb
from gateway import schemas, ticketconvert
from gateway.clients.files import file_out


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


def _dt_or_none(msg: PbMessage, field: str) -> datetime | None:
    return _dt(getattr(msg, field)) if msg.HasField(field) else None


def text_html(text: str) -> str:
    """Message text made safe to insert as HTML.

    Everything is escaped, quotes included, so the result can neither open a
    tag nor leave an attribute value; nothing is linkified or formatted.
    """
    return html.escape(text, quote=True)


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
        mention_count=c.mention_count,
        last_event_seq=c.last_event_seq,
        agent_id=c.agent_id or None,
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
        text_html=text_html(m.text),
        client_msg_id=m.client_msg_id,
        created_at=_dt(m.created_at),
        thread_root_id=m.thread_root_id or None,
        edited_at=_dt_or_none(m, "edited_at"),
        deleted=m.deleted,
        reply_count=m.reply_count,
        last_reply_at=_dt_or_none(m, "last_reply_at"),
        mentions=list(m.mentions),
        mentions_all=m.mentions_all,
        reactions=reactions(m.reactions),
        file=file(m.file) if _set(m, "file") else None,
        sender_role=cast(schemas.SenderRoleName, m.sender_role) if m.sender_role else None,
        ticket_id=m.ticket_id or None,
        stream_state=(
            cast(
                schemas.StreamStateName,
                enum_name(cpb.StreamState, m.stream_state, "STREAM_STATE_"),
            )
            if m.stream_state
            else None
        ),
    )


def reactions(rs: Iterable[cpb.Reaction]) -> list[schemas.ReactionOut]:
    return [
        schemas.ReactionOut(emoji=r.emoji, count=r.count, user_ids=list(r.user_ids)) for r in rs
    ]


def file(f: cpb.FileAttachment) -> schemas.FileOut:
    return schemas.FileOut(
        file_id=f.file_id or None,
        url=f.url,
        name=f.name,
        content_type=f.content_type,
        size_bytes=f.size_bytes,
    )


def file_in(f: schemas.FileIn) -> cpb.FileAttachment:
    if f.file_id is not None:
        return cpb.FileAttachment(file_id=f.file_id)
    return cpb.FileAttachment(
        url=f.url or "", name=f.name or "", content_type=f.content_type, size_bytes=f.size_bytes
    )


def member(m: cpb.Member) -> schemas.MemberOut:
    return schemas.MemberOut(
        user_id=m.user_id,
        role=cast(schemas.MemberRoleName, enum_name(cpb.MemberRole, m.role, "MEMBER_ROLE_")),
        display_name=m.display_name,
        joined_at=_dt(m.joined_at),
        last_read_seq=m.last_read_seq,
    )


def _status(value: int, default: str) -> Any:
    return enum_name(ppb.PresenceStatus, value, "PRESENCE_STATUS_") if value else default


PRESENCE_STATUS_BY_NAME: dict[str, int] = {
    name.removeprefix("PRESENCE_STATUS_").lower(): value
    for name, value in ppb.PresenceStatus.items()
    if value
}


def presence(p: ppb.UserPresence) -> schemas.PresenceOut:
    return schemas.PresenceOut(
        user_id=p.user_id,
        status=_status(p.status, "offline"),
        device_count=p.device_count,
        last_active_at=_dt(p.last_active_at) if _set(p, "last_active_at") else None,
        custom_status=p.custom_status,
        custom_status_expires_at=_dt(p.custom_status_expires_at)
        if _set(p, "custom_status_expires_at")
        else None,
        chosen_status=_status(p.chosen_status, "online"),
    )


def typing(t: pev.Typing) -> schemas.TypingOut:
    return schemas.TypingOut(
        conversation_id=t.conversation_id,
        user_id=t.user_id,
        typing=t.typing,
        expires_at=_dt(t.expires_at) if _set(t, "expires_at") else None,
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


# Socket.IO event names by ConversationEvent payload. conversation:created goes
# to each member's user room; every other one to the conversation's room.
EVENT_NAMES: dict[str, str] = {
    "message_created": "message:new",
    "conversation_created": "conversation:created",
    "read_marker_changed": "receipt:updated",
    "message_updated": "message:updated",
    "message_deleted": "message:deleted",
    "reaction_changed": "reaction:updated",
    "conversation_updated": "conversation:updated",
    "members_added": "member:added",
    "member_removed": "member:removed",
    "conversation_deleted": "conversation:deleted",
    "member_role_changed": "member:updated",
    "member_muted": "member:muted",
    "member_unmuted": "member:unmuted",
    "member_banned": "member:banned",
    "member_unbanned": "member:unbanned",
    # Support desk: each also goes to the rooms of TICKET_ROOMS (realtime.fanout).
    "ticket_updated": "ticket:updated",
    "ticket_assigned": "ticket:assigned",
    "ticket_escalated": "ticket:escalated",
    "sla_warning": "sla:warning",
    "sla_breached": "sla:breached",
    "queue_updated": "queue:updated",
    # A file's scan finished, its previews are ready, or it was deleted.
    "file_updated": "file:updated",
}
# Moderation events: the conversation's room and the affected user's own room.
SANCTION_EVENTS = frozenset({"member_muted", "member_unmuted", "member_banned", "member_unbanned"})


def event(ev: cev.ConversationEvent) -> schemas.EventOut | None:
    """The socket event a conversation event becomes; None for a payload this
    gateway does not know (a newer producer), which clients could not use either.

    Every payload carries ``conversation_id``, ``event_seq`` and ``actor_id``, so
    a client can resume by event seq whatever the event.
    """
    kind = ev.WhichOneof("payload")
    if kind is None or kind not in EVENT_NAMES:
        return None
    base: dict[str, Any] = {
        "conversation_id": ev.conversation_id,
        "event_seq": ev.event_seq,
        "actor_id": ev.actor_id,
    }
    data: dict[str, Any]
    if kind == "message_created":
        data = {**message(ev.message_created.message).model_dump(mode="json"), **base}
    elif kind == "message_updated":
        data = {**message(ev.message_updated.message).model_dump(mode="json"), **base}
    elif kind == "message_deleted":
        data = {**message(ev.message_deleted.message).model_dump(mode="json"), **base}
    elif kind == "conversation_created":
        data = {
            **conversation(ev.conversation_created.conversation).model_dump(mode="json"),
            **base,
        }
    elif kind == "conversation_updated":
        data = {
            **conversation(ev.conversation_updated.conversation).model_dump(mode="json"),
            **base,
        }
    elif kind == "read_marker_changed":
        marker = ev.read_marker_changed
        data = {**base, "user_id": marker.user_id, "last_read_seq": marker.last_read_seq}
    elif kind == "reaction_changed":
        rc = ev.reaction_changed
        data = {
            **base,
            "message_id": rc.message_id,
            "emoji": rc.emoji,
            "user_id": rc.user_id,
            "added": rc.added,
            "reactions": [r.model_dump(mode="json") for r in reactions(rc.reactions)],
        }
    elif kind == "members_added":
        data = {
            **base,
            "members": [member(m).model_dump(mode="json") for m in ev.members_added.members],
        }
    elif kind == "member_removed":
        removed = ev.member_removed
        data = {**base, "user_id": removed.user_id, "left": removed.left}
    elif kind == "member_role_changed":
        data = {**base, "member": member(ev.member_role_changed.member).model_dump(mode="json")}
    elif kind in ("member_muted", "member_banned"):
        imposed = ev.member_muted if kind == "member_muted" else ev.member_banned
        expires = imposed.expires_at.ToDatetime(UTC) if imposed.HasField("expires_at") else None
        data = {
            **base,
            "user_id": imposed.user_id,
            "tenant_wide": imposed.tenant_wide,
            "expires_at": expires.isoformat() if expires else None,
        }
    elif kind in TICKET_EVENTS:
        data = {**base, **_ticket_event(ev, kind)}
    elif kind == "file_updated":
        # The REST shape of the file (GET .../files/{id}, without its URLs).
        data = {**file_out(ev.file_updated.file).model_dump(mode="json"), **base}
    elif kind in ("member_unmuted", "member_unbanned"):
        lifted = ev.member_unmuted if kind == "member_unmuted" else ev.member_unbanned
        data = {**base, "user_id": lifted.user_id, "tenant_wide": lifted.tenant_wide}
    else:  # conversation_deleted
        data = dict(base)
    return schemas.EventOut(
        event=EVENT_NAMES[kind],
        event_seq=ev.event_seq,
        conversation_id=ev.conversation_id,
        data=data,
    )


TICKET_EVENTS = frozenset(
    {"ticket_updated", "ticket_assigned", "ticket_escalated", "sla_warning", "sla_breached"}
    | {"queue_updated"}
)


def _ticket_event(ev: cev.ConversationEvent, kind: str) -> dict[str, Any]:
    if kind == "ticket_updated":
        u = ev.ticket_updated
        return {
            "ticket": ticketconvert.ticket_json(u.ticket),
            "change": u.change,
            "previous_status": ticketconvert.status_name(u.previous_status),
        }
    if kind == "ticket_assigned":
        a = ev.ticket_assigned
        return {
            "ticket": ticketconvert.ticket_json(a.ticket),
            "previous_assignee_id": a.previous_assignee_id,
        }
    if kind == "ticket_escalated":
        e = ev.ticket_escalated
        ticket = ticketconvert.ticket_json(e.ticket)
        # Platform staff hear it among tickets of every tenant.
        ticket["tenant_id"] = ev.tenant_id
        return {"ticket": ticket, "reason": e.reason}
    if kind in ("sla_warning", "sla_breached"):
        alert = ev.sla_warning if kind == "sla_warning" else ev.sla_breached
        due = _dt_or_none(alert, "due_at")
        return {
            "ticket": ticketconvert.ticket_json(alert.ticket),
            "metric": ticketconvert.metric_name(alert.metric),
            "due_at": due.isoformat() if due else None,
        }
    q = ev.queue_updated
    return {
        "ticket_id": q.ticket_id,
        "change": q.change,
        "priority": ticketconvert.priority_name(q.priority),
        "team_id": q.team_id,
        "category": q.category,
        "status": ticketconvert.status_name(q.status),
    }
