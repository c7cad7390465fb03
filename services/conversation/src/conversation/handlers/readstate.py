"""Read state: the caller's read marker in a conversation."""

from __future__ import annotations

from confab.conversation.v1 import events_pb2
from confab_core.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from confab_core.identity import Caller
from conversation.handlers.base import HandlerBase
from conversation.handlers.unit import Change, Taken
from conversation.storage.members import Member


class ReadState(HandlerBase):
    async def mark_read(self, caller: Caller, *, conversation_id: str, seq: int) -> tuple[int, int]:
        if seq < 0:
            raise InvalidArgument("seq cannot be negative", "invalid_seq")
        conv, member = await self.readable(caller, conversation_id)
        if member is None:
            raise PermissionDenied("only members have a read marker", "not_a_member")
        target = min(seq, conv.last_seq)
        marker = member.last_read_seq
        if target > marker:

            async def body(t: Taken) -> Member:
                updated = await t.store.members.advance_read(
                    conversation_id, caller.user_id, target
                )
                if updated is None:
                    # Left (or was removed) since the check above.
                    raise FailedPrecondition("membership changed, try again", "membership_changed")
                t.emit(
                    events_pb2.ConversationEvent(
                        read_marker_changed=events_pb2.ReadMarkerChanged(
                            user_id=caller.user_id, last_read_seq=updated.last_read_seq
                        )
                    )
                )
                return updated

            moved, conv = await self.unit.one(Change(caller, conversation_id), body)
            member, marker = moved, moved.last_read_seq
        unread, _ = await self.counts(caller, conv, member)
        return marker, unread
