"""Edits and deletes: the message changes, and so does every retained copy of it.

The outbox doubles as the event log clients replay for seven days, and its
``message_created`` / ``message_updated`` records carry the message's text. An
edit or delete rewrites those records in its own transaction, so no replay
(and no raw read of the log) returns what the message no longer says.
"""

from __future__ import annotations

from collections.abc import Callable

from confab.conversation.v1 import events_pb2
from confab_core.errors import FailedPrecondition, PermissionDenied
from confab_core.identity import Caller
from conversation import convert
from conversation.handlers import access, attach, audit, mentions
from conversation.handlers import text as textutil
from conversation.handlers.base import HandlerBase
from conversation.handlers.paging import message_not_found
from conversation.handlers.pii import queue_flagged
from conversation.handlers.sending import validate_text
from conversation.handlers.unit import Change, Taken
from conversation.storage.audit import Target
from conversation.storage.conversations import Claim, Conversation
from conversation.storage.members import Member
from conversation.storage.messages import Message


def rewriter(message: Message) -> Callable[[bytes], bytes | None]:
    """A payload rewriter: each event about ``message`` shows it as it is now."""
    now = convert.message(message)
    message_id = message.id

    def rewrite(payload: bytes) -> bytes | None:
        event = events_pb2.ConversationEvent()
        event.ParseFromString(payload)
        kind = event.WhichOneof("payload")
        if kind == "message_created" and event.message_created.message.id == message_id:
            event.message_created.message.CopyFrom(now)
        elif kind == "message_updated" and event.message_updated.message.id == message_id:
            event.message_updated.message.CopyFrom(now)
        elif kind == "message_deleted" and event.message_deleted.message.id == message_id:
            event.message_deleted.message.CopyFrom(now)
        elif kind == "reaction_changed" and event.reaction_changed.message_id == message_id:
            del event.reaction_changed.reactions[:]
            event.reaction_changed.reactions.extend(now.reactions)
        else:
            return None
        return event.SerializeToString()

    return rewrite


class Editing(HandlerBase):
    async def _writable_message(
        self, caller: Caller, conversation_id: str, message_id: str, *, unsanctioned: bool = False
    ) -> tuple[Conversation, Member | None, Message]:
        """``unsanctioned``: the write is one a mute or a ban forbids (an edit, a
        reaction; deleting one's own message stays allowed)."""
        if unsanctioned:
            conv, member = await self.writable_by(caller, conversation_id)
        else:
            conv, member = await self.readable(caller, conversation_id)
        message = await self.store(caller).messages.get(conversation_id, message_id)
        if message is None:
            raise message_not_found()
        return conv, member, message

    async def edit(
        self, caller: Caller, *, conversation_id: str, message_id: str, text: str
    ) -> Message:
        validate_text(text)
        conv, _, message = await self._writable_message(
            caller, conversation_id, message_id, unsanctioned=True
        )
        if message.sender_id != caller.user_id:
            raise PermissionDenied("only the author can edit a message", "not_the_author")
        if message.deleted:
            raise FailedPrecondition("the message was deleted", "message_deleted")
        access.require_writable(conv)
        screened = await self.pii.screen(caller, text, None)
        text = screened.text
        found, everyone = await mentions.resolve(self.store(caller), conversation_id, text)
        terms = textutil.terms(text + " " + (message.file.name if message.file else ""))

        async def body(t: Taken) -> Message:
            doc = await t.store.messages.edit_text(
                conversation_id,
                message_id,
                text=text,
                mentions=found,
                mentions_all=everyone,
                search_terms=terms,
                now=self.clock.now(),
                pii_kinds=screened.flagged,
            )
            if doc is None:
                raise FailedPrecondition("the message was deleted", "message_deleted")
            await queue_flagged(t.store, doc, self.clock.now())
            await t.store.outbox.rewrite_message(conversation_id, message_id, rewriter(doc))
            t.emit(
                events_pb2.ConversationEvent(
                    message_updated=events_pb2.MessageUpdated(message=convert.message(doc))
                ),
                message_id=message_id,
            )
            return doc

        doc, _ = await self.unit.one(Change(caller, conversation_id), body)
        return doc

    async def delete(self, caller: Caller, *, conversation_id: str, message_id: str) -> Message:
        conv, member, message = await self._writable_message(caller, conversation_id, message_id)
        if not access.can_delete_message(caller, await self.granted(caller), member, message):
            raise PermissionDenied("only the author or an admin can delete", "forbidden")
        if message.deleted:
            return message
        access.require_writable(conv)

        file_id = attach.file_of(message)

        async def body(t: Taken) -> Message:
            doc = await self.tombstone_in(t, message_id, file_id)
            if message.sender_id != caller.user_id:
                await self.audit.in_unit(
                    t,
                    audit.MESSAGE_DELETED_BY_OTHER,
                    Target("message", message_id),
                    {"sender_id": message.sender_id},
                    {"deleted": True},
                )
            return doc

        change = Change(
            caller,
            conversation_id,
            Claim(events=2 if file_id else 1),
            audited=message.sender_id != caller.user_id,
        )
        doc, _ = await self.unit.one(change, body)
        return doc

    async def tombstone_in(self, t: Taken, message_id: str, file_id: str = "") -> Message:
        """Inside a unit on the message's conversation: the tombstone, its old
        words gone from the event log, and the ``message_deleted`` event; with
        ``file_id`` (``attach.file_of`` the message, read before the unit, which
        claimed an event more for it) its uploaded file goes too."""
        conversation_id = t.change.conversation_id
        doc = await t.store.messages.tombstone(conversation_id, message_id, self.clock.now())
        if doc is None:
            raise message_not_found()
        await t.store.outbox.rewrite_message(conversation_id, message_id, rewriter(doc))
        t.emit(
            events_pb2.ConversationEvent(
                message_deleted=events_pb2.MessageDeleted(message=convert.message(doc))
            ),
            message_id=message_id,
        )
        if file_id:
            await attach.delete_with_message(t, file_id, self.clock.now())
        return doc
