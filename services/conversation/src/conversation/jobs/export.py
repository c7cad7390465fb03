"""Exports: a conversation, a user's data or a whole tenant, as NDJSON or CSV.

An export walks its sources in order (a conversation's document, its members,
its messages...), one page per step, each page keyed by the last id it read.
Every step writes one numbered chunk, so a runner that redoes a step after a
crash writes the same chunk again, never a second copy of its records.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import support_pb2 as spb
from conversation.jobs.files import export_link
from conversation.jobs.runner import Step
from conversation.storage.botdata import MemoryRecord
from conversation.storage.canned import CannedReply
from conversation.storage.conversations import Conversation
from conversation.storage.db import Database, TenantStore
from conversation.storage.files import FileRecord
from conversation.storage.jobs import Checkpoint, Job
from conversation.storage.members import Member
from conversation.storage.messages import Message
from conversation.storage.tickets import Ticket
from conversation.storage.users import UserProfile

KIND = "export"
SCOPES = ("conversation", "user", "tenant")
FORMATS = ("ndjson", "csv")
CONTENT_TYPES = {"ndjson": "application/x-ndjson", "csv": "text/csv"}

JsonRecord = dict[str, object]
# A page of a source: (key to resume after, record) pairs.
Page = list[tuple[str, JsonRecord]]

CSV_COLUMNS = (
    "conversation_id",
    "seq",
    "id",
    "created_at",
    "sender_id",
    "sender_name",
    "text",
    "thread_root_id",
    "edited_at",
    "deleted",
    "file_name",
    "file_url",
)


class NotificationArchive(Protocol):
    """A user's notifications, kept by the notification service."""

    async def page(self, tenant_id: str, user_id: str, after: str, limit: int) -> Page: ...


@dataclass(frozen=True)
class Source:
    name: str
    fetch: Callable[[str, int], Awaitable[Page]]
    count: Callable[[], Awaitable[int]]


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _enum_name(name: Callable[[Any], str], value: int, prefix: str) -> str:
    """``MESSAGE_KIND_TEXT`` as ``text``; a value newer than this code as its number."""
    try:
        return name(value).removeprefix(prefix).lower()
    except ValueError:
        return str(value)


def conversation_record(c: Conversation) -> JsonRecord:
    return {
        "type": "conversation",
        "id": c.id,
        "kind": _enum_name(pb.ConversationKind.Name, c.kind, "CONVERSATION_KIND_"),
        "title": c.title,
        "description": c.description,
        "topic": c.topic,
        "created_by": c.created_by,
        "created_at": _time(c.created_at),
        "last_activity_at": _time(c.last_activity_at),
        "archived": c.archived,
        "deleted": c.deleted,
    }


def member_record(m: Member) -> JsonRecord:
    return {
        "type": "member",
        "conversation_id": m.conversation_id,
        "user_id": m.user_id,
        "role": _enum_name(pb.MemberRole.Name, m.role, "MEMBER_ROLE_"),
        "joined_at": _time(m.joined_at),
        "last_read_seq": m.last_read_seq,
    }


def user_record(u: UserProfile) -> JsonRecord:
    return {
        "type": "user",
        "user_id": u.user_id,
        "display_name": u.display_name,
        "email": u.email,
        "roles": list(u.roles),
    }


def ticket_record(t: Ticket) -> JsonRecord:
    return {
        "type": "ticket",
        "id": t.id,
        "conversation_id": t.conversation_id,
        "subject": t.subject,
        "category": t.category,
        "priority": _enum_name(spb.TicketPriority.Name, t.priority, "TICKET_PRIORITY_"),
        "tags": list(t.tags),
        "requester_id": t.requester_id,
        "assignee_id": t.assignee_id,
        "status": t.status,
        "escalated": t.escalated,
        "created_at": _time(t.created_at),
        "resolved_at": _time(t.resolved_at),
        "closed_at": _time(t.closed_at),
        "handoff_reason": _enum_name(spb.HandoffReason.Name, t.handoff_reason, "HANDOFF_REASON_")
        if t.handoff_reason
        else "",
        "handoff_summary": t.handoff_summary,
        "handed_off_at": _time(t.handed_off_at),
    }


def message_record(m: Message) -> JsonRecord:
    return {
        "type": "message",
        "id": m.id,
        "conversation_id": m.conversation_id,
        "seq": m.seq,
        "sender_id": m.sender_id,
        "sender_name": m.sender_name,
        "kind": _enum_name(pb.MessageKind.Name, m.kind, "MESSAGE_KIND_"),
        "text": m.text,
        "created_at": _time(m.created_at),
        "edited_at": _time(m.edited_at),
        "thread_root_id": m.thread_root_id,
        "deleted": m.deleted,
        "mentions": list(m.mentions),
        "reactions": [{"emoji": r.emoji, "users": list(r.users)} for r in m.reactions],
        "file": (
            {
                "name": m.file.name,
                "url": m.file.url,
                "content_type": m.file.content_type,
                "size_bytes": m.file.size_bytes,
            }
            if m.file
            else None
        ),
    }


def file_record(f: FileRecord) -> JsonRecord:
    """A file's metadata and a link, not its bytes (docs/files.md#compliance):
    the link yields signed URLs to an authorised reader only, and sha256 lets
    them check the bytes they get are the ones exported."""
    return {
        "type": "file",
        "id": f.id,
        "conversation_id": f.conversation_id,
        "uploader_id": f.uploader_id,
        "name": f.name,
        "content_type": f.content_type,
        "kind": f.kind,
        "size_bytes": f.size_bytes,
        "sha256": f.sha256,
        "status": f.status.value,
        "created_at": _time(f.created_at),
        "message_id": f.message_id,
        "link": export_link(f.conversation_id, f.id),
    }


def canned_record(r: CannedReply) -> JsonRecord:
    return {
        "type": "canned_reply",
        "id": r.id,
        "scope": r.scope,
        "owner_id": r.owner_id,
        "shortcode": r.shortcode,
        "body": r.body,
        "created_at": _time(r.created_at),
        "updated_at": _time(r.updated_at),
    }


def bot_memory_record(r: MemoryRecord) -> JsonRecord:
    """An agent's memory (``bot_memory``, up to ``through_seq``) or the
    conversation's cached summary (``bot_summary``, as of ``through_seq``)."""
    return {
        "type": r.kind,
        "conversation_id": r.conversation_id,
        "agent_id": r.agent_id,
        "summary": r.summary,
        "through_seq": r.through_seq,
        "updated_at": _time(r.updated_at),
    }


def _csv_row(record: JsonRecord) -> list[str]:
    file = record.get("file")
    name = url = ""
    if isinstance(file, dict):
        name, url = str(file["name"]), str(file["url"])
    row = {**{k: record.get(k) for k in CSV_COLUMNS}, "file_name": name, "file_url": url}
    return ["" if row[k] is None else str(row[k]) for k in CSV_COLUMNS]


def render(fmt: str, records: list[JsonRecord], *, header: bool) -> bytes:
    if fmt == "ndjson":
        return b"".join(
            json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
            for r in records
        )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    writer.writerows(_csv_row(r) for r in records)
    return out.getvalue().encode()


class ExportJob:
    def __init__(
        self, db: Database, batch_size: int, notifications: NotificationArchive | None = None
    ) -> None:
        self._db = db
        self._batch = batch_size
        self._notifications = notifications

    def sources(self, job: Job) -> list[Source]:
        store = self._db.for_tenant(job.tenant_id)
        scope, key, fmt = job.params["scope"], job.params.get("id", ""), job.params["format"]
        if scope == "conversation":
            messages = _conversation_messages(store, key)
        else:
            messages = _messages(store, sender_id=key if scope == "user" else "")
        if fmt == "csv":
            return [messages]
        if scope == "conversation":
            return [
                _conversation(store, key),
                _members(store, conversation_id=key),
                messages,
                _files(store, conversation_id=key),
                _bot_memory(store, key),
            ]
        if scope == "user":
            out = [_users(store, key), _members(store, user_id=key), messages, _tickets(store, key)]
            out.append(_files(store, uploader_id=key))
            # Personal canned replies are the user's; shared ones are the tenant's.
            out.append(_canned(store, owner_id=key))
            if self._notifications is not None:
                out.append(_notifications(self._notifications, job.tenant_id, key))
            return out
        return [
            _conversations(store),
            _members(store),
            _users(store, ""),
            messages,
            _files(store),
            _canned(store, owner_id=None),
            _support_profile(store),
            _bot_memory(store, ""),
            _chat_settings(store),
        ]

    async def step(self, job: Job, at: Checkpoint) -> Step:
        sources = self.sources(job)
        total = job.total
        if at == Checkpoint():
            total = sum([await s.count() for s in sources])
        if at.stage >= len(sources):
            return Step(
                at,
                at.records,
                total,
                finished=True,
                result={"records": at.records, "parts": at.part},
            )
        page = await sources[at.stage].fetch(at.after, self._batch)
        part, records = at.part, at.records
        if page:
            fmt = job.params["format"]
            header = fmt == "csv" and at.part == 0
            data = render(fmt, [r for _, r in page], header=header)
            await self._db.chunks(job.tenant_id).put(job.id, part, data)
            part, records = part + 1, records + len(page)
        if len(page) == self._batch:
            after = Checkpoint(at.stage, page[-1][0], part, records)
        else:
            after = Checkpoint(at.stage + 1, "", part, records)
        return Step(after, records, max(total, records))


def _conversation(store: TenantStore, conversation_id: str) -> Source:
    async def fetch(after: str, limit: int) -> Page:
        conv = await store.conversations.get(conversation_id)
        if conv is None or after:
            return []
        return [(conv.id, conversation_record(conv))]

    async def count() -> int:
        return 1

    return Source("conversation", fetch, count)


def _conversations(store: TenantStore) -> Source:
    async def fetch(after: str, limit: int) -> Page:
        return [
            (c.id, conversation_record(c))
            for c in await store.conversations.page_by_id(after, limit)
        ]

    return Source("conversations", fetch, store.conversations.count_all)


def _members(store: TenantStore, *, conversation_id: str = "", user_id: str = "") -> Source:
    async def fetch(after: str, limit: int) -> Page:
        rows = await store.members.page_by_id(
            after, limit, conversation_id=conversation_id, user_id=user_id
        )
        return [(f"{m.conversation_id}:{m.user_id}", member_record(m)) for m in rows]

    async def count() -> int:
        return await store.members.count_where(conversation_id=conversation_id, user_id=user_id)

    return Source("members", fetch, count)


def _users(store: TenantStore, user_id: str) -> Source:
    async def fetch(after: str, limit: int) -> Page:
        return [
            (u.user_id, user_record(u)) for u in await store.users.page_by_id(after, limit, user_id)
        ]

    async def count() -> int:
        return await store.users.count_where(user_id)

    return Source("users", fetch, count)


def _tickets(store: TenantStore, requester_id: str) -> Source:
    """The tickets the user opened (or that were made from their messages)."""

    async def fetch(after: str, limit: int) -> Page:
        rows = await store.tickets.page_for_requester(requester_id, after, limit)
        return [(t.id, ticket_record(t)) for t in rows]

    async def count() -> int:
        return await store.tickets.count_for_requester(requester_id)

    return Source("tickets", fetch, count)


def _messages(store: TenantStore, *, conversation_id: str = "", sender_id: str = "") -> Source:
    async def fetch(after: str, limit: int) -> Page:
        rows = await store.messages.page_by_id(
            after, limit, conversation_id=conversation_id, sender_id=sender_id
        )
        return [(m.id, message_record(m)) for m in rows]

    async def count() -> int:
        return await store.messages.count_where(
            conversation_id=conversation_id, sender_id=sender_id
        )

    return Source("messages", fetch, count)


def _conversation_messages(store: TenantStore, conversation_id: str) -> Source:
    """In seq order, the conversation's own order; the key is the last seq."""

    async def fetch(after: str, limit: int) -> Page:
        conv = await store.conversations.get(conversation_id)
        if conv is None:
            return []
        rows = await store.messages.page_after(
            conversation_id, int(after or 0), limit, conv.last_seq
        )
        return [(str(m.seq), message_record(m)) for m in rows]

    async def count() -> int:
        return await store.messages.count_where(conversation_id=conversation_id)

    return Source("messages", fetch, count)


def _files(store: TenantStore, *, conversation_id: str = "", uploader_id: str = "") -> Source:
    """A conversation's files, a user's uploads, or every file of the tenant, by
    id; deleted ones too (status ``deleted``: the record is still held)."""

    async def fetch(after: str, limit: int) -> Page:
        rows = await store.files.page_by_id(
            after, limit, conversation_id=conversation_id, uploader_id=uploader_id
        )
        return [(f.id, file_record(f)) for f in rows]

    async def count() -> int:
        return await store.files.count(conversation_id=conversation_id, uploader_id=uploader_id)

    return Source("files", fetch, count)


def _canned(store: TenantStore, *, owner_id: str | None) -> Source:
    """One user's personal replies, or (None) every reply of the tenant."""

    async def fetch(after: str, limit: int) -> Page:
        rows = await store.canned.page_by_id(after, limit, owner_id)
        return [(r.id, canned_record(r)) for r in rows]

    async def count() -> int:
        return await store.canned.count_where(owner_id)

    return Source("canned_replies", fetch, count)


def _bot_memory(store: TenantStore, conversation_id: str) -> Source:
    """What the bot keeps of one conversation, or ("") of every conversation."""

    async def fetch(after: str, limit: int) -> Page:
        rows = await store.bot_memory.page(conversation_id, after, limit)
        return [(r.id, bot_memory_record(r)) for r in rows]

    async def count() -> int:
        return await store.bot_memory.count(conversation_id)

    return Source("bot_memory", fetch, count)


def _support_profile(store: TenantStore) -> Source:
    """The tenant's support profile: one record, once an admin set it."""

    async def fetch(after: str, limit: int) -> Page:
        profile = await store.support_profile.get()
        if profile is None or after:
            return []
        record: JsonRecord = {
            "type": "support_profile",
            "name": profile.name,
            "updated_at": _time(profile.updated_at),
        }
        return [("profile", record)]

    async def count() -> int:
        return 0 if await store.support_profile.get() is None else 1

    return Source("support_profile", fetch, count)


def _chat_settings(store: TenantStore) -> Source:
    """The tenant's chat settings: one record, once an admin saved them."""

    async def fetch(after: str, limit: int) -> Page:
        found = await store.settings.get()
        if found is None or after:
            return []
        document = dataclasses.asdict(found)
        record: JsonRecord = {
            **document,
            "type": "tenant_settings",
            "role_permissions": {role: list(perms) for role, perms in found.role_permissions},
            "updated_at": _time(found.updated_at),
        }
        return [("settings", record)]

    async def count() -> int:
        return 0 if await store.settings.get() is None else 1

    return Source("tenant_settings", fetch, count)


def _notifications(archive: NotificationArchive, tenant_id: str, user_id: str) -> Source:
    async def fetch(after: str, limit: int) -> Page:
        return await archive.page(tenant_id, user_id, after, limit)

    async def count() -> int:
        return 0

    return Source("notifications", fetch, count)
