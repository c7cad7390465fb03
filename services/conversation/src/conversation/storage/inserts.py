"""Inserting several documents in one round trip, with single-insert errors."""

from __future__ import annotations

from collections.abc import Sequence

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import BulkWriteError, DuplicateKeyError

from confab_core.mongo import Doc, TenantCollection

_DUPLICATE_KEY = 11000


async def insert_all(
    col: TenantCollection, docs: Sequence[Doc], session: AsyncClientSession | None
) -> None:
    """``insert_many``, except that a duplicate key is a DuplicateKeyError as with
    ``insert_one``: callers tell a retried send or a concurrent join by it."""
    if len(docs) == 1:
        await col.insert_one(docs[0], session=session)
        return
    try:
        await col.insert_many(docs, session=session)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if errors and all(e.get("code") == _DUPLICATE_KEY for e in errors):
            raise DuplicateKeyError(
                errors[0].get("errmsg", "duplicate key"), _DUPLICATE_KEY
            ) from exc
        raise
