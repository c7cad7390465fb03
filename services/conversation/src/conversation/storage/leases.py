"""Leases: which replica runs a singleton loop (the outbox relay), until when."""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from confab_core.mongo import Doc


class LeaseRepo:
    """Service-wide, not tenant data: one document per lease name."""

    def __init__(self, col: AsyncCollection[Doc]) -> None:
        self._col = col

    async def take(self, name: str, owner: str, now: datetime, duration: timedelta) -> bool:
        """Takes or renews the lease for ``owner``; False while another holds it."""
        try:
            doc = await self._col.find_one_and_update(
                {"_id": name, "$or": [{"owner": owner}, {"expires_at": {"$lt": now}}]},
                {"$set": {"owner": owner, "expires_at": now + duration}},
                upsert=True,
                # The document after the update says who holds the lease now;
                # the one before names the previous (expired) holder on a takeover.
                return_document=ReturnDocument.AFTER,
            )
        except PyMongoError as exc:
            # The upsert collides with the unique _id while another replica holds it.
            if "duplicate key" in str(exc).lower() or getattr(exc, "code", None) == 11000:
                return False
            raise
        return doc is not None and doc.get("owner") == owner
