from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from confab_core.mongo import Doc, TenantCollection

SEARCH_COLLECTION = "message_search"


def search_entry(doc: Doc) -> Doc:
    """A message's words, in the collection search reads (one entry per message)."""
    return {
        "_id": doc["_id"],
        "conversation_id": doc["conversation_id"],
        "created_at": doc["created_at"],
        "search_terms": doc["search_terms"],
    }


class MessageRepo:
    """Messages, and their words in a collection of their own (``message_search``).

    The words need a multikey index, and SecantusDB answers every command on a
    collection with a multikey index (a find, an update, a count: its planner
    and its index-use counters read the index's multikey paths) with one scan of
    the whole collection the first time after a start or after a DDL anywhere on
    the server, and every command arriving during that scan makes its own. On
    the messages collection that put every history page, send and unread count
    behind scans of millions of documents; on ``message_search`` only searches,
    edits and deletes can meet one.
    """

    def __init__(self, col: TenantCollection, search: TenantCollection) -> None:
        self._col = col
        self._search = search

    async def insert_many(self, docs: list[Doc], session: AsyncClientSession) -> None:
        await self._col.insert_many(docs, session=session)
        await self._search.insert_many(
            [search_entry(d) for d in docs if d.get("search_terms")], session=session
        )

    async def insert(self, doc: Doc, session: AsyncClientSession | None = None) -> None:
        await self._col.insert_one(doc, session=session)
        if doc.get("search_terms"):
            await self._search.insert_one(search_entry(doc), session=session)

    async def get(
        self, conversation_id: str, message_id: str, session: AsyncClientSession | None = None
    ) -> Doc | None:
        return await self._col.find_one(
            {"conversation_id": conversation_id, "_id": message_id}, session=session
        )

    async def by_client_id(
        self,
        conversation_id: str,
        sender_id: str,
        client_msg_id: str,
        session: AsyncClientSession | None = None,
    ) -> Doc | None:
        return await self._col.find_one(
            {
                "conversation_id": conversation_id,
                "sender_id": sender_id,
                "client_msg_id": client_msg_id,
            },
            session=session,
        )

    # Pages read seq windows, not open-ended ranges. SecantusDB materializes every
    # document a find's filter matches, sorts them and only then applies the limit
    # (its find has no top-k over an index walk), so `seq < before_seq` with
    # limit 51 read and sorted up to the whole conversation: seconds per page at
    # 100k messages. Seqs are dense (1..last_seq, one per message, and a deleted
    # message stays as a tombstone), so the window of `limit` seqs next to the
    # cursor is the page in one bounded index scan, on MongoDB as well. Should
    # seqs be missing, the next window is twice as wide, and the last one is
    # open on the far side, so the result is exactly what the open range gives.

    async def _window(self, conversation_id: str, seq: Doc, order: int, limit: int) -> list[Doc]:
        cursor = self._col.find(
            {"conversation_id": conversation_id, "seq": seq},
            sort=[("seq", order)],
            limit=limit,
        )
        return [doc async for doc in cursor]

    async def page_after(
        self, conversation_id: str, after_seq: int, limit: int, last_seq: int
    ) -> list[Doc]:
        """Up to ``limit`` messages with seq > ``after_seq``, oldest first.

        ``last_seq`` is the conversation's, as read before: past it the window is
        left open, so a message sent since is still found.
        """
        out: list[Doc] = []
        low, span = after_seq, max(limit, 1)
        while len(out) < limit:
            high = low + span
            if high >= last_seq:
                out += await self._window(conversation_id, {"$gt": low}, 1, limit - len(out))
                break
            out += await self._window(
                conversation_id, {"$gt": low, "$lte": high}, 1, limit - len(out)
            )
            low, span = high, span * 2
        return out

    async def page_before(
        self, conversation_id: str, before_seq: int, limit: int, last_seq: int
    ) -> list[Doc]:
        """Up to ``limit`` messages with seq < ``before_seq``, newest first.

        A ``before_seq`` past ``last_seq`` + 1 (e.g. "the newest page") starts
        the first window at ``last_seq`` while still reaching up to ``before_seq``.
        """
        out: list[Doc] = []
        high, span = before_seq, max(limit, 1)
        top = min(before_seq, last_seq + 1)
        while len(out) < limit:
            low = top - span
            if low <= 1:
                out += await self._window(conversation_id, {"$lt": high}, -1, limit - len(out))
                break
            out += await self._window(
                conversation_id, {"$gte": low, "$lt": high}, -1, limit - len(out)
            )
            high = top = low
            span *= 2
        return out

    async def thread_after(
        self, conversation_id: str, root_id: str, after_seq: int, limit: int
    ) -> list[Doc]:
        cursor = self._col.find(
            {
                "conversation_id": conversation_id,
                "thread_root_id": root_id,
                "seq": {"$gt": after_seq},
            },
            sort=[("seq", 1)],
            limit=limit,
        )
        return [doc async for doc in cursor]

    async def update(
        self,
        conversation_id: str,
        message_id: str,
        update: dict[str, Any],
        session: AsyncClientSession,
    ) -> Doc | None:
        doc = await self._col.find_one_and_update(
            {"conversation_id": conversation_id, "_id": message_id}, update, session=session
        )
        if doc is not None and "search_terms" in update.get("$set", {}):
            # Same transaction: search never sees words the message no longer has.
            if doc["search_terms"]:
                entry = search_entry(doc)
                del entry["_id"]
                await self._search.update_one(
                    {"_id": message_id}, {"$set": entry}, upsert=True, session=session
                )
            else:
                await self._search.delete_many({"_id": message_id}, session=session)
        return doc

    async def count_unread(self, conversation_id: str, user_id: str, after_seq: int) -> int:
        """Top-level messages from others after the read marker, tombstones excluded."""
        return await self._col.count(
            {
                "conversation_id": conversation_id,
                "seq": {"$gt": after_seq},
                "thread_root_id": "",
                "deleted": {"$ne": True},
                "sender_id": {"$ne": user_id},
            }
        )

    async def count_mentions(self, conversation_id: str, user_id: str, after_seq: int) -> int:
        """Messages (thread replies too) from others after the marker that name the user."""
        return await self._col.count(
            {
                "conversation_id": conversation_id,
                "seq": {"$gt": after_seq},
                "deleted": {"$ne": True},
                "sender_id": {"$ne": user_id},
                "$or": [{"mentions": user_id}, {"mentions_all": True}],
            }
        )

    @staticmethod
    def search_filter(conversation_ids: list[str], terms: list[str]) -> Doc:
        """What the server matches in ``message_search``: one word (the longest,
        likely the rarest) in the caller's conversations.

        Exactly the (tenant_id, search_terms, conversation_id) index's fields, so
        the server walks that index: a filter with more clauses ($all) makes
        SecantusDB's planner fall back to a collection scan.
        """
        return {
            "search_terms": max(terms, key=len),
            "conversation_id": {"$in": conversation_ids},
        }

    async def search(self, conversation_ids: list[str], terms: list[str], limit: int) -> list[Doc]:
        """Newest first, every word present; tombstones have no words and never match."""
        wanted = set(terms)
        cursor = self._search.find(
            self.search_filter(conversation_ids, terms),
            sort=[("created_at", -1), ("_id", 1)],
            # One word: every match the server finds is a result, so it may stop at limit.
            limit=limit if len(wanted) == 1 else 0,
        )
        hits: list[str] = []
        try:
            async for entry in cursor:
                if wanted.issubset(entry.get("search_terms", ())):
                    hits.append(entry["_id"])
                    if len(hits) >= limit:
                        break
        finally:
            await cursor.close()
        if not hits:
            return []
        found = self._col.find({"_id": {"$in": hits}, "conversation_id": {"$in": conversation_ids}})
        by_id = {doc["_id"]: doc async for doc in found}
        return [by_id[i] for i in hits if i in by_id and not by_id[i].get("deleted")]
