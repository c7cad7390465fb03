"""Membership answers for other services: may this caller type here, whom may
they see. Pure questions; nothing is written."""

from __future__ import annotations

from collections.abc import Sequence

from confab_core.errors import InvalidArgument, PermissionDenied
from confab_core.identity import Caller
from conversation.handlers import access
from conversation.handlers.rolecache import RoleMatrixCache
from conversation.storage.db import Database, TenantStore

MAX_FILTER_IDS = 500


class MembershipHandler:
    def __init__(self, db: Database, roles: RoleMatrixCache) -> None:
        self._db = db
        self._roles = roles

    def _store(self, caller: Caller) -> TenantStore:
        return self._db.for_tenant(caller.tenant_id)

    async def check_member(self, caller: Caller, conversation_id: str) -> None:
        store = self._store(caller)
        conv = await store.conversations.get(conversation_id)
        member = None if conv is None else await store.members.get(conversation_id, caller.user_id)
        # Invisible first: a non-member of a private conversation learns nothing.
        access.require_visible(caller, await self._roles.granted(caller), conv, member)
        if member is None:
            raise PermissionDenied("not a member of this conversation", "not_a_member")

    async def filter_co_members(self, caller: Caller, user_ids: Sequence[str]) -> list[str]:
        if len(user_ids) > MAX_FILTER_IDS:
            raise InvalidArgument(
                f"at most {MAX_FILTER_IDS} user ids per call", "too_many_user_ids"
            )
        wanted = list(dict.fromkeys(user_ids))
        others = [u for u in wanted if u != caller.user_id]
        shared = await self._co_members(self._store(caller), caller.user_id, others)
        return [u for u in wanted if u == caller.user_id or u in shared]

    @staticmethod
    async def _co_members(store: TenantStore, user_id: str, others: list[str]) -> set[str]:
        """Which of ``others`` share a conversation that is not deleted with ``user_id``.

        Three reads whatever the numbers: the user's conversations, the others'
        memberships among them, and which of those conversations still exist.
        """
        if not others:
            return set()
        mine = await store.members.conversation_ids_of(user_id)
        rows = await store.members.memberships_among(mine, others)
        live = await store.conversations.live_ids(list({c for _, c in rows}))
        return {u for u, c in rows if c in live}
