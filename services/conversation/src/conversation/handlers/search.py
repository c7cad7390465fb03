"""Search: the caller's messages by their words."""

from __future__ import annotations

from confab_core.errors import InvalidArgument
from confab_core.identity import Caller
from confab_core.limits import MAX_QUERY_CHARS, MAX_SEARCH_TERMS
from confab_core.telemetry import tracer
from conversation.handlers import access
from conversation.handlers import text as textutil
from conversation.handlers.base import HandlerBase
from conversation.handlers.paging import page_limit
from conversation.storage.messages import Message


class Search(HandlerBase):
    async def search(
        self, caller: Caller, *, query: str, conversation_id: str, limit: int
    ) -> list[Message]:
        if len(query) > MAX_QUERY_CHARS:
            raise InvalidArgument("query too long", "query_too_long")
        terms = textutil.terms(query)[:MAX_SEARCH_TERMS]
        if not terms:
            raise InvalidArgument("give at least one word of 2+ characters", "query_too_short")
        limit = page_limit(limit, default=20)
        store = self.store(caller)
        if conversation_id:
            await self.readable(caller, conversation_id)
            scope = [conversation_id]
        else:
            scope = [m.conversation_id for m in await store.members.list_for_user(caller.user_id)]
            live = await store.conversations.get_many_by_activity(scope, 0)
            closed = access.closed_kinds(caller, await self.granted(caller))
            scope = [c.id for c in live if c.kind not in closed]
        if not scope:
            return []
        with tracer().start_as_current_span(
            "confab.message.search",
            attributes={"confab.tenant_id": caller.tenant_id, "confab.search.terms": len(terms)},
        ):
            return await store.messages.search(scope, terms, limit)
