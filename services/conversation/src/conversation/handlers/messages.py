"""Sending, paging and reading messages."""

from __future__ import annotations

from dataclasses import dataclass

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import events_pb2
from confab_core.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from confab_core.identity import ROLE_SERVICE, Caller
from confab_core.ids import new_id
from confab_core.mongo import Doc
from confab_core.telemetry import tracer
from conversation import convert
from conversation.handlers.base import HandlerBase
from conversation.limits import DEFAULT_PAGE, MAX_CLIENT_MSG_ID_CHARS, MAX_PAGE, MAX_TEXT_CHARS

_USER_KINDS = {pb.MESSAGE_KIND_TEXT, pb.MESSAGE_KIND_FILE}
_SERVICE_KINDS = {pb.MESSAGE_KIND_BOT, pb.MESSAGE_KIND_SYSTEM}


@dataclass(frozen=True)
class Sent:
    message: Doc
    created: bool


@dataclass(frozen=True)
class Page:
    messages: list[Doc]
    has_more: bool


class MessageHandler(HandlerBase):
    async def send(
        self,
        caller: Caller,
        *,
        conversation_id: str,
        client_msg_id: str,
        text: str,
        kind: int,
        thread_root_id: str,
    ) -> Sent:
        with tracer().start_as_current_span(
            "confab.message.send",
            attributes={
                "confab.tenant_id": caller.tenant_id,
                "confab.conversation_id": conversation_id,
            },
        ) as span:
            kind = kind or pb.MESSAGE_KIND_TEXT
            _validate(caller, client_msg_id, text, kind)
            await self.remember_profile(caller)
            conv, member = await self.readable(caller, conversation_id)
            if member is None:
                raise PermissionDenied("only members can send", "not_a_member")
            if member["role"] == pb.MEMBER_ROLE_OBSERVER:
                raise PermissionDenied("observers cannot send", "observer_cannot_send")
            if conv.get("archived"):
                raise FailedPrecondition("conversation is archived", "conversation_archived")
            store = self.store(caller)
            existing = await store.messages.by_client_id(
                conversation_id, caller.user_id, client_msg_id
            )
            if existing is not None:
                span.set_attribute("confab.message.duplicate", True)
                return Sent(existing, created=False)
            if thread_root_id:
                await self._check_thread_root(caller, conversation_id, thread_root_id)

            async def write(session: AsyncClientSession) -> Doc:
                after = await store.conversations.next_seq(
                    conversation_id, self.clock.now(), message=True, session=session
                )
                if after is None:
                    raise NotFound("conversation not found", "conversation_not_found")
                doc: Doc = {
                    "_id": new_id(),
                    "conversation_id": conversation_id,
                    "seq": int(after["last_seq"]),
                    "sender_id": caller.user_id,
                    "sender_name": caller.display_name,
                    "kind": kind,
                    "text": text,
                    "client_msg_id": client_msg_id,
                    "created_at": self.clock.now(),
                    "thread_root_id": thread_root_id,
                }
                await store.messages.insert(doc, session)
                # The sender has read everything up to their own message.
                await store.members.advance_read(
                    conversation_id, caller.user_id, doc["seq"], session
                )
                event = events_pb2.ConversationEvent(
                    message_created=events_pb2.MessageCreated(
                        message=convert.message(doc), conversation_kind=conv["kind"]
                    )
                )
                await self.emit(store, session, caller, after, event)
                return doc

            try:
                doc = await self.transaction(write)
            except DuplicateKeyError:
                # A concurrent retry of the same send won the insert.
                again = await store.messages.by_client_id(
                    conversation_id, caller.user_id, client_msg_id
                )
                if again is None:
                    raise
                return Sent(again, created=False)
            span.set_attribute("confab.message.seq", doc["seq"])
            return Sent(doc, created=True)

    async def _check_thread_root(self, caller: Caller, conversation_id: str, root_id: str) -> None:
        root = await self.store(caller).messages.get(conversation_id, root_id)
        if root is None or root.get("thread_root_id"):
            raise InvalidArgument(
                "thread root must be a top-level message of this conversation",
                "invalid_thread_root",
            )

    async def page(
        self, caller: Caller, *, conversation_id: str, after_seq: int, before_seq: int, limit: int
    ) -> Page:
        if after_seq < 0 or before_seq < 0:
            raise InvalidArgument("seq cursors cannot be negative", "invalid_cursor")
        if after_seq and before_seq:
            raise InvalidArgument("give after_seq or before_seq, not both", "invalid_cursor")
        if limit < 0 or limit > MAX_PAGE:
            raise InvalidArgument(f"limit must be between 1 and {MAX_PAGE}", "invalid_limit")
        limit = limit or DEFAULT_PAGE
        await self.readable(caller, conversation_id)
        store = self.store(caller)
        if before_seq:
            docs = await store.messages.page_before(conversation_id, before_seq, limit + 1)
        else:
            docs = await store.messages.page_after(conversation_id, after_seq, limit + 1)
        return Page(docs[:limit], has_more=len(docs) > limit)

    async def mark_read(self, caller: Caller, *, conversation_id: str, seq: int) -> tuple[int, int]:
        if seq < 0:
            raise InvalidArgument("seq cannot be negative", "invalid_seq")
        conv, member = await self.readable(caller, conversation_id)
        if member is None:
            raise PermissionDenied("only members have a read marker", "not_a_member")
        target = min(seq, int(conv["last_seq"]))
        if target <= int(member["last_read_seq"]):
            last = int(member["last_read_seq"])
            return last, max(0, int(conv["last_seq"]) - last)
        store = self.store(caller)

        async def write(session: AsyncClientSession) -> int:
            after = await store.conversations.next_seq(
                conversation_id, self.clock.now(), message=False, session=session
            )
            if after is None:
                raise NotFound("conversation not found", "conversation_not_found")
            updated = await store.members.advance_read(
                conversation_id, caller.user_id, target, session
            )
            last = int(updated["last_read_seq"]) if updated else target
            event = events_pb2.ConversationEvent(
                read_marker_changed=events_pb2.ReadMarkerChanged(
                    user_id=caller.user_id, last_read_seq=last
                )
            )
            await self.emit(store, session, caller, after, event)
            return last

        last = await self.transaction(write)
        return last, max(0, int(conv["last_seq"]) - last)


def _validate(caller: Caller, client_msg_id: str, text: str, kind: int) -> None:
    if not client_msg_id:
        raise InvalidArgument("client_msg_id is required", "client_msg_id_required")
    if len(client_msg_id) > MAX_CLIENT_MSG_ID_CHARS:
        raise InvalidArgument("client_msg_id too long", "client_msg_id_too_long")
    if not text.strip():
        raise InvalidArgument("message text is empty", "empty_message")
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidArgument(
            f"message text exceeds {MAX_TEXT_CHARS} characters", "message_too_long"
        )
    allowed = _USER_KINDS | (_SERVICE_KINDS if caller.has_role(ROLE_SERVICE) else set())
    if kind not in allowed:
        raise InvalidArgument("message kind not allowed", "invalid_message_kind")
