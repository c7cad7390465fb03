"""Reactions: one user's emoji on a message, toggled."""

from __future__ import annotations

from dataclasses import dataclass

from confab.conversation.v1 import events_pb2
from confab_core.errors import FailedPrecondition, InvalidArgument
from confab_core.identity import Caller
from confab_core.limits import MAX_EMOJI_CHARS, MAX_REACTIONS_PER_MESSAGE
from conversation import convert
from conversation.handlers import access
from conversation.handlers.editing import Editing
from conversation.handlers.paging import message_not_found
from conversation.handlers.unit import Change, Taken
from conversation.storage.messages import Message


@dataclass(frozen=True)
class Reacted:
    message: Message
    added: bool


class Reactions(Editing):
    async def react(
        self, caller: Caller, *, conversation_id: str, message_id: str, emoji: str
    ) -> tuple[Message, bool]:
        if not emoji or len(emoji) > MAX_EMOJI_CHARS or any(c.isspace() for c in emoji):
            raise InvalidArgument("an emoji is 1-64 characters without spaces", "invalid_emoji")
        conv, member, message = await self._writable_message(
            caller, conversation_id, message_id, unsanctioned=True
        )
        access.require_writer(caller, conv, member, "react")
        access.require_writable(conv)
        if message.deleted:
            raise FailedPrecondition("the message was deleted", "message_deleted")

        async def body(t: Taken) -> Reacted:
            toggle = await t.store.messages.toggle_reaction(
                conversation_id, message_id, emoji, caller.user_id, MAX_REACTIONS_PER_MESSAGE
            )
            if toggle.full:
                raise FailedPrecondition("too many different reactions", "too_many_reactions")
            if toggle.message is None:
                raise message_not_found()
            t.emit(
                events_pb2.ConversationEvent(
                    reaction_changed=events_pb2.ReactionChanged(
                        message_id=message_id,
                        emoji=emoji,
                        user_id=caller.user_id,
                        added=toggle.added,
                        reactions=convert.reactions(toggle.message),
                    )
                ),
                message_id=message_id,
            )
            return Reacted(toggle.message, toggle.added)

        reacted, _ = await self.unit.one(Change(caller, conversation_id), body)
        return reacted.message, reacted.added
