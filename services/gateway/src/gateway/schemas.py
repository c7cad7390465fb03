"""The public JSON shapes, shared by REST responses and socket events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# Kept equal to the conversation service's limits (docs/api.md lists them).
MAX_TEXT_CHARS = 4000
MAX_TITLE_CHARS = 200
MAX_ID_CHARS = 128

ConversationKindName = Literal[
    "direct", "group", "public_channel", "private_channel", "support", "ai_assistant"
]
MemberRoleName = Literal["owner", "admin", "member", "observer"]
MessageKindName = Literal["text", "file", "system", "bot"]
Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContextLink(Strict):
    kind: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    id: Id


class CreateConversationIn(Strict):
    kind: ConversationKindName
    title: Annotated[str, StringConstraints(max_length=MAX_TITLE_CHARS)] = ""
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    member_ids: Annotated[list[Id], Field(max_length=1000)] = []
    context: ContextLink | None = None


class SendMessageIn(Strict):
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS)]
    # Made by the client so a retried send is stored once; the gateway makes
    # one when absent, which gives up that guarantee.
    client_msg_id: Id | None = None
    kind: Literal["text", "file"] = "text"
    thread_root_id: Id | None = None


class MarkReadIn(Strict):
    seq: Annotated[int, Field(ge=0)]


class ConversationOut(BaseModel):
    id: str
    kind: ConversationKindName
    title: str
    description: str
    topic: str
    created_by: str
    created_at: datetime
    last_activity_at: datetime
    last_seq: int
    member_count: int
    context: ContextLink | None
    archived: bool
    unread_count: int
    last_read_seq: int
    my_role: MemberRoleName | None


class CreateConversationOut(BaseModel):
    conversation: ConversationOut
    created: bool


class MemberOut(BaseModel):
    user_id: str
    role: MemberRoleName
    display_name: str
    joined_at: datetime
    last_read_seq: int


class MessageOut(BaseModel):
    id: str
    conversation_id: str
    seq: int
    sender_id: str
    sender_name: str
    kind: MessageKindName
    text: str
    client_msg_id: str
    created_at: datetime
    thread_root_id: str | None


class SendMessageOut(BaseModel):
    message: MessageOut
    created: bool


class MessagePage(BaseModel):
    messages: list[MessageOut]
    has_more: bool


class ReadStateOut(BaseModel):
    last_read_seq: int
    unread_count: int


class PresenceOut(BaseModel):
    user_id: str
    status: Literal["online", "away", "busy", "offline"]
    device_count: int
    last_active_at: datetime | None


class NotificationOut(BaseModel):
    id: str
    reason: Literal["offline_message", "mention", "unspecified"]
    conversation_id: str
    message_id: str
    preview: str
    email_status: Literal["pending", "sent", "failed", "skipped", "unspecified"]
    created_at: datetime


class SummaryOut(BaseModel):
    summary: str
    model_available: bool


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody
