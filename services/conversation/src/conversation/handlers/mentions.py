"""Mentions as stored: only the named users who are members of the conversation."""

from __future__ import annotations

from conversation.handlers import text as textutil
from conversation.storage.db import TenantStore

# Names looked up per message: more is spam, not a conversation.
MAX_LOOKED_UP = 100


async def resolve(store: TenantStore, conversation_id: str, body: str) -> tuple[list[str], bool]:
    names, everyone = textutil.parse_mentions(body)
    if not names:
        return [], everyone
    members = await store.members.get_many(conversation_id, names[:MAX_LOOKED_UP])
    present = {m.user_id for m in members}
    return [n for n in names if n in present], everyone
