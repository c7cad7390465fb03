"""History: pages of a conversation's messages, and of a thread."""

from __future__ import annotations

from dataclasses import dataclass

from confab_core.errors import InvalidArgument
from confab_core.identity import Caller
from conversation.handlers.base import HandlerBase
from conversation.handlers.paging import message_not_found, page_limit
from conversation.storage.messages import Message


@dataclass(frozen=True)
class Page:
    messages: list[Message]
    has_more: bool


class History(HandlerBase):
    async def page(
        self, caller: Caller, *, conversation_id: str, after_seq: int, before_seq: int, limit: int
    ) -> Page:
        if after_seq < 0 or before_seq < 0:
            raise InvalidArgument("seq cursors cannot be negative", "invalid_cursor")
        if after_seq and before_seq:
            raise InvalidArgument("give after_seq or before_seq, not both", "invalid_cursor")
        limit = page_limit(limit)
        conv, _ = await self.readable(caller, conversation_id)
        last_seq = conv.last_seq
        store = self.store(caller)
        if before_seq:
            docs = await store.messages.page_before(
                conversation_id, before_seq, limit + 1, last_seq
            )
        else:
            docs = await store.messages.page_after(conversation_id, after_seq, limit + 1, last_seq)
        return Page(docs[:limit], has_more=len(docs) > limit)

    async def thread(
        self,
        caller: Caller,
        *,
        conversation_id: str,
        root_message_id: str,
        after_seq: int,
        limit: int,
    ) -> tuple[Message, Page]:
        if after_seq < 0:
            raise InvalidArgument("seq cursors cannot be negative", "invalid_cursor")
        limit = page_limit(limit)
        await self.readable(caller, conversation_id)
        store = self.store(caller)
        root = await store.messages.get(conversation_id, root_message_id)
        if root is None or root.thread_root_id:
            raise message_not_found()
        docs = await store.messages.thread_after(
            conversation_id, root_message_id, after_seq, limit + 1
        )
        return root, Page(docs[:limit], has_more=len(docs) > limit)
