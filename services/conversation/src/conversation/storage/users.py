from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pymongo.asynchronous.client_session import AsyncClientSession

from confab_core.mongo import Doc, TenantCollection
from conversation.storage.keys import TenantCipher, TenantCrypto

_C = "users"


@dataclass(frozen=True, slots=True)
class UserProfile:
    """What a user's last verified token said about them."""

    user_id: str
    display_name: str
    email: str
    # The roles of that token: the roster of agents (auto-assignment) is read from them.
    roles: tuple[str, ...] = ()


def _profile(c: TenantCipher, doc: Doc) -> UserProfile:
    user_id = str(doc["user_id"])
    return UserProfile(
        user_id=user_id,
        display_name=c.open(_C, user_id, "display_name", doc.get("display_name")),
        email=c.open(_C, user_id, "email", doc.get("email")),
        roles=tuple(str(r) for r in doc.get("roles", [])),
    )


class UserRepo:
    """Display names and addresses, learned from the callers' verified tokens."""

    def __init__(
        self,
        col: TenantCollection,
        crypto: TenantCrypto,
        session: AsyncClientSession | None = None,
    ) -> None:
        self._col = col
        self._crypto = crypto
        self._session = session

    async def upsert(
        self,
        user_id: str,
        display_name: str,
        email: str,
        now: datetime,
        roles: tuple[str, ...] = (),
    ) -> None:
        c = await self._crypto.cipher()
        await self._col.update_one(
            {"user_id": user_id},
            {
                "$set": {
                    "display_name": c.seal(_C, user_id, "display_name", display_name),
                    "email": c.seal(_C, user_id, "email", email),
                    "roles": sorted(roles),
                    "updated_at": now,
                }
            },
            upsert=True,
            session=self._session,
        )

    async def get_many(self, user_ids: list[str]) -> dict[str, UserProfile]:
        """The known profiles among ``user_ids``, by user id."""
        c = await self._crypto.cipher()
        cursor = self._col.find({"user_id": {"$in": user_ids}}, session=self._session)
        out: dict[str, UserProfile] = {}
        async for doc in cursor:
            user_id = str(doc["user_id"])
            out[user_id] = _profile(c, doc)
        return out

    async def with_roles(self, roles: tuple[str, ...], limit: int) -> list[UserProfile]:
        """Users whose last token carried any of ``roles`` (the agent roster), by id."""
        c = await self._crypto.cipher()
        cursor = self._col.find(
            {"roles": {"$in": list(roles)}},
            sort=[("user_id", 1)],
            limit=limit,
            session=self._session,
        )
        return [_profile(c, doc) async for doc in cursor]

    async def page_by_id(self, after_id: str, limit: int, user_id: str = "") -> list[UserProfile]:
        """Profiles ordered by user id past ``after_id`` (only ``user_id``'s when given)."""
        flt: dict[str, object] = {"user_id": {"$gt": after_id}}
        if user_id:
            flt = {"$and": [{"user_id": user_id}, {"user_id": {"$gt": after_id}}]}
        c = await self._crypto.cipher()
        cursor = self._col.find(flt, sort=[("user_id", 1)], limit=limit, session=self._session)
        return [_profile(c, doc) async for doc in cursor]

    async def count_where(self, user_id: str = "") -> int:
        return await self._col.count({"user_id": user_id} if user_id else {}, session=self._session)

    async def delete(self, user_id: str) -> int:
        """Forgets the profile (erasure): a later token of that user writes a new one."""
        result = await self._col.delete_many({"user_id": user_id}, session=self._session)
        return result.deleted_count
