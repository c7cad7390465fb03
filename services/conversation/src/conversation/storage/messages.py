from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from pymongo.asynchronous.client_session import AsyncClientSession

from confab_core.mongo import Doc, TenantCollection
from conversation.storage.inserts import insert_all

SEARCH_COLLECTION = "message_search"


def search_entry(doc: Doc) -> Doc:
    """A message's words, in the collection search reads (one entry per message)."""
    return {
        "_id": doc["_id"],
        "conversation_id": doc["conversation_id"],
        "created_at": doc["created_at"],
        "search_terms": doc["search_terms"],
    }


def new_message(
    *,
    message_id: str,
    conversation_id: str,
    sender_id: str,
    sender_name: str,
    kind: int,
    text: str,
    client_msg_id: str,
    created_at: datetime,
    thread_root_id: str,
    mentions: list[str],
    mentions_all: bool,
    file: Doc | None,
    search_terms: list[str],
) -> Doc:
    """A message's document, without its seq (the unit of work that stores it assigns it)."""
    return {
        "_id": message_id,
        "conversation_id": conversation_id,
        "sender_id": sender_id,
        "sender_name": sender_name,
        "kind": kind,
        "text": text,
        "client_msg_id": client_msg_id,
        "created_at": created_at,
        "thread_root_id": thread_root_id,
        "deleted": False,
        "reply_count": 0,
        "mentions": mentions,
        "mentions_all": mentions_all,
        "reactions": [],
        "file": file,
        "search_terms": search_terms,
    }


@dataclass(frozen=True)
class ReactionToggle:
    """What toggling one user's emoji did: the message after, and whether it was added.

    ``message`` is None when the message is gone or deleted; ``full`` when adding
    the emoji would pass the limit of different reactions (nothing was written).
    """

    message: Doc | None
    added: bool = False
    full: bool = False


def _toggled(reactions: list[Doc], emoji: str, user_id: str) -> tuple[list[Doc], bool]:
    out = [{"emoji": r["emoji"], "users": list(r["users"])} for r in reactions]
    for r in out:
        if r["emoji"] == emoji:
            if user_id in r["users"]:
                r["users"].remove(user_id)
                return [x for x in out if x["users"]], False
            r["users"].append(user_id)
            return out, True
    out.append({"emoji": emoji, "users": [user_id]})
    return out, True


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

    def __init__(
        self,
        col: TenantCollection,
        search: TenantCollection,
        session: AsyncClientSession | None = None,
    ) -> None:
        self._col = col
        self._search = search
        self._session = session

    async def insert_many(self, docs: list[Doc]) -> None:
        """New messages (seqs assigned) and their words, one insert per collection."""
        await insert_all(self._col, docs, self._session)
        await self._search.insert_many(
            [search_entry(d) for d in docs if d.get("search_terms")], session=self._session
        )

    async def get(self, conversation_id: str, message_id: str) -> Doc | None:
        return await self._col.find_one(
            {"conversation_id": conversation_id, "_id": message_id}, session=self._session
        )

    async def by_client_id(
        self, conversation_id: str, sender_id: str, client_msg_id: str
    ) -> Doc | None:
        return await self._col.find_one(
            {
                "conversation_id": conversation_id,
                "sender_id": sender_id,
                "client_msg_id": client_msg_id,
            },
            session=self._session,
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
            session=self._session,
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
            session=self._session,
        )
        return [doc async for doc in cursor]

    async def _update(self, conversation_id: str, message_id: str, update: Doc) -> Doc | None:
        return await self._col.find_one_and_update(
            {"conversation_id": conversation_id, "_id": message_id},
            update,
            session=self._session,
        )

    async def _reindex(self, doc: Doc) -> None:
        """Same transaction as the change: search never sees words the message no longer has."""
        if doc["search_terms"]:
            entry = search_entry(doc)
            del entry["_id"]
            await self._search.update_one(
                {"_id": doc["_id"]}, {"$set": entry}, upsert=True, session=self._session
            )
        else:
            await self._search.delete_many({"_id": doc["_id"]}, session=self._session)

    async def edit_text(
        self,
        conversation_id: str,
        message_id: str,
        *,
        text: str,
        mentions: list[str],
        mentions_all: bool,
        search_terms: list[str],
        now: datetime,
    ) -> Doc | None:
        """New text for a live message; None if it is gone or deleted."""
        doc = await self._col.find_one_and_update(
            {"conversation_id": conversation_id, "_id": message_id, "deleted": {"$ne": True}},
            {
                "$set": {
                    "text": text,
                    "edited_at": now,
                    "mentions": mentions,
                    "mentions_all": mentions_all,
                    "search_terms": search_terms,
                }
            },
            session=self._session,
        )
        if doc is not None:
            await self._reindex(doc)
        return doc

    async def tombstone(self, conversation_id: str, message_id: str, now: datetime) -> Doc | None:
        """Empties a message of everything it said, keeping its place (its seq)."""
        doc = await self._update(
            conversation_id,
            message_id,
            {
                "$set": {
                    "text": "",
                    "file": None,
                    "reactions": [],
                    "mentions": [],
                    "mentions_all": False,
                    "search_terms": [],
                    "deleted": True,
                    "deleted_at": now,
                }
            },
        )
        if doc is not None:
            await self._reindex(doc)
        return doc

    async def toggle_reaction(
        self, conversation_id: str, message_id: str, emoji: str, user_id: str, max_kinds: int
    ) -> ReactionToggle:
        """Adds the user's emoji, or takes it back if they had given it.

        Read and written in the caller's transaction (under its conversation
        lock): the toggle must see the latest set.
        """
        current = await self.get(conversation_id, message_id)
        if current is None or current.get("deleted"):
            return ReactionToggle(None)
        reactions, added = _toggled(current.get("reactions", []), emoji, user_id)
        if len(reactions) > max_kinds:
            return ReactionToggle(current, full=True)
        doc = await self._update(conversation_id, message_id, {"$set": {"reactions": reactions}})
        return ReactionToggle(doc, added=added)

    async def bump_reply_count(
        self, conversation_id: str, root_id: str, now: datetime
    ) -> Doc | None:
        """One more reply in the thread under ``root_id``; the root after, or None."""
        return await self._update(
            conversation_id,
            root_id,
            {"$inc": {"reply_count": 1}, "$set": {"last_reply_at": now}},
        )

    async def count_unread(self, conversation_id: str, user_id: str, after_seq: int) -> int:
        """Top-level messages from others after the read marker, tombstones excluded."""
        return await self._col.count(
            {
                "conversation_id": conversation_id,
                "seq": {"$gt": after_seq},
                "thread_root_id": "",
                "deleted": {"$ne": True},
                "sender_id": {"$ne": user_id},
            },
            session=self._session,
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
            },
            session=self._session,
        )

    async def unread_counts(
        self, user_id: str, marks: dict[str, int]
    ) -> dict[str, tuple[int, int]]:
        """(unread, mentions) per conversation id, from the given read markers.

        Every count runs at once: a list of N conversations waits for one count,
        not for 2N in a row.
        """
        ids = list(marks)
        results = await asyncio.gather(
            *(self.count_unread(c, user_id, marks[c]) for c in ids),
            *(self.count_mentions(c, user_id, marks[c]) for c in ids),
        )
        n = len(ids)
        return {c: (results[i], results[n + i]) for i, c in enumerate(ids)}

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
            session=self._session,
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
        found = self._col.find(
            {"_id": {"$in": hits}, "conversation_id": {"$in": conversation_ids}},
            session=self._session,
        )
        by_id = {doc["_id"]: doc async for doc in found}
        return [by_id[i] for i in hits if i in by_id and not by_id[i].get("deleted")]
