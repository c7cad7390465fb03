"""Membership lookups for other services' rules (MembershipService)."""

from __future__ import annotations

from confab_core.mongo import Doc, TenantCollection
from conversation.storage.db import Database
from conversation.storage.members import member_id


class MembershipQueries:
    def __init__(self, conversations: TenantCollection, members: TenantCollection) -> None:
        self._conversations = conversations
        self._members = members

    @classmethod
    def for_tenant(cls, db: Database, tenant_id: str) -> MembershipQueries:
        return cls(
            TenantCollection(db.db["conversations"], tenant_id),
            TenantCollection(db.db["members"], tenant_id),
        )

    async def conversation_and_member(
        self, conversation_id: str, user_id: str
    ) -> tuple[Doc | None, Doc | None]:
        conv = await self._conversations.find_one({"_id": conversation_id})
        if conv is None:
            return None, None
        member = await self._members.find_one({"_id": member_id(conversation_id, user_id)})
        return conv, member

    async def co_members(self, user_id: str, others: list[str]) -> set[str]:
        """Which of ``others`` share a conversation that is not deleted with ``user_id``.

        Three reads whatever the numbers: the user's conversations, the others'
        memberships among them, and which of those conversations still exist.
        """
        if not others:
            return set()
        mine = [
            doc["conversation_id"]
            async for doc in self._members.find(
                {"user_id": user_id}, projection={"conversation_id": 1, "_id": 0}
            )
        ]
        if not mine:
            return set()
        rows = [
            (doc["user_id"], doc["conversation_id"])
            async for doc in self._members.find(
                {"conversation_id": {"$in": mine}, "user_id": {"$in": others}},
                projection={"user_id": 1, "conversation_id": 1, "_id": 0},
            )
        ]
        if not rows:
            return set()
        live = {
            doc["_id"]
            async for doc in self._conversations.find(
                {"_id": {"$in": list({c for _, c in rows})}, "deleted": {"$ne": True}},
                projection={"_id": 1},
            )
        }
        return {u for u, c in rows if c in live}
