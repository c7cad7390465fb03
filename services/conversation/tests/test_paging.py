"""History pages read bounded seq windows, and give what an open-ended range would."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.cursor import AsyncCursor

from confab.conversation.v1 import conversation_pb2 as pb
from confab_core.mongo import Doc, TenantCollection
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.messages import MessageHandler
from conversation.storage.db import Database
from conversation.storage.messages import SEARCH_COLLECTION, MessageRepo

from .conftest import ALICE, create

MAX_INT64 = 2**63 - 1


class Recording(TenantCollection):
    """A tenant collection that remembers the seq predicate of every find."""

    def __init__(self, collection: AsyncCollection[Doc], tenant_id: str) -> None:
        super().__init__(collection, tenant_id)
        self.seqs: list[Any] = []

    def find(
        self,
        flt: Mapping[str, Any],
        *,
        sort: Sequence[tuple[str, int]] | None = None,
        limit: int = 0,
        session: AsyncClientSession | None = None,
        projection: Mapping[str, Any] | None = None,
    ) -> AsyncCursor[Doc]:
        self.seqs.append(flt.get("seq"))
        return super().find(flt, sort=sort, limit=limit, session=session, projection=projection)


async def preload(db: Database, conv: str, seqs: list[int], last_seq: int) -> None:
    await db.db["messages"].insert_many(
        [
            {
                "_id": f"m{seq}",
                "tenant_id": ALICE.tenant_id,
                "conversation_id": conv,
                "seq": seq,
                "sender_id": "alice",
                "client_msg_id": f"c{seq}",
                "kind": pb.MESSAGE_KIND_TEXT,
                "text": f"m{seq}",
                "created_at": datetime(2026, 1, 1, tzinfo=UTC),
            }
            for seq in seqs
        ]
    )
    await db.db["conversations"].update_one({"_id": conv}, {"$set": {"last_seq": last_seq}})


def repo(db: Database) -> tuple[MessageRepo, Recording]:
    col = Recording(db.db["messages"], ALICE.tenant_id)
    search = TenantCollection(db.db[SEARCH_COLLECTION], ALICE.tenant_id)
    return MessageRepo(col, search, db.keys.for_tenant(ALICE.tenant_id)), col


@pytest.mark.asyncio
async def test_a_page_of_a_dense_history_is_one_bounded_window(
    db: Database, conversations: ConversationHandler
) -> None:
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    await preload(db, conv, list(range(1, 1001)), 1000)
    messages, col = repo(db)

    got = await messages.page_before(conv, 500, 51, 1000)
    assert [m.seq for m in got] == list(range(499, 448, -1))
    # Both ends bounded: the server matches 51 documents, not 499.
    assert col.seqs == [{"$gte": 449, "$lt": 500}]

    col.seqs.clear()
    got = await messages.page_after(conv, 500, 51, 1000)
    assert [m.seq for m in got] == list(range(501, 552))
    assert col.seqs == [{"$gt": 500, "$lte": 551}]


@pytest.mark.asyncio
async def test_pages_over_missing_seqs_match_the_open_range(
    db: Database, conversations: ConversationHandler
) -> None:
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    # Holes of every size, including one far wider than a page.
    present = [s for s in range(1, 2001) if not (100 <= s < 900 or s % 7 == 0 or 1500 < s < 1530)]
    await preload(db, conv, present, 2000)
    messages, _ = repo(db)
    for limit in (1, 3, 51):
        for cursor in (0, 1, 2, 50, 99, 100, 101, 500, 899, 900, 950, 1501, 1600, 1999, 2000, 2001):
            after = await messages.page_after(conv, cursor, limit, 2000)
            assert [m.seq for m in after] == [s for s in present if s > cursor][:limit]
            if cursor:
                before = await messages.page_before(conv, cursor, limit, 2000)
                assert [m.seq for m in before] == [s for s in present if s < cursor][::-1][:limit]


@pytest.mark.asyncio
async def test_pages_reach_messages_past_a_stale_last_seq(
    db: Database, conversations: ConversationHandler
) -> None:
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    # The conversation was read (last_seq 100) before messages 101-160 landed.
    await preload(db, conv, list(range(1, 161)), 160)
    messages, _ = repo(db)
    got = await messages.page_after(conv, 90, 51, 100)
    assert [m.seq for m in got] == list(range(91, 142))
    got = await messages.page_before(conv, MAX_INT64, 51, 100)
    assert [m.seq for m in got] == list(range(160, 109, -1))
    got = await messages.page_before(conv, 155, 3, 100)
    assert [m.seq for m in got] == [154, 153, 152]


@pytest.mark.asyncio
async def test_the_newest_page_through_the_handler(
    db: Database, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    await preload(db, conv, list(range(1, 301)), 300)
    page = await messages.page(
        ALICE, conversation_id=conv, after_seq=0, before_seq=MAX_INT64, limit=50
    )
    assert [m.seq for m in page.messages] == list(range(300, 250, -1))
    assert page.has_more
    page = await messages.page(ALICE, conversation_id=conv, after_seq=0, before_seq=51, limit=50)
    assert [m.seq for m in page.messages] == list(range(50, 0, -1))
    assert not page.has_more
    page = await messages.page(ALICE, conversation_id=conv, after_seq=250, before_seq=0, limit=50)
    assert [m.seq for m in page.messages] == list(range(251, 301))
    assert not page.has_more
