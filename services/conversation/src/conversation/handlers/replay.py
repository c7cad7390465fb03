"""Event replay: a conversation's retained events, for clients that resume."""

from __future__ import annotations

from dataclasses import dataclass

from confab_core.errors import InvalidArgument
from confab_core.identity import Caller
from conversation.handlers.base import HandlerBase
from conversation.handlers.paging import page_limit


@dataclass(frozen=True)
class EventPage:
    events: list[bytes]
    has_more: bool
    resync_required: bool


class Replay(HandlerBase):
    async def events(
        self, caller: Caller, *, conversation_id: str, after_event_seq: int, limit: int
    ) -> EventPage:
        if after_event_seq < 0:
            raise InvalidArgument("seq cursors cannot be negative", "invalid_cursor")
        limit = page_limit(limit)
        conv, _ = await self.readable(caller, conversation_id)
        last = conv.last_event_seq
        if after_event_seq >= last:
            return EventPage([], has_more=False, resync_required=False)
        stored = await self.store(caller).outbox.page(conversation_id, after_event_seq, limit + 1)
        if not stored or stored[0].event_seq != after_event_seq + 1:
            # The log no longer holds the next event: replaying would leave a gap.
            return EventPage([], has_more=False, resync_required=True)
        return EventPage(
            [e.payload for e in stored[:limit]],
            has_more=len(stored) > limit,
            resync_required=False,
        )
