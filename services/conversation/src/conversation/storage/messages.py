from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pymongo.asynchronous.client_session import AsyncClientSession

from confab_core.mongo import Doc, TenantCollection
from conversation.storage.inserts import insert_all
from conversation.storage.keys import TenantCipher, TenantCrypto

SEARCH_COLLECTION = "message_search"
_C = "messages"


@dataclass(frozen=True, slots=True)
class FileAttachment:
    url: str
    name: str
    content_type: str
    size_bytes: int
    # An uploaded file of the conversation (storage/files.py); empty for a link.
    file_id: str = ""


@dataclass(frozen=True, slots=True)
class Reaction:
    """One emoji on a message, and who gave it (in the order they did)."""

    emoji: str
    users: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Message:
    """A stored message; a deleted one is a tombstone that keeps its seq."""

    id: str
    conversation_id: str
    seq: int
    sender_id: str
    sender_name: str
    kind: int
    text: str
    client_msg_id: str
    created_at: datetime
    # "" for a top-level message; a reply names its thread's root.
    thread_root_id: str
    deleted: bool
    reply_count: int
    # The members the text names, and whether it names everyone (@channel).
    mentions: tuple[str, ...]
    mentions_all: bool
    reactions: tuple[Reaction, ...]
    file: FileAttachment | None
    edited_at: datetime | None = None
    last_reply_at: datetime | None = None
    # The PII kinds the tenant's policy flagged in it, as written (see handlers/pii).
    pii_kinds: tuple[str, ...] = ()
    # The sender's role when they sent it (super_admin .. member, system, bot).
    sender_role: str = ""
    # The ticket made from this message (SupportService.TicketFromMessage).
    ticket_id: str = ""
    # How a streamed bot reply ended (pb.StreamState); 0 for every other message.
    stream_state: int = 0


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message about to be stored: everything but its seq, which the unit of
    work that stores it assigns."""

    id: str
    conversation_id: str
    sender_id: str
    sender_name: str
    kind: int
    text: str
    client_msg_id: str
    created_at: datetime
    thread_root_id: str
    mentions: tuple[str, ...]
    mentions_all: bool
    file: FileAttachment | None
    # Its words, for search.
    search_terms: list[str]
    pii_kinds: tuple[str, ...] = ()
    sender_role: str = ""
    stream_state: int = 0

    def at(self, seq: int) -> Message:
        """The message as stored with ``seq``."""
        # Positional, in Message's field order: once per message sent, and
        # keywords cost a dict per call.
        return Message(
            self.id,
            self.conversation_id,
            seq,
            self.sender_id,
            self.sender_name,
            self.kind,
            self.text,
            self.client_msg_id,
            self.created_at,
            self.thread_root_id,
            False,
            0,
            self.mentions,
            self.mentions_all,
            (),
            self.file,
            None,
            None,
            self.pii_kinds,
            self.sender_role,
            "",
            self.stream_state,
        )


def _file_document(f: FileAttachment | None) -> Doc | None:
    if f is None:
        return None
    doc: Doc = {
        "url": f.url,
        "name": f.name,
        "content_type": f.content_type,
        "size_bytes": f.size_bytes,
    }
    if f.file_id:
        doc["file_id"] = f.file_id
    return doc


def _sealed_file(c: TenantCipher, message_id: str, f: FileAttachment | None) -> bytes | str | None:
    """All of a file's metadata (name, url, type, size) as one sealed field."""
    doc = _file_document(f)
    if doc is None:
        return None
    return c.seal(_C, message_id, "file", json.dumps(doc, separators=(",", ":")))


def _opened_file(c: TenantCipher, message_id: str, stored: object) -> Doc | None:
    if not stored:
        return None
    if isinstance(stored, dict):
        # Stored before encryption, until the next key rotation's job seals it.
        return stored
    opened: Doc = json.loads(c.open(_C, message_id, "file", stored))
    return opened


def _document(m: NewMessage, seq: int, c: TenantCipher) -> Doc:
    doc: Doc = {
        "_id": m.id,
        "conversation_id": m.conversation_id,
        "seq": seq,
        "sender_id": m.sender_id,
        "sender_name": c.seal(_C, m.id, "sender_name", m.sender_name),
        "kind": m.kind,
        "text": c.seal(_C, m.id, "text", m.text),
        "client_msg_id": m.client_msg_id,
        "created_at": m.created_at,
        "thread_root_id": m.thread_root_id,
        "deleted": False,
        "reply_count": 0,
        "mentions": list(m.mentions),
        "mentions_all": m.mentions_all,
        "reactions": [],
        "file": _sealed_file(c, m.id, m.file),
        # Blind tokens, never words: see confab_core.crypto.blind.
        "search_terms": c.tokens(m.search_terms),
    }
    if m.pii_kinds:
        doc["pii_kinds"] = list(m.pii_kinds)
    if m.sender_role:
        doc["sender_role"] = m.sender_role
    if m.stream_state:
        doc["stream_state"] = m.stream_state
    return doc


def _reaction_documents(reactions: tuple[Reaction, ...]) -> list[Doc]:
    return [{"emoji": r.emoji, "users": list(r.users)} for r in reactions]


def _record(doc: Doc, c: TenantCipher) -> Message:
    # Documents stored before a field existed lack it: the defaults are what
    # such a message meant.
    doc_id = str(doc["_id"])
    f = _opened_file(c, doc_id, doc.get("file"))
    return Message(
        id=doc_id,
        conversation_id=str(doc["conversation_id"]),
        seq=int(doc["seq"]),
        sender_id=str(doc["sender_id"]),
        sender_name=c.open(_C, doc_id, "sender_name", doc.get("sender_name")),
        kind=int(doc["kind"]),
        text=c.open(_C, doc_id, "text", doc["text"]),
        client_msg_id=str(doc["client_msg_id"]),
        created_at=doc["created_at"],
        thread_root_id=str(doc.get("thread_root_id", "")),
        deleted=bool(doc.get("deleted", False)),
        reply_count=int(doc.get("reply_count", 0)),
        mentions=tuple(doc.get("mentions", ())),
        mentions_all=bool(doc.get("mentions_all", False)),
        reactions=tuple(
            Reaction(str(r["emoji"]), tuple(r["users"])) for r in doc.get("reactions", ())
        ),
        file=(
            FileAttachment(
                url=str(f.get("url", "")),
                name=str(f.get("name", "")),
                content_type=str(f.get("content_type", "")),
                size_bytes=int(f.get("size_bytes", 0)),
                file_id=str(f.get("file_id", "")),
            )
            if f
            else None
        ),
        edited_at=doc.get("edited_at"),
        last_reply_at=doc.get("last_reply_at"),
        pii_kinds=tuple(str(k) for k in doc.get("pii_kinds", ())),
        sender_role=str(doc.get("sender_role", "")),
        ticket_id=str(doc.get("ticket_id", "")),
        stream_state=int(doc.get("stream_state", 0)),
    )


def _found(doc: Doc | None, c: TenantCipher) -> Message | None:
    return None if doc is None else _record(doc, c)


def _search_entry(doc: Doc) -> Doc:
    """A message's search tokens, in the collection search reads (one entry per message)."""
    return {
        "_id": doc["_id"],
        "conversation_id": doc["conversation_id"],
        "created_at": doc["created_at"],
        "search_terms": doc["search_terms"],
    }


@dataclass(frozen=True, slots=True)
class ReactionToggle:
    """What toggling one user's emoji did: the message after, and whether it was added.

    ``message`` is None when the message is gone or deleted; ``full`` when adding
    the emoji would pass the limit of different reactions (nothing was written).
    """

    message: Message | None
    added: bool = False
    full: bool = False


def _toggled(
    reactions: tuple[Reaction, ...], emoji: str, user_id: str
) -> tuple[tuple[Reaction, ...], bool]:
    out = list(reactions)
    for i, r in enumerate(out):
        if r.emoji != emoji:
            continue
        if user_id in r.users:
            out[i] = Reaction(emoji, tuple(u for u in r.users if u != user_id))
            return tuple(x for x in out if x.users), False
        out[i] = Reaction(emoji, (*r.users, user_id))
        return tuple(out), True
    out.append(Reaction(emoji, (user_id,)))
    return tuple(out), True


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
        crypto: TenantCrypto,
        session: AsyncClientSession | None = None,
    ) -> None:
        self._col = col
        self._search = search
        self._crypto = crypto
        self._session = session

    async def insert_many(self, placed: Sequence[tuple[NewMessage, int]]) -> list[Message]:
        """New messages, each with the seq it was given, and their words: one
        insert per collection. The messages as stored, in the same order."""
        c = await self._crypto.cipher()
        docs = [_document(m, seq, c) for m, seq in placed]
        await insert_all(self._col, docs, self._session)
        await self._search.insert_many(
            [_search_entry(d) for d in docs if d["search_terms"]], session=self._session
        )
        return [m.at(seq) for m, seq in placed]

    async def get(self, conversation_id: str, message_id: str) -> Message | None:
        c = await self._crypto.cipher()
        return _found(
            await self._col.find_one(
                {"conversation_id": conversation_id, "_id": message_id}, session=self._session
            ),
            c,
        )

    async def by_client_id(
        self, conversation_id: str, sender_id: str, client_msg_id: str
    ) -> Message | None:
        c = await self._crypto.cipher()
        return _found(
            await self._col.find_one(
                {
                    "conversation_id": conversation_id,
                    "sender_id": sender_id,
                    "client_msg_id": client_msg_id,
                },
                session=self._session,
            ),
            c,
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

    async def _window(
        self, conversation_id: str, seq: Doc, order: int, limit: int
    ) -> list[Message]:
        c = await self._crypto.cipher()
        cursor = self._col.find(
            {"conversation_id": conversation_id, "seq": seq},
            sort=[("seq", order)],
            limit=limit,
            session=self._session,
        )
        return [_record(doc, c) async for doc in cursor]

    async def page_after(
        self, conversation_id: str, after_seq: int, limit: int, last_seq: int
    ) -> list[Message]:
        """Up to ``limit`` messages with seq > ``after_seq``, oldest first.

        ``last_seq`` is the conversation's, as read before: past it the window is
        left open, so a message sent since is still found.
        """
        out: list[Message] = []
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
    ) -> list[Message]:
        """Up to ``limit`` messages with seq < ``before_seq``, newest first.

        A ``before_seq`` past ``last_seq`` + 1 (e.g. "the newest page") starts
        the first window at ``last_seq`` while still reaching up to ``before_seq``.
        """
        out: list[Message] = []
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
    ) -> list[Message]:
        c = await self._crypto.cipher()
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
        return [_record(doc, c) async for doc in cursor]

    async def _update(self, conversation_id: str, message_id: str, update: Doc) -> Doc | None:
        return await self._col.find_one_and_update(
            {"conversation_id": conversation_id, "_id": message_id},
            update,
            session=self._session,
        )

    async def link_ticket(
        self, conversation_id: str, message_id: str, ticket_id: str
    ) -> Message | None:
        """Marks the message a ticket was made from; the message after, or None
        when it is gone."""
        c = await self._crypto.cipher()
        return _found(
            await self._update(conversation_id, message_id, {"$set": {"ticket_id": ticket_id}}), c
        )

    async def _reindex(self, doc: Doc) -> None:
        """Same transaction as the change: search never sees words the message no longer has."""
        if doc["search_terms"]:
            entry = _search_entry(doc)
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
        pii_kinds: tuple[str, ...] = (),
    ) -> Message | None:
        """New text for a live message; None if it is gone or deleted. Its PII
        mark is the new text's."""
        c = await self._crypto.cipher()
        update: Doc = {
            "$set": {
                "text": c.seal(_C, message_id, "text", text),
                "edited_at": now,
                "mentions": mentions,
                "mentions_all": mentions_all,
                "search_terms": c.tokens(search_terms),
            }
        }
        if pii_kinds:
            update["$set"]["pii_kinds"] = list(pii_kinds)
        else:
            update["$unset"] = {"pii_kinds": ""}
        doc = await self._col.find_one_and_update(
            {"conversation_id": conversation_id, "_id": message_id, "deleted": {"$ne": True}},
            update,
            session=self._session,
        )
        if doc is None:
            return None
        await self._reindex(doc)
        return _record(doc, c)

    async def forget_file_name(
        self, conversation_id: str, message_id: str, search_terms: list[str]
    ) -> Message | None:
        """The attachment of a message whose file's uploader was erased becomes a
        tombstone (type and size kept; no name, no link) and the name's words
        leave search (``search_terms``: the text's). The message after; None when
        it is gone."""
        c = await self._crypto.cipher()
        doc = await self._col.find_one(
            {"conversation_id": conversation_id, "_id": message_id}, session=self._session
        )
        if doc is None:
            return None
        opened = _opened_file(c, message_id, doc.get("file"))
        if not opened:
            return _record(doc, c)
        blank = json.dumps({**opened, "name": "", "url": ""}, separators=(",", ":"))
        after = await self._update(
            conversation_id,
            message_id,
            {
                "$set": {
                    "file": c.seal(_C, message_id, "file", blank),
                    "search_terms": c.tokens(search_terms),
                }
            },
        )
        if after is None:
            return None
        await self._reindex(after)
        return _record(after, c)

    async def tombstone(
        self, conversation_id: str, message_id: str, now: datetime
    ) -> Message | None:
        """Empties a message of everything it said, keeping its place (its seq)."""
        c = await self._crypto.cipher()
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
                },
                "$unset": {"pii_kinds": ""},
            },
        )
        if doc is None:
            return None
        await self._reindex(doc)
        return _record(doc, c)

    async def toggle_reaction(
        self, conversation_id: str, message_id: str, emoji: str, user_id: str, max_kinds: int
    ) -> ReactionToggle:
        """Adds the user's emoji, or takes it back if they had given it.

        Read and written in the caller's transaction (under its conversation
        lock): the toggle must see the latest set.
        """
        current = await self.get(conversation_id, message_id)
        if current is None or current.deleted:
            return ReactionToggle(None)
        reactions, added = _toggled(current.reactions, emoji, user_id)
        if len(reactions) > max_kinds:
            return ReactionToggle(current, full=True)
        doc = await self._update(
            conversation_id, message_id, {"$set": {"reactions": _reaction_documents(reactions)}}
        )
        return ReactionToggle(_found(doc, await self._crypto.cipher()), added=added)

    async def bump_reply_count(
        self, conversation_id: str, root_id: str, now: datetime
    ) -> Message | None:
        """One more reply in the thread under ``root_id``; the root after, or None."""
        c = await self._crypto.cipher()
        return _found(
            await self._update(
                conversation_id,
                root_id,
                {"$inc": {"reply_count": 1}, "$set": {"last_reply_at": now}},
            ),
            c,
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
    def _search_filter(c: TenantCipher, conversation_ids: list[str], terms: list[str]) -> Doc:
        """What the server matches in ``message_search``: the token of one word (the
        longest, likely the rarest) in the caller's conversations.

        Exactly the (tenant_id, search_terms, conversation_id) index's fields, so
        the server walks that index: a filter with more clauses ($all) makes
        SecantusDB's planner fall back to a collection scan.
        """
        return {
            "search_terms": c.tokens([max(terms, key=len)])[0],
            "conversation_id": {"$in": conversation_ids},
        }

    async def search(
        self, conversation_ids: list[str], terms: list[str], limit: int
    ) -> list[Message]:
        """Newest first, every word present; tombstones have no words and never match.

        ``terms`` are normalised words; they are matched as the tenant's blind
        tokens, so only whole words match.
        """
        c = await self._crypto.cipher()
        wanted = set(c.tokens(terms))
        cursor = self._search.find(
            self._search_filter(c, conversation_ids, terms),
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
        return [_record(by_id[i], c) for i in hits if i in by_id and not by_id[i].get("deleted")]

    async def page_by_id(
        self, after_id: str, limit: int, *, conversation_id: str = "", sender_id: str = ""
    ) -> list[Message]:
        """Messages by id past ``after_id``: of one conversation, one sender, or all."""
        flt: dict[str, object] = {"_id": {"$gt": after_id}}
        if conversation_id:
            flt["conversation_id"] = conversation_id
        if sender_id:
            flt["sender_id"] = sender_id
        c = await self._crypto.cipher()
        cursor = self._col.find(flt, sort=[("_id", 1)], limit=limit, session=self._session)
        return [_record(doc, c) async for doc in cursor]

    async def count_where(self, *, conversation_id: str = "", sender_id: str = "") -> int:
        flt: dict[str, object] = {}
        if conversation_id:
            flt["conversation_id"] = conversation_id
        if sender_id:
            flt["sender_id"] = sender_id
        return await self._col.count(flt, session=self._session)

    async def older_than(self, conversation_id: str, cutoff: datetime, limit: int) -> list[str]:
        """Ids of the conversation's messages created before ``cutoff``, oldest first.

        Seqs follow creation, so these are the conversation's first seqs: the
        (conversation, seq) index walks straight to them.
        """
        cursor = self._col.find(
            {"conversation_id": conversation_id, "created_at": {"$lt": cutoff}},
            projection={"_id": 1},
            sort=[("seq", 1)],
            limit=limit,
            session=self._session,
        )
        return [str(doc["_id"]) async for doc in cursor]

    async def ids_in(self, conversation_id: str, limit: int) -> list[str]:
        """Up to ``limit`` message ids of the conversation (to purge it in batches)."""
        cursor = self._col.find(
            {"conversation_id": conversation_id},
            projection={"_id": 1},
            limit=limit,
            session=self._session,
        )
        return [str(doc["_id"]) async for doc in cursor]

    async def purge(self, message_ids: list[str]) -> int:
        """Hard-deletes messages and their search entries (retention, erasure).

        Their reactions and file metadata live inside the message document and
        go with it.
        """
        if not message_ids:
            return 0
        await self._search.delete_many({"_id": {"$in": message_ids}}, session=self._session)
        result = await self._col.delete_many({"_id": {"$in": message_ids}}, session=self._session)
        return result.deleted_count

    async def erase_authors(
        self,
        conversation_id: str,
        message_ids: list[str],
        pseudonym_id: str,
        pseudonym_name: str,
        *,
        tombstone_at: datetime | None,
    ) -> list[Message]:
        """Erasure of a page of one author's messages in one conversation, in three
        round trips whatever the page size: tombstones (when ``tombstone_at``) and
        their search entries, then the pseudonym as author. The messages after."""
        c = await self._crypto.cipher()
        scope: Doc = {"conversation_id": conversation_id, "_id": {"$in": message_ids}}
        if tombstone_at is not None:
            await self._col.update_many(
                scope,
                {
                    "$set": {
                        "text": "",
                        "file": None,
                        "reactions": [],
                        "mentions": [],
                        "mentions_all": False,
                        "search_terms": [],
                        "deleted": True,
                        "deleted_at": tombstone_at,
                    }
                },
                session=self._session,
            )
            await self._search.delete_many({"_id": {"$in": message_ids}}, session=self._session)
        # The name is sealed for each message (its id is bound in), so one update each.
        await self._col.update_each(
            [
                (
                    {"conversation_id": conversation_id, "_id": i},
                    {
                        "$set": {
                            "sender_id": pseudonym_id,
                            "sender_name": c.seal(_C, i, "sender_name", pseudonym_name),
                        }
                    },
                )
                for i in message_ids
            ],
            session=self._session,
        )
        cursor = self._col.find(scope, sort=[("seq", 1)], session=self._session)
        return [_record(doc, c) async for doc in cursor]
