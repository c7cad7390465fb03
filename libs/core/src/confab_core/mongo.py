"""MongoDB access through PyMongo's async API, scoped by tenant by construction.

Storage classes never get a raw collection: they get a ``TenantCollection``
bound to one tenant id, whose every method adds ``tenant_id`` to the filter and
to the documents it writes. A query without a tenant cannot be expressed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pymongo import AsyncMongoClient, ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.cursor import AsyncCursor
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.results import DeleteResult, InsertOneResult, UpdateResult

Doc = dict[str, Any]


def connect(url: str, app_name: str) -> AsyncMongoClient[Doc]:
    return AsyncMongoClient(url, appname=app_name, tz_aware=True, serverSelectionTimeoutMS=5000)


class TenantCollection:
    def __init__(self, collection: AsyncCollection[Doc], tenant_id: str) -> None:
        if not tenant_id:
            raise ValueError("a tenant scope is required")
        self._c = collection
        self.tenant_id = tenant_id

    def _scope(self, flt: Mapping[str, Any]) -> Doc:
        if "tenant_id" in flt and flt["tenant_id"] != self.tenant_id:
            raise ValueError("filter names another tenant")
        return {**flt, "tenant_id": self.tenant_id}

    def _checked_update(self, update: Mapping[str, Any]) -> Mapping[str, Any]:
        # An update may not move a document out of its tenant ($set to another
        # tenant, $unset, $rename to or from tenant_id).
        for op, fields in update.items():
            if not isinstance(fields, Mapping):
                continue
            touches = "tenant_id" in fields or (op == "$rename" and "tenant_id" in fields.values())
            if not touches:
                continue
            if op in ("$set", "$setOnInsert") and fields.get("tenant_id") == self.tenant_id:
                continue
            raise ValueError("an update cannot change tenant_id")
        return update

    async def find_one(
        self,
        flt: Mapping[str, Any],
        *,
        session: AsyncClientSession | None = None,
        projection: Mapping[str, Any] | None = None,
    ) -> Doc | None:
        return await self._c.find_one(self._scope(flt), projection, session=session)

    def find(
        self,
        flt: Mapping[str, Any],
        *,
        sort: Sequence[tuple[str, int]] | None = None,
        limit: int = 0,
        session: AsyncClientSession | None = None,
        projection: Mapping[str, Any] | None = None,
    ) -> AsyncCursor[Doc]:
        cursor = self._c.find(self._scope(flt), projection, session=session, limit=limit)
        if sort:
            cursor = cursor.sort(list(sort))
        return cursor

    async def insert_one(
        self, doc: Mapping[str, Any], *, session: AsyncClientSession | None = None
    ) -> InsertOneResult:
        return await self._c.insert_one(self._scope(doc), session=session)

    async def insert_many(
        self, docs: Sequence[Mapping[str, Any]], *, session: AsyncClientSession | None = None
    ) -> None:
        if docs:
            await self._c.insert_many([self._scope(d) for d in docs], session=session)

    async def update_each(
        self,
        updates: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
        *,
        session: AsyncClientSession | None = None,
    ) -> None:
        """One round trip for several (filter, update) pairs, each on one document."""
        if updates:
            await self._c.bulk_write(
                [UpdateOne(self._scope(f), self._checked_update(u)) for f, u in updates],
                session=session,
            )

    async def update_one(
        self,
        flt: Mapping[str, Any],
        update: Mapping[str, Any],
        *,
        upsert: bool = False,
        session: AsyncClientSession | None = None,
    ) -> UpdateResult:
        return await self._c.update_one(
            self._scope(flt), self._checked_update(update), upsert=upsert, session=session
        )

    async def update_many(
        self,
        flt: Mapping[str, Any],
        update: Mapping[str, Any],
        *,
        session: AsyncClientSession | None = None,
    ) -> UpdateResult:
        return await self._c.update_many(
            self._scope(flt), self._checked_update(update), session=session
        )

    async def find_one_and_update(
        self,
        flt: Mapping[str, Any],
        update: Mapping[str, Any],
        *,
        upsert: bool = False,
        session: AsyncClientSession | None = None,
    ) -> Doc | None:
        return await self._c.find_one_and_update(
            self._scope(flt),
            self._checked_update(update),
            upsert=upsert,
            return_document=ReturnDocument.AFTER,
            session=session,
        )

    async def count(
        self, flt: Mapping[str, Any], *, session: AsyncClientSession | None = None
    ) -> int:
        return await self._c.count_documents(self._scope(flt), session=session)

    async def delete_many(
        self, flt: Mapping[str, Any], *, session: AsyncClientSession | None = None
    ) -> DeleteResult:
        return await self._c.delete_many(self._scope(flt), session=session)


def tenant_collection(db: AsyncDatabase[Doc], name: str, tenant_id: str) -> TenantCollection:
    return TenantCollection(db[name], tenant_id)
