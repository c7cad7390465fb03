"""Membership answers for other services: may this caller type here, whom may
they see. Pure questions; nothing is written."""

from __future__ import annotations

from collections.abc import Sequence

from confab_core.errors import InvalidArgument, PermissionDenied
from confab_core.identity import Caller
from conversation.handlers import access
from conversation.storage.db import Database
from conversation.storage.membership import MembershipQueries

MAX_FILTER_IDS = 500


class MembershipHandler:
    def __init__(self, db: Database) -> None:
        self._db = db

    def _queries(self, caller: Caller) -> MembershipQueries:
        return MembershipQueries.for_tenant(self._db, caller.tenant_id)

    async def check_member(self, caller: Caller, conversation_id: str) -> None:
        conv, member = await self._queries(caller).conversation_and_member(
            conversation_id, caller.user_id
        )
        # Invisible first: a non-member of a private conversation learns nothing.
        access.require_visible(caller, conv, member)
        if member is None:
            raise PermissionDenied("not a member of this conversation", "not_a_member")

    async def filter_co_members(self, caller: Caller, user_ids: Sequence[str]) -> list[str]:
        if len(user_ids) > MAX_FILTER_IDS:
            raise InvalidArgument(
                f"at most {MAX_FILTER_IDS} user ids per call", "too_many_user_ids"
            )
        wanted = list(dict.fromkeys(user_ids))
        others = [u for u in wanted if u != caller.user_id]
        shared = await self._queries(caller).co_members(caller.user_id, others)
        return [u for u in wanted if u == caller.user_id or u in shared]
