"""Messages: send, page, edit, delete, react, threads, search, read state, events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

from opentelemetry.trace import Span
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import events_pb2
from confab_core.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from confab_core.identity import ROLE_SERVICE, Caller
from confab_core.ids import new_id
from confab_core.kafka import CONVERSATION_EVENTS_TOPIC
from confab_core.mongo import Doc
from confab_core.telemetry import inject_headers, tracer
from conversation import convert
from conversation.handlers import access
from conversation.handlers import text as textutil
from conversation.handlers.base import EVENT_TYPE, EVENT_TYPE_HEADER, HandlerBase, stamp
from conversation.handlers.sendbatch import PendingSend, SendBatcher
from conversation.limits import (
    DEFAULT_PAGE,
    MAX_CLIENT_MSG_ID_CHARS,
    MAX_EMOJI_CHARS,
    MAX_PAGE,
    MAX_REACTIONS_PER_MESSAGE,
    MAX_SEARCH_TERMS,
    MAX_TEXT_CHARS,
)
from conversation.storage.db import TenantStore
from conversation.storage.outbox import record as outbox_record

_USER_KINDS = {pb.MESSAGE_KIND_TEXT, pb.MESSAGE_KIND_FILE}
_SERVICE_KINDS = {pb.MESSAGE_KIND_BOT, pb.MESSAGE_KIND_SYSTEM}
MAX_FILE_BYTES = 5 * 1024**3


@dataclass(frozen=True)
class Sent:
    message: Doc
    created: bool


@dataclass(frozen=True)
class Page:
    messages: list[Doc]
    has_more: bool


@dataclass(frozen=True)
class EventPage:
    events: list[bytes]
    has_more: bool
    resync_required: bool


def _message_created(doc: Doc, conversation_kind: int) -> events_pb2.ConversationEvent:
    return events_pb2.ConversationEvent(
        message_created=events_pb2.MessageCreated(
            message=convert.message(doc),
            conversation_kind=cast(pb.ConversationKind.ValueType, conversation_kind),
        )
    )


async def _store_message(
    store: TenantStore, session: AsyncClientSession, caller: Caller, doc: Doc, after: Doc
) -> None:
    """A message alone in its transaction takes the conversation's new last seq."""
    doc["seq"] = int(after["last_seq"])
    await store.messages.insert(doc, session)
    # The sender has read everything up to their own message.
    await store.members.advance_read(doc["conversation_id"], caller.user_id, doc["seq"], session)


def _message_not_found() -> NotFound:
    return NotFound("message not found", "message_not_found")


def _limit(limit: int, default: int = DEFAULT_PAGE) -> int:
    if limit < 0 or limit > MAX_PAGE:
        raise InvalidArgument(f"limit must be between 1 and {MAX_PAGE}", "invalid_limit")
    return limit or default


class MessageHandler(HandlerBase):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sends = SendBatcher(self._commit_many, self._commit_one)

    async def send(
        self,
        caller: Caller,
        *,
        conversation_id: str,
        client_msg_id: str,
        text: str,
        kind: int,
        thread_root_id: str,
        file: dict[str, Any] | None = None,
    ) -> Sent:
        with tracer().start_as_current_span(
            "confab.message.send",
            attributes={
                "confab.tenant_id": caller.tenant_id,
                "confab.conversation_id": conversation_id,
            },
        ) as span:
            kind = kind or pb.MESSAGE_KIND_TEXT
            _validate(caller, client_msg_id, text, kind, file)
            await self.remember_profile(caller)
            conv, member = await self.readable(caller, conversation_id)
            access.require_participant(member, "send")
            access.require_writable(conv)
            store = self.store(caller)
            # A retried send is found by the unique (sender, client_msg_id) index
            # inside the transaction below, not by a read before it: retries are
            # rare, and the read cost every send a round trip.
            if thread_root_id:
                root = await store.messages.get(conversation_id, thread_root_id)
                if root is None or root.get("thread_root_id") or root.get("deleted"):
                    raise InvalidArgument(
                        "thread root must be a top-level message of this conversation",
                        "invalid_thread_root",
                    )
            mentions, mentions_all = await self._mentions(caller, conversation_id, text)
            now = self.clock.now()
            doc: Doc = {
                "_id": new_id(),
                "conversation_id": conversation_id,
                "sender_id": caller.user_id,
                "sender_name": caller.display_name,
                "kind": kind,
                "text": text,
                "client_msg_id": client_msg_id,
                "created_at": now,
                "thread_root_id": thread_root_id,
                "deleted": False,
                "reply_count": 0,
                "mentions": mentions,
                "mentions_all": mentions_all,
                "reactions": [],
                "file": file,
                "search_terms": textutil.terms(text + " " + (file or {}).get("name", "")),
            }

            if not thread_root_id:
                pending = PendingSend(caller, int(conv["kind"]), doc, inject_headers())
                try:
                    stored = await self._sends.submit(pending)
                except DuplicateKeyError:
                    return await self._stored_retry(caller, conversation_id, client_msg_id, span)
                span.set_attribute("confab.message.seq", stored["seq"])
                return Sent(stored, created=True)

            async def build(
                session: AsyncClientSession, after: Doc
            ) -> list[events_pb2.ConversationEvent]:
                await _store_message(store, session, caller, doc, after)
                root = await store.messages.update(
                    conversation_id,
                    thread_root_id,
                    {"$inc": {"reply_count": 1}, "$set": {"last_reply_at": now}},
                    session,
                )
                if root is None:
                    raise InvalidArgument("thread root vanished", "invalid_thread_root")
                return [
                    _message_created(doc, int(conv["kind"])),
                    events_pb2.ConversationEvent(
                        message_updated=events_pb2.MessageUpdated(message=convert.message(root))
                    ),
                ]

            try:
                await self.write_events(caller, conversation_id, build, events=2, message=True)
            except DuplicateKeyError:
                return await self._stored_retry(caller, conversation_id, client_msg_id, span)
            span.set_attribute("confab.message.seq", doc["seq"])
            return Sent(doc, created=True)

    async def _stored_retry(
        self, caller: Caller, conversation_id: str, client_msg_id: str, span: Span
    ) -> Sent:
        """A retry of a send that was stored: the transaction rolled back the seq
        it took, and the first send's message is the answer."""
        again = await self.store(caller).messages.by_client_id(
            conversation_id, caller.user_id, client_msg_id
        )
        if again is None:
            raise RuntimeError("duplicate send, but its message is not there")
        span.set_attribute("confab.message.duplicate", True)
        return Sent(again, created=False)

    async def _commit_one(self, items: list[PendingSend]) -> None:
        """A send alone in its transaction (under the conversation's writer lock)."""
        (item,) = items
        caller, doc = item.caller, item.doc
        conversation_id = doc["conversation_id"]
        store = self.store(caller)

        async def build(
            session: AsyncClientSession, after: Doc
        ) -> list[events_pb2.ConversationEvent]:
            await _store_message(store, session, caller, doc, after)
            return [_message_created(doc, item.conversation_kind)]

        await self.write_events(caller, conversation_id, build, message=True, headers=item.headers)
        item.done.set_result(doc)

    async def _commit_many(self, items: list[PendingSend]) -> None:
        """Sends to any conversations of any tenants in one transaction: per
        conversation one seq update, then one insert per collection."""
        groups: dict[tuple[str, str], list[PendingSend]] = {}
        for item in items:
            key = (item.caller.tenant_id, item.doc["conversation_id"])
            groups.setdefault(key, []).append(item)

        async def txn(session: AsyncClientSession) -> None:
            now = self.clock.now()
            per_tenant: dict[str, tuple[list[Doc], list[tuple[str, str, int]], list[Doc]]] = {}
            for (tenant, conversation_id), group in groups.items():
                store = self.db.for_tenant(tenant)
                n = len(group)
                after = await store.conversations.next_seq(
                    conversation_id,
                    now,
                    message=False,
                    events=n,
                    inc_fields={"last_seq": n},
                    session=session,
                )
                if after is None:
                    raise access.not_found()
                messages, reads, records = per_tenant.setdefault(tenant, ([], [], []))
                first_seq = int(after["last_seq"]) - n + 1
                first_event = int(after["last_event_seq"]) - n + 1
                for offset, item in enumerate(group):
                    item.doc["seq"] = first_seq + offset
                    messages.append(item.doc)
                    reads.append((conversation_id, item.caller.user_id, item.doc["seq"]))
                    event = _message_created(item.doc, item.conversation_kind)
                    stamp(event, item.caller, conversation_id, first_event + offset, now)
                    records.append(
                        outbox_record(
                            event.event_id,
                            CONVERSATION_EVENTS_TOPIC,
                            conversation_id,
                            event.event_seq,
                            event.SerializeToString(),
                            [(EVENT_TYPE_HEADER, EVENT_TYPE), *item.headers],
                            now,
                        )
                    )
            for tenant, (messages, reads, records) in per_tenant.items():
                store = self.db.for_tenant(tenant)
                await store.messages.insert_many(messages, session)
                # Each sender has read everything up to their own message.
                await store.members.advance_read_many(reads, session)
                await store.outbox.add_many(records, session)

        await self.transaction(txn)
        for item in items:
            item.done.set_result(item.doc)

    async def _mentions(
        self, caller: Caller, conversation_id: str, body: str
    ) -> tuple[list[str], bool]:
        names, everyone = textutil.parse_mentions(body)
        if not names:
            return [], everyone
        members = await self.store(caller).members.get_many(conversation_id, names[:100])
        present = {m["user_id"] for m in members}
        return [n for n in names if n in present], everyone

    async def page(
        self, caller: Caller, *, conversation_id: str, after_seq: int, before_seq: int, limit: int
    ) -> Page:
        if after_seq < 0 or before_seq < 0:
            raise InvalidArgument("seq cursors cannot be negative", "invalid_cursor")
        if after_seq and before_seq:
            raise InvalidArgument("give after_seq or before_seq, not both", "invalid_cursor")
        limit = _limit(limit)
        conv, _ = await self.readable(caller, conversation_id)
        last_seq = int(conv["last_seq"])
        store = self.store(caller)
        if before_seq:
            docs = await store.messages.page_before(
                conversation_id, before_seq, limit + 1, last_seq
            )
        else:
            docs = await store.messages.page_after(conversation_id, after_seq, limit + 1, last_seq)
        return Page(docs[:limit], has_more=len(docs) > limit)

    async def _writable_message(
        self, caller: Caller, conversation_id: str, message_id: str
    ) -> tuple[Doc, Doc | None, Doc]:
        conv, member = await self.readable(caller, conversation_id)
        message = await self.store(caller).messages.get(conversation_id, message_id)
        if message is None:
            raise _message_not_found()
        return conv, member, message

    async def edit(
        self, caller: Caller, *, conversation_id: str, message_id: str, text: str
    ) -> Doc:
        _validate_text(text)
        conv, _, message = await self._writable_message(caller, conversation_id, message_id)
        if message["sender_id"] != caller.user_id:
            raise PermissionDenied("only the author can edit a message", "not_the_author")
        if message.get("deleted"):
            raise FailedPrecondition("the message was deleted", "message_deleted")
        access.require_writable(conv)
        mentions, mentions_all = await self._mentions(caller, conversation_id, text)
        now = self.clock.now()
        update = {
            "$set": {
                "text": text,
                "edited_at": now,
                "mentions": mentions,
                "mentions_all": mentions_all,
                "search_terms": textutil.terms(
                    text + " " + (message.get("file") or {}).get("name", "")
                ),
            }
        }
        return await self._update_message(
            caller,
            conversation_id,
            message_id,
            update,
            lambda doc: events_pb2.ConversationEvent(
                message_updated=events_pb2.MessageUpdated(message=convert.message(doc))
            ),
        )

    async def delete(self, caller: Caller, *, conversation_id: str, message_id: str) -> Doc:
        conv, member, message = await self._writable_message(caller, conversation_id, message_id)
        if not access.can_delete_message(caller, conv, member, message):
            raise PermissionDenied("only the author or an admin can delete", "forbidden")
        if message.get("deleted"):
            return message
        access.require_writable(conv)
        update: dict[str, Any] = {
            "$set": {
                "text": "",
                "file": None,
                "reactions": [],
                "mentions": [],
                "mentions_all": False,
                "search_terms": [],
                "deleted": True,
                "deleted_at": self.clock.now(),
            }
        }
        return await self._update_message(
            caller,
            conversation_id,
            message_id,
            update,
            lambda doc: events_pb2.ConversationEvent(
                message_deleted=events_pb2.MessageDeleted(message=convert.message(doc))
            ),
        )

    async def _update_message(
        self,
        caller: Caller,
        conversation_id: str,
        message_id: str,
        update: dict[str, Any],
        event_for: Any,
    ) -> Doc:
        store = self.store(caller)
        result: dict[str, Doc] = {}

        async def build(
            session: AsyncClientSession, after: Doc
        ) -> list[events_pb2.ConversationEvent]:
            doc = await store.messages.update(conversation_id, message_id, update, session)
            if doc is None:
                raise _message_not_found()
            result["doc"] = doc
            return [event_for(doc)]

        await self.write_events(caller, conversation_id, build)
        return result["doc"]

    async def react(
        self, caller: Caller, *, conversation_id: str, message_id: str, emoji: str
    ) -> tuple[Doc, bool]:
        if not emoji or len(emoji) > MAX_EMOJI_CHARS or any(c.isspace() for c in emoji):
            raise InvalidArgument("an emoji is 1-64 characters without spaces", "invalid_emoji")
        conv, member, message = await self._writable_message(caller, conversation_id, message_id)
        access.require_participant(member, "react")
        access.require_writable(conv)
        if message.get("deleted"):
            raise FailedPrecondition("the message was deleted", "message_deleted")
        store = self.store(caller)
        result: dict[str, Any] = {}

        async def build(
            session: AsyncClientSession, after: Doc
        ) -> list[events_pb2.ConversationEvent]:
            # Re-read inside the transaction: the toggle must see the latest set.
            current = await store.messages.get(conversation_id, message_id, session)
            if current is None or current.get("deleted"):
                raise _message_not_found()
            reactions, added = _toggle(current.get("reactions", []), emoji, caller.user_id)
            doc = await store.messages.update(
                conversation_id, message_id, {"$set": {"reactions": reactions}}, session
            )
            assert doc is not None
            result["doc"], result["added"] = doc, added
            return [
                events_pb2.ConversationEvent(
                    reaction_changed=events_pb2.ReactionChanged(
                        message_id=message_id,
                        emoji=emoji,
                        user_id=caller.user_id,
                        added=added,
                        reactions=convert.reactions(doc),
                    )
                )
            ]

        await self.write_events(caller, conversation_id, build)
        return result["doc"], bool(result["added"])

    async def thread(
        self,
        caller: Caller,
        *,
        conversation_id: str,
        root_message_id: str,
        after_seq: int,
        limit: int,
    ) -> tuple[Doc, Page]:
        if after_seq < 0:
            raise InvalidArgument("seq cursors cannot be negative", "invalid_cursor")
        limit = _limit(limit)
        await self.readable(caller, conversation_id)
        store = self.store(caller)
        root = await store.messages.get(conversation_id, root_message_id)
        if root is None or root.get("thread_root_id"):
            raise _message_not_found()
        docs = await store.messages.thread_after(
            conversation_id, root_message_id, after_seq, limit + 1
        )
        return root, Page(docs[:limit], has_more=len(docs) > limit)

    async def search(
        self, caller: Caller, *, query: str, conversation_id: str, limit: int
    ) -> list[Doc]:
        if len(query) > 200:
            raise InvalidArgument("query too long", "query_too_long")
        terms = textutil.terms(query)[:MAX_SEARCH_TERMS]
        if not terms:
            raise InvalidArgument("give at least one word of 2+ characters", "query_too_short")
        limit = _limit(limit, default=20)
        store = self.store(caller)
        if conversation_id:
            await self.readable(caller, conversation_id)
            scope = [conversation_id]
        else:
            scope = [
                m["conversation_id"] for m in await store.members.list_for_user(caller.user_id)
            ]
            live = await store.conversations.get_many_by_activity(scope, 0)
            scope = [c["_id"] for c in live]
        if not scope:
            return []
        with tracer().start_as_current_span(
            "confab.message.search",
            attributes={"confab.tenant_id": caller.tenant_id, "confab.search.terms": len(terms)},
        ):
            return await store.messages.search(scope, terms, limit)

    async def events(
        self, caller: Caller, *, conversation_id: str, after_event_seq: int, limit: int
    ) -> EventPage:
        if after_event_seq < 0:
            raise InvalidArgument("seq cursors cannot be negative", "invalid_cursor")
        limit = _limit(limit)
        conv, _ = await self.readable(caller, conversation_id)
        last = int(conv.get("last_event_seq", 0))
        if after_event_seq >= last:
            return EventPage([], has_more=False, resync_required=False)
        docs = await self.store(caller).outbox.page(conversation_id, after_event_seq, limit + 1)
        if not docs or int(docs[0]["event_seq"]) != after_event_seq + 1:
            # The log no longer holds the next event: replaying would leave a gap.
            return EventPage([], has_more=False, resync_required=True)
        return EventPage(
            [bytes(d["payload"]) for d in docs[:limit]],
            has_more=len(docs) > limit,
            resync_required=False,
        )

    async def mark_read(self, caller: Caller, *, conversation_id: str, seq: int) -> tuple[int, int]:
        if seq < 0:
            raise InvalidArgument("seq cannot be negative", "invalid_seq")
        conv, member = await self.readable(caller, conversation_id)
        if member is None:
            raise PermissionDenied("only members have a read marker", "not_a_member")
        target = min(seq, int(conv["last_seq"]))
        if target > int(member["last_read_seq"]):
            store = self.store(caller)
            moved: dict[str, Doc] = {}

            async def build(
                session: AsyncClientSession, after: Doc
            ) -> list[events_pb2.ConversationEvent]:
                updated = await store.members.advance_read(
                    conversation_id, caller.user_id, target, session
                )
                assert updated is not None
                moved["member"] = updated
                return [
                    events_pb2.ConversationEvent(
                        read_marker_changed=events_pb2.ReadMarkerChanged(
                            user_id=caller.user_id, last_read_seq=int(updated["last_read_seq"])
                        )
                    )
                ]

            conv = await self.write_events(caller, conversation_id, build)
            member = moved["member"]
        unread, _ = await self.counts(caller, conv, member)
        return int(member["last_read_seq"]), unread


def _toggle(reactions: list[Doc], emoji: str, user_id: str) -> tuple[list[Doc], bool]:
    out = [{"emoji": r["emoji"], "users": list(r["users"])} for r in reactions]
    for r in out:
        if r["emoji"] == emoji:
            if user_id in r["users"]:
                r["users"].remove(user_id)
                return [x for x in out if x["users"]], False
            r["users"].append(user_id)
            return out, True
    if len(out) >= MAX_REACTIONS_PER_MESSAGE:
        raise FailedPrecondition("too many different reactions", "too_many_reactions")
    out.append({"emoji": emoji, "users": [user_id]})
    return out, True


def _validate_text(body: str) -> None:
    if not body.strip():
        raise InvalidArgument("message text is empty", "empty_message")
    if len(body) > MAX_TEXT_CHARS:
        raise InvalidArgument(
            f"message text exceeds {MAX_TEXT_CHARS} characters", "message_too_long"
        )


def _validate(
    caller: Caller, client_msg_id: str, body: str, kind: int, file: dict[str, Any] | None
) -> None:
    if not client_msg_id:
        raise InvalidArgument("client_msg_id is required", "client_msg_id_required")
    if len(client_msg_id) > MAX_CLIENT_MSG_ID_CHARS:
        raise InvalidArgument("client_msg_id too long", "client_msg_id_too_long")
    allowed = _USER_KINDS | (_SERVICE_KINDS if caller.has_role(ROLE_SERVICE) else set())
    if kind not in allowed:
        raise InvalidArgument("message kind not allowed", "invalid_message_kind")
    if kind == pb.MESSAGE_KIND_FILE:
        _validate_file(file)
        if len(body) > MAX_TEXT_CHARS:
            raise InvalidArgument("caption too long", "message_too_long")
    else:
        if file is not None:
            raise InvalidArgument("only file messages carry a file", "unexpected_file")
        _validate_text(body)


def _validate_file(file: dict[str, Any] | None) -> None:
    if not file:
        raise InvalidArgument("a file message needs a file", "file_required")
    parts = urlsplit(str(file.get("url", "")))
    if parts.scheme not in ("http", "https") or not parts.netloc or len(file["url"]) > 2048:
        raise InvalidArgument("file url must be http(s) and at most 2048 chars", "invalid_file")
    name = str(file.get("name", ""))
    if not name or len(name) > 255 or len(str(file.get("content_type", ""))) > 127:
        raise InvalidArgument("file name 1-255 chars, content type up to 127", "invalid_file")
    size = int(file.get("size_bytes", 0))
    if size < 0 or size > MAX_FILE_BYTES:
        raise InvalidArgument("file size out of range", "invalid_file")
