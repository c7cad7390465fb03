"""Canned replies (``canned_replies``) and the tenant's support profile
(``support_profiles``, one document per tenant).

A reply's body is user content: sealed at rest, and found by the blind tokens of
its words (like message search), so the words never sit in clear. Shortcodes stay
in clear: short labels matched by prefix and substring (docs/security.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from confab_core.mongo import Doc, TenantCollection
from conversation.storage.keys import TenantCrypto

CANNED_COLLECTION = "canned_replies"
PROFILE_COLLECTION = "support_profiles"
# A shared reply's owner_id: the unique (tenant, owner, shortcode) index then
# keeps shortcodes unique per scope, and per owner among personal replies.
SHARED_OWNER = ""


class ShortcodeTaken(Exception):
    """The scope (and owner) already has a reply with this shortcode."""


@dataclass(frozen=True, slots=True)
class CannedReply:
    id: str
    scope: str
    # The owner of a personal reply; SHARED_OWNER for a shared one.
    owner_id: str
    shortcode: str
    body: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CannedKey:
    """What ranking needs of a reply, without opening its body."""

    id: str
    scope: str
    shortcode: str
    # Its body has every queried word (false when no words were queried).
    body_match: bool


@dataclass(frozen=True, slots=True)
class SupportProfile:
    name: str
    updated_at: datetime


class CannedReplyRepo:
    def __init__(
        self,
        col: TenantCollection,
        crypto: TenantCrypto,
        session: AsyncClientSession | None = None,
    ) -> None:
        self._col = col
        self._crypto = crypto
        self._session = session

    async def _record(self, doc: Doc) -> CannedReply:
        c = await self._crypto.cipher()
        doc_id = str(doc["_id"])
        return CannedReply(
            id=doc_id,
            scope=str(doc["scope"]),
            owner_id=str(doc["owner_id"]),
            shortcode=str(doc["shortcode"]),
            body=c.open(CANNED_COLLECTION, doc_id, "body", doc.get("body")),
            created_at=doc["created_at"],
            updated_at=doc["updated_at"],
        )

    async def insert(self, reply: CannedReply, words: list[str]) -> None:
        """Stores a new reply; ShortcodeTaken when its scope and owner have the shortcode."""
        c = await self._crypto.cipher()
        try:
            await self._col.insert_one(
                {
                    "_id": reply.id,
                    "scope": reply.scope,
                    "owner_id": reply.owner_id,
                    "shortcode": reply.shortcode,
                    "body": c.seal(CANNED_COLLECTION, reply.id, "body", reply.body),
                    "body_terms": c.tokens(words),
                    "created_at": reply.created_at,
                    "updated_at": reply.updated_at,
                },
                session=self._session,
            )
        except DuplicateKeyError as exc:
            raise ShortcodeTaken(reply.shortcode) from exc

    async def get(self, reply_id: str) -> CannedReply | None:
        doc = await self._col.find_one({"_id": reply_id}, session=self._session)
        return None if doc is None else await self._record(doc)

    async def get_many(self, reply_ids: list[str]) -> dict[str, CannedReply]:
        cursor = self._col.find({"_id": {"$in": reply_ids}}, session=self._session)
        return {str(doc["_id"]): await self._record(doc) async for doc in cursor}

    async def replace(self, reply: CannedReply, words: list[str] | None) -> CannedReply | None:
        """Writes the reply's shortcode and body (and the body's words, when given);
        None when it is gone, ShortcodeTaken when the shortcode is another's."""
        c = await self._crypto.cipher()
        changes: Doc = {
            "shortcode": reply.shortcode,
            "body": c.seal(CANNED_COLLECTION, reply.id, "body", reply.body),
            "updated_at": reply.updated_at,
        }
        if words is not None:
            changes["body_terms"] = c.tokens(words)
        try:
            result = await self._col.update_one(
                {"_id": reply.id}, {"$set": changes}, session=self._session
            )
        except DuplicateKeyError as exc:
            raise ShortcodeTaken(reply.shortcode) from exc
        return reply if result.matched_count else None

    async def delete(self, reply_id: str) -> bool:
        result = await self._col.delete_many({"_id": reply_id}, session=self._session)
        return result.deleted_count > 0

    async def count_owned(self, owner_id: str) -> int:
        """The tenant's shared replies (SHARED_OWNER), or one user's personal ones."""
        return await self._col.count({"owner_id": owner_id}, session=self._session)

    async def keys(self, owner_id: str, words: list[str]) -> list[CannedKey]:
        """The shared replies and ``owner_id``'s personal ones, each marked with
        whether its body has all of ``words`` (compared as blind tokens)."""
        c = await self._crypto.cipher()
        wanted = set(c.tokens(words))
        cursor = self._col.find(
            {"owner_id": {"$in": [SHARED_OWNER, owner_id]}},
            projection={"scope": 1, "shortcode": 1, "body_terms": 1},
            session=self._session,
        )
        return [
            CannedKey(
                id=str(doc["_id"]),
                scope=str(doc["scope"]),
                shortcode=str(doc["shortcode"]),
                body_match=bool(wanted) and wanted.issubset(doc.get("body_terms", ())),
            )
            async for doc in cursor
        ]

    async def page_by_id(
        self, after_id: str, limit: int, owner_id: str | None
    ) -> list[CannedReply]:
        """By id past ``after_id``: every reply (None), or one owner's (an export)."""
        flt: Doc = {"_id": {"$gt": after_id}}
        if owner_id is not None:
            flt["owner_id"] = owner_id
        cursor = self._col.find(flt, sort=[("_id", 1)], limit=limit, session=self._session)
        return [await self._record(doc) async for doc in cursor]

    async def count_where(self, owner_id: str | None) -> int:
        flt: Doc = {} if owner_id is None else {"owner_id": owner_id}
        return await self._col.count(flt, session=self._session)

    async def delete_owned(self, owner_id: str) -> int:
        """Every personal reply of ``owner_id`` (their erasure)."""
        if owner_id == SHARED_OWNER:
            raise ValueError("shared replies are the tenant's, not a user's")
        result = await self._col.delete_many({"owner_id": owner_id}, session=self._session)
        return result.deleted_count


class SupportProfileRepo:
    """The tenant's support profile; absent until an admin first sets it."""

    def __init__(
        self,
        col: TenantCollection,
        crypto: TenantCrypto,
        session: AsyncClientSession | None = None,
    ) -> None:
        self._col = col
        self._crypto = crypto
        self._session = session

    async def get(self) -> SupportProfile | None:
        doc = await self._col.find_one({"_id": self._col.tenant_id}, session=self._session)
        if doc is None:
            return None
        c = await self._crypto.cipher()
        return SupportProfile(
            name=c.open(PROFILE_COLLECTION, self._col.tenant_id, "name", doc.get("name")),
            updated_at=doc["updated_at"],
        )

    async def put(self, profile: SupportProfile) -> None:
        c = await self._crypto.cipher()
        tenant_id = self._col.tenant_id
        await self._col.update_one(
            {"_id": tenant_id},
            {
                "$set": {
                    "name": c.seal(PROFILE_COLLECTION, tenant_id, "name", profile.name),
                    "updated_at": profile.updated_at,
                }
            },
            upsert=True,
            session=self._session,
        )
