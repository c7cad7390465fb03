from __future__ import annotations

from datetime import datetime

from confab_core.mongo import Doc, TenantCollection


class UserRepo:
    """Display names and addresses, learned from the callers' verified tokens."""

    def __init__(self, col: TenantCollection) -> None:
        self._col = col

    async def upsert(self, user_id: str, display_name: str, email: str, now: datetime) -> None:
        await self._col.update_one(
            {"user_id": user_id},
            {"$set": {"display_name": display_name, "email": email, "updated_at": now}},
            upsert=True,
        )

    async def get_many(self, user_ids: list[str]) -> dict[str, Doc]:
        cursor = self._col.find({"user_id": {"$in": user_ids}})
        return {doc["user_id"]: doc async for doc in cursor}
