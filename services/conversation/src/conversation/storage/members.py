from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from pymongo.asynchronous.client_session import AsyncClientSession

from confab.conversation.v1 import conversation_pb2 as pb
from confab_core.mongo import Doc, TenantCollection
from conversation.storage.inserts import insert_all


def member_id(conversation_id: str, user_id: str) -> str:
    return f"{conversation_id}:{user_id}"


@dataclass(frozen=True, slots=True)
class Member:
    """One user's membership of one conversation."""

    conversation_id: str
    user_id: str
    role: int
    joined_at: datetime
    # The highest message seq the user has read.
    last_read_seq: int


def _document(m: Member) -> Doc:
    return {
        "_id": member_id(m.conversation_id, m.user_id),
        "conversation_id": m.conversation_id,
        "user_id": m.user_id,
        "role": m.role,
        "joined_at": m.joined_at,
        "last_read_seq": m.last_read_seq,
    }


def _member(doc: Doc | None) -> Member | None:
    return None if doc is None else _record(doc)


def _record(doc: Doc) -> Member:
    return Member(
        conversation_id=str(doc["conversation_id"]),
        user_id=str(doc["user_id"]),
        role=int(doc["role"]),
        joined_at=doc["joined_at"],
        last_read_seq=int(doc["last_read_seq"]),
    )


class MemberRepo:
    def __init__(self, col: TenantCollection, session: AsyncClientSession | None = None) -> None:
        self._col = col
        self._session = session

    async def insert_members(
        self, conversation_id: str, roles: Mapping[str, int], now: datetime
    ) -> list[Member]:
        """New memberships (user id to role), in one round trip."""
        members = [Member(conversation_id, u, role, now, 0) for u, role in roles.items()]
        await insert_all(self._col, [_document(m) for m in members], self._session)
        return members

    async def get(self, conversation_id: str, user_id: str) -> Member | None:
        return _member(
            await self._col.find_one(
                {"_id": member_id(conversation_id, user_id)}, session=self._session
            )
        )

    async def get_many(self, conversation_id: str, user_ids: list[str]) -> list[Member]:
        cursor = self._col.find(
            {"_id": {"$in": [member_id(conversation_id, u) for u in user_ids]}},
            session=self._session,
        )
        return [_record(doc) async for doc in cursor]

    async def list_for_conversation(self, conversation_id: str, limit: int = 0) -> list[Member]:
        cursor = self._col.find(
            {"conversation_id": conversation_id},
            sort=[("joined_at", 1), ("user_id", 1)],
            limit=limit,
            session=self._session,
        )
        return [_record(doc) async for doc in cursor]

    async def list_for_user(self, user_id: str) -> list[Member]:
        cursor = self._col.find({"user_id": user_id}, session=self._session)
        return [_record(doc) async for doc in cursor]

    async def conversation_ids_of(self, user_id: str) -> list[str]:
        cursor = self._col.find(
            {"user_id": user_id},
            projection={"conversation_id": 1, "_id": 0},
            session=self._session,
        )
        return [doc["conversation_id"] async for doc in cursor]

    async def memberships_among(
        self, conversation_ids: list[str], user_ids: list[str]
    ) -> list[tuple[str, str]]:
        """(user id, conversation id) for each of ``user_ids`` in ``conversation_ids``."""
        if not conversation_ids or not user_ids:
            return []
        cursor = self._col.find(
            {"conversation_id": {"$in": conversation_ids}, "user_id": {"$in": user_ids}},
            projection={"user_id": 1, "conversation_id": 1, "_id": 0},
            session=self._session,
        )
        return [(doc["user_id"], doc["conversation_id"]) async for doc in cursor]

    async def count_owners(self, conversation_id: str) -> int:
        return await self._col.count(
            {"conversation_id": conversation_id, "role": pb.MEMBER_ROLE_OWNER},
            session=self._session,
        )

    async def remove(self, conversation_id: str, user_id: str) -> bool:
        result = await self._col.delete_many(
            {"_id": member_id(conversation_id, user_id)}, session=self._session
        )
        return result.deleted_count == 1

    async def set_role(self, conversation_id: str, user_id: str, role: int) -> Member | None:
        return _member(
            await self._col.find_one_and_update(
                {"_id": member_id(conversation_id, user_id)},
                {"$set": {"role": role}},
                session=self._session,
            )
        )

    async def advance_read_many(self, marks: list[tuple[str, str, int]]) -> None:
        """``advance_read`` for several (conversation, user, seq) in one round trip."""
        await self._col.update_each(
            [({"_id": member_id(c, u)}, {"$max": {"last_read_seq": seq}}) for c, u, seq in marks],
            session=self._session,
        )

    async def advance_read(self, conversation_id: str, user_id: str, seq: int) -> Member | None:
        """Moves the read marker forward only; a stale mark never moves it back."""
        return _member(
            await self._col.find_one_and_update(
                {"_id": member_id(conversation_id, user_id)},
                {"$max": {"last_read_seq": seq}},
                session=self._session,
            )
        )

    async def page_by_id(
        self, after_id: str, limit: int, *, conversation_id: str = "", user_id: str = ""
    ) -> list[Member]:
        """Memberships by id past ``after_id``: of one conversation, one user, or all."""
        flt: dict[str, object] = {"_id": {"$gt": after_id}}
        if conversation_id:
            flt["conversation_id"] = conversation_id
        if user_id:
            flt["user_id"] = user_id
        cursor = self._col.find(flt, sort=[("_id", 1)], limit=limit, session=self._session)
        return [_record(doc) async for doc in cursor]

    async def count_where(self, *, conversation_id: str = "", user_id: str = "") -> int:
        flt: dict[str, object] = {}
        if conversation_id:
            flt["conversation_id"] = conversation_id
        if user_id:
            flt["user_id"] = user_id
        return await self._col.count(flt, session=self._session)

    async def purge_conversation(self, conversation_id: str) -> int:
        result = await self._col.delete_many(
            {"conversation_id": conversation_id}, session=self._session
        )
        return result.deleted_count
