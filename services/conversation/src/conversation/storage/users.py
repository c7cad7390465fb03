from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pymongo.asynchronous.client_session import AsyncClientSession

from confab_core.mongo import TenantCollection


@dataclass(frozen=True, slots=True)
class UserProfile:
    """What a user's last verified token said about them."""

    user_id: str
    display_name: str
    email: str


class UserRepo:
    """Display names and addresses, learned from the callers' verified tokens."""

    def __init__(self, col: TenantCollection, session: AsyncClientSession | None = None) -> None:
        self._col = col
        self._session = session

    async def upsert(self, user_id: str, display_name: str, email: str, now: datetime) -> None:
        await self._col.update_one(
            {"user_id": user_id},
            {"$set": {"display_name": display_name, "email": email, "updated_at": now}},
            upsert=True,
            session=self._session,
        )

    async def get_many(self, user_ids: list[str]) -> dict[str, UserProfile]:
        """The known profiles among ``user_ids``, by user id."""
        cursor = self._col.find({"user_id": {"$in": user_ids}}, session=self._session)
        return {
            str(doc["user_id"]): UserProfile(
                user_id=str(doc["user_id"]),
                display_name=str(doc.get("display_name", "")),
                email=str(doc.get("email", "")),
            )
            async for doc in cursor
        }

    async def page_by_id(self, after_id: str, limit: int, user_id: str = "") -> list[UserProfile]:
        """Profiles ordered by user id past ``after_id`` (only ``user_id``'s when given)."""
        flt: dict[str, object] = {"user_id": {"$gt": after_id}}
        if user_id:
            flt = {"$and": [{"user_id": user_id}, {"user_id": {"$gt": after_id}}]}
        cursor = self._col.find(flt, sort=[("user_id", 1)], limit=limit, session=self._session)
        return [
            UserProfile(
                user_id=str(doc["user_id"]),
                display_name=str(doc.get("display_name", "")),
                email=str(doc.get("email", "")),
            )
            async for doc in cursor
        ]

    async def count_where(self, user_id: str = "") -> int:
        return await self._col.count({"user_id": user_id} if user_id else {}, session=self._session)

    async def delete(self, user_id: str) -> int:
        """Forgets the profile (erasure): a later token of that user writes a new one."""
        result = await self._col.delete_many({"user_id": user_id}, session=self._session)
        return result.deleted_count
