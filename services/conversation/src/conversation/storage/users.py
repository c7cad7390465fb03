from __future__ import annotations

from datetime import datetime

from pymongo.asynchronous.client_session import AsyncClientSession

from confab_core.mongo import Doc, TenantCollection


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

    async def get_many(self, user_ids: list[str]) -> dict[str, Doc]:
        cursor = self._col.find({"user_id": {"$in": user_ids}}, session=self._session)
        return {doc["user_id"]: doc async for doc in cursor}
