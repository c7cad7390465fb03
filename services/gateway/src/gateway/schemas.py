"""The public JSON shapes, shared by REST responses and socket events."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from confab_core import limits

ConversationKindName = Literal[
    "direct", "group", "public_channel", "private_channel", "support", "ai_assistant"
]
MemberRoleName = Literal["owner", "admin", "member", "observer"]
MessageKindName = Literal["text", "file", "system", "bot"]
SenderRoleName = Literal["super_admin", "tenant_admin", "agent", "member", "system", "bot"]
Id = Annotated[str, StringConstraints(min_length=1, max_length=limits.MAX_ID_CHARS)]
Seq = Annotated[int, Field(ge=0, le=limits.MAX_INT64)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=limits.MAX_TEXT_CHARS)]
# An emoji character or a :short_code:, without spaces.
Emoji = Annotated[
    str, StringConstraints(min_length=1, max_length=limits.MAX_EMOJI_CHARS, pattern=r"^\S+$")
]


def _http_url(value: str) -> str:
    """Only absolute http(s) links: no javascript:, data: or relative URLs."""
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError("url must not contain whitespace or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError as exc:
        raise ValueError("url is malformed") from exc
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("url must be an absolute http or https URL")
    return value


HttpUrl = Annotated[
    str,
    StringConstraints(min_length=1, max_length=limits.MAX_URL_CHARS),
    AfterValidator(_http_url),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContextLink(Strict):
    kind: Annotated[str, StringConstraints(min_length=1, max_length=limits.MAX_CONTEXT_KIND_CHARS)]
    id: Id


class CreateConversationIn(Strict):
    kind: ConversationKindName
    title: Annotated[str, StringConstraints(max_length=limits.MAX_TITLE_CHARS)] = ""
    description: Annotated[str, StringConstraints(max_length=limits.MAX_DESCRIPTION_CHARS)] = ""
    member_ids: Annotated[list[Id], Field(max_length=limits.MAX_MEMBERS_AT_CREATE)] = []
    context: ContextLink | None = None
    # ai_assistant only: a pickable (or the assistant) agent of the tenant's
    # settings; left out, the tenant's assistant agent.
    agent_id: Id | None = None


class FileIn(Strict):
    """Either ``file_id``, a file uploaded to this conversation (the server fills
    in the rest from it), or ``url``, a file hosted elsewhere: Confab keeps the
    link and the metadata given with it."""

    file_id: Id | None = None
    url: HttpUrl | None = None
    name: (
        Annotated[str, StringConstraints(min_length=1, max_length=limits.MAX_FILE_NAME_CHARS)]
        | None
    ) = None
    content_type: Annotated[
        str,
        StringConstraints(
            min_length=3, max_length=limits.MAX_CONTENT_TYPE_CHARS, pattern=r"^\S+/\S+$"
        ),
    ] = "application/octet-stream"
    size_bytes: Annotated[int, Field(ge=0, le=limits.MAX_FILE_BYTES)] = 0

    @model_validator(mode="after")
    def _id_or_link(self) -> Self:
        if (self.file_id is None) == (self.url is None):
            raise ValueError("a file needs either file_id or url")
        if self.file_id is not None and self.model_fields_set & {
            "name",
            "content_type",
            "size_bytes",
        }:
            raise ValueError("an uploaded file (file_id) takes its name, type and size from it")
        if self.url is not None and self.name is None:
            raise ValueError("a linked file (url) needs a name")
        return self


class SendMessageIn(Strict):
    # Required for text messages; a file message may leave it empty (a caption).
    text: Annotated[str, StringConstraints(max_length=limits.MAX_TEXT_CHARS)] = ""
    # Made by the client so a retried send is stored once; the gateway makes
    # one when absent, which gives up that guarantee.
    client_msg_id: Id | None = None
    kind: Literal["text", "file"] = "text"
    thread_root_id: Id | None = None
    file: FileIn | None = None

    @model_validator(mode="after")
    def _kind_matches_file(self) -> Self:
        if self.file is not None and self.kind != "file":
            if "kind" in self.model_fields_set:
                raise ValueError('a message with a file has kind "file"')
            self.kind = "file"
        if self.kind == "file" and self.file is None:
            raise ValueError('kind "file" needs a file')
        if self.kind == "text" and not self.text:
            raise ValueError("text should have at least 1 character")
        return self


class MarkReadIn(Strict):
    seq: Seq


class UpdateConversationIn(Strict):
    """Fields left out keep their value."""

    title: Annotated[str, StringConstraints(max_length=limits.MAX_TITLE_CHARS)] | None = None
    description: (
        Annotated[str, StringConstraints(max_length=limits.MAX_DESCRIPTION_CHARS)] | None
    ) = None
    topic: Annotated[str, StringConstraints(max_length=limits.MAX_TOPIC_CHARS)] | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> Self:
        if self.title is None and self.description is None and self.topic is None:
            raise ValueError("give at least one of title, description, topic")
        return self


class AddMembersIn(Strict):
    user_ids: Annotated[list[Id], Field(min_length=1, max_length=limits.MAX_USER_IDS)]
    # Left out: the service's default (member).
    role: MemberRoleName | None = None


class UpdateMemberRoleIn(Strict):
    role: MemberRoleName


class EditMessageIn(Strict):
    text: Text


class ToggleReactionIn(Strict):
    emoji: Emoji


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
    mention_count: int
    last_event_seq: int
    # The bot agent that answers here (tenant settings); null: none or the legacy bot.
    agent_id: str | None = None


class ConversationPageOut(BaseModel):
    conversations: list[ConversationOut]
    # Pass as ?cursor= for the next page; null on the last page.
    next_cursor: str | None = None


class CreateConversationOut(BaseModel):
    conversation: ConversationOut
    created: bool


class MemberOut(BaseModel):
    user_id: str
    role: MemberRoleName
    display_name: str
    joined_at: datetime
    last_read_seq: int


class MembersAddedOut(BaseModel):
    added: list[MemberOut]


class ReactionOut(BaseModel):
    emoji: str
    count: int
    user_ids: list[str] = Field(description="Up to the first 50 reactors")


class FileOut(BaseModel):
    file_id: str | None = Field(
        default=None,
        description="An uploaded file (GET .../files/{file_id} gives its download URLs); "
        "null for a link to a file hosted elsewhere",
    )
    url: str = Field(description="A link's URL; empty for an uploaded file")
    name: str
    content_type: str
    size_bytes: int


StreamStateName = Literal["complete", "stopped", "failed"]


class MessageOut(BaseModel):
    id: str
    conversation_id: str
    seq: int
    sender_id: str
    sender_name: str
    kind: MessageKindName
    text: str = Field(description="As written; never render it as HTML")
    text_html: str = Field(description="text escaped for HTML: safe to insert as markup")
    client_msg_id: str
    created_at: datetime
    thread_root_id: str | None
    edited_at: datetime | None
    deleted: bool
    reply_count: int
    last_reply_at: datetime | None
    mentions: list[str]
    mentions_all: bool
    reactions: list[ReactionOut]
    file: FileOut | None
    sender_role: SenderRoleName | None = Field(
        default=None,
        description="The sender's role when they sent it; clients mark staff answers by it",
    )
    ticket_id: str | None = Field(
        default=None, description="The ticket made from this message, if any"
    )
    stream_state: StreamStateName | None = Field(
        default=None,
        description="How a streamed bot reply ended (its deltas came as message:stream); "
        "absent for messages that were not streamed",
    )


class SendMessageOut(BaseModel):
    message: MessageOut
    created: bool


class MessagePage(BaseModel):
    messages: list[MessageOut]
    has_more: bool


class ToggleReactionOut(BaseModel):
    message: MessageOut
    added: bool


class ThreadPage(BaseModel):
    root: MessageOut
    replies: list[MessageOut]
    has_more: bool


class SearchOut(BaseModel):
    messages: list[MessageOut]


class EventOut(BaseModel):
    """One conversation event as the socket delivers it: ``event`` is the
    Socket.IO event name and ``data`` its payload."""

    event: str
    event_seq: int
    conversation_id: str
    data: dict[str, Any]


class EventPage(BaseModel):
    events: list[EventOut]
    has_more: bool
    resync_required: bool = Field(
        description="The events asked for are no longer kept: reload the conversation instead"
    )


class ReadStateOut(BaseModel):
    last_read_seq: int
    unread_count: int


PresenceStatusName = Literal["online", "away", "busy", "offline"]


class PresenceOut(BaseModel):
    user_id: str
    status: PresenceStatusName
    device_count: int
    last_active_at: datetime | None
    custom_status: str
    custom_status_expires_at: datetime | None
    # What the user chose; "online" means automatic.
    chosen_status: PresenceStatusName


class SetPresenceIn(Strict):
    # "online" returns to automatic; "away" and "busy" hold while connected.
    status: Literal["online", "away", "busy"] = "online"
    custom_status: (
        Annotated[str, StringConstraints(max_length=limits.MAX_CUSTOM_STATUS_CHARS)] | None
    ) = None
    custom_status_expires_at: datetime | None = None


class TypingOut(BaseModel):
    conversation_id: str
    user_id: str
    typing: bool
    expires_at: datetime | None


class NotificationOut(BaseModel):
    id: str
    reason: Literal["offline_message", "mention", "handoff", "unspecified"]
    conversation_id: str
    message_id: str
    preview: str
    email_status: Literal["pending", "sent", "failed", "skipped", "unspecified"]
    created_at: datetime


class SummaryOut(BaseModel):
    summary: str
    model_available: bool


PiiModeName = Literal["off", "flag", "mask", "block"]
ErasureModeName = Literal["delete", "anonymise"]
PiiKindName = Literal["email", "phone", "card", "iban", "ssn", "nino", "secret"]


class PolicyOut(BaseModel):
    """The tenant's compliance policy; see docs/security.md for each rule."""

    pii_mode: PiiModeName
    pii_kinds: list[PiiKindName] = Field(description="Kinds the PII mode applies to; [] = all")
    mask_bot_prompts: bool
    retention_message_days: int = Field(description="0 keeps messages forever")
    retention_archived_days: int = Field(description="0 uses retention_message_days")
    retention_inactive_days: int = Field(description="0 uses retention_message_days")
    audit_retention_days: int = Field(description="0 keeps audit records forever")
    erasure_mode: ErasureModeName
    updated_at: datetime | None = Field(description="null until the policy is first changed")
    version: int = Field(description="0 for the defaults; +1 per update")
    pii_counts: dict[str, int] = Field(
        default_factory=dict,
        description="GET only: message writes that carried each PII kind, whatever the "
        "policy did with them",
    )


class PolicyPatchIn(Strict):
    """The fields to change; absent fields keep their value. Bounds are checked by
    the conversation service (422 ``invalid_policy``, naming the field)."""

    pii_mode: str | None = Field(default=None, description="off, flag, mask or block")
    pii_kinds: list[Annotated[str, StringConstraints(max_length=32)]] | None = Field(
        default=None,
        max_length=16,
        description="email, phone, card, iban, ssn, nino, secret; [] = all",
    )
    mask_bot_prompts: bool | None = None
    retention_message_days: int | None = Field(default=None, description="0 or 1..3650")
    retention_archived_days: int | None = Field(default=None, description="0 or 1..3650")
    retention_inactive_days: int | None = Field(default=None, description="0 or 1..3650")
    audit_retention_days: int | None = Field(default=None, description="0 or 365..3650")
    erasure_mode: str | None = Field(default=None, description="delete or anonymise")
    expected_version: int | None = Field(
        default=None,
        ge=0,
        le=limits.MAX_INT64,
        description="Apply only if the stored version is this (else 409)",
    )


class ErrorBody(BaseModel):
    code: str
    message: str
    retry_after: int | None = Field(
        default=None, description="429 only: seconds to wait, as in the Retry-After header"
    )


class ErrorOut(BaseModel):
    error: ErrorBody


class CreateExportIn(Strict):
    scope: Literal["conversation", "user", "tenant"]
    id: Annotated[str, Field(max_length=limits.MAX_ID_CHARS)] = Field(
        default="", description="The conversation or user id; omitted for the tenant"
    )
    format: Literal["ndjson", "csv"] = "ndjson"


class CreateUserErasureIn(Strict):
    user_id: Annotated[str, Field(min_length=1, max_length=limits.MAX_ID_CHARS)]


class CreateTenantErasureIn(Strict):
    confirm_tenant_id: Annotated[
        str,
        Field(
            min_length=1,
            max_length=limits.MAX_ID_CHARS,
            description="Must repeat the id of the tenant being erased",
        ),
    ]


class JobProgressOut(BaseModel):
    done: int
    total: int


class JobOut(BaseModel):
    id: str
    kind: Literal["export", "user_erasure", "tenant_erasure"]
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    progress: JobProgressOut
    params: dict[str, str]
    result: dict[str, int] | None
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
