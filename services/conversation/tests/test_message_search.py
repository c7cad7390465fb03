"""Message words live in ``message_search``, so the messages collection has no multikey index."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pymongo import ASCENDING

from confab.conversation.v1 import conversation_pb2 as pb
from confab_core.crypto import blind_tokens
from confab_core.mongo import Doc
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.messages import MessageHandler
from conversation.storage.db import Database
from conversation.storage.messages import SEARCH_COLLECTION

from .conftest import ALICE, BOB, create, send

OLD_INDEX = "tenant_id_1_search_terms_1_conversation_id_1"


async def entries(db: Database) -> dict[str, Doc]:
    return {d["_id"]: d async for d in db.db[SEARCH_COLLECTION].find({})}


async def texts(messages: MessageHandler, query: str) -> list[str]:
    found = await messages.search(BOB, query=query, conversation_id="", limit=0)
    return [m.text for m in found]


@pytest.mark.asyncio
async def test_no_index_of_messages_is_over_an_array(
    db: Database, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    await send(messages, ALICE, conv, text="hello @bob and everyone")
    indexed = {
        field
        for info in (await db.db["messages"].index_information()).values()
        for field, _ in info["key"]
    }
    # Every array-valued field a message has stays out of its indexes.
    assert not indexed & {"search_terms", "mentions", "reactions"}, indexed
    search = await db.db[SEARCH_COLLECTION].index_information()
    assert [("tenant_id", 1), ("search_terms", 1), ("conversation_id", 1)] in [
        i["key"] for i in search.values()
    ]


@pytest.mark.asyncio
async def test_entries_follow_sends_edits_and_deletes(
    db: Database, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    msg = (await send(messages, ALICE, conv, text="alpha bravo")).message
    entry = (await entries(db))[msg.id]
    search_key = (await db.keys.keys(ALICE.tenant_id)).search_key
    # Blind tokens of the words, never the words.
    assert entry == {
        "_id": msg.id,
        "tenant_id": ALICE.tenant_id,
        "conversation_id": conv,
        "created_at": msg.created_at,
        "search_terms": blind_tokens(search_key, ["alpha", "bravo"]),
    }
    await messages.edit(ALICE, conversation_id=conv, message_id=msg.id, text="charlie")
    charlie = blind_tokens(search_key, ["charlie"])
    assert (await entries(db))[msg.id]["search_terms"] == charlie
    # A reaction does not touch the words.
    await messages.react(BOB, conversation_id=conv, message_id=msg.id, emoji="+1")
    assert (await entries(db))[msg.id]["search_terms"] == charlie
    assert await texts(messages, "charlie") == ["charlie"]
    await messages.delete(ALICE, conversation_id=conv, message_id=msg.id)
    assert msg.id not in await entries(db)
    assert await texts(messages, "charlie") == []


@pytest.mark.asyncio
async def test_a_database_from_before_gets_its_words_moved(
    db: Database, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    # The old layout: words only on the messages, under a multikey index there.
    await db.db["messages"].create_index(
        [("tenant_id", ASCENDING), ("search_terms", ASCENDING), ("conversation_id", ASCENDING)]
    )
    now = datetime.now(UTC)
    await db.db["messages"].insert_many(
        [
            {
                "_id": f"old{i}",
                "tenant_id": ALICE.tenant_id,
                "conversation_id": conv,
                "seq": i,
                "sender_id": "alice",
                "client_msg_id": f"c{i}",
                "kind": pb.MESSAGE_KIND_TEXT,
                "text": text,
                "created_at": now,
                "deleted": not terms,
                "search_terms": terms,
            }
            for i, (text, terms) in enumerate(
                [("old zebra", ["old", "zebra"]), ("", []), ("older zebra", ["older", "zebra"])],
                start=1,
            )
        ]
    )
    assert OLD_INDEX in await db.db["messages"].index_information()
    await db.ensure_indexes()
    assert OLD_INDEX not in await db.db["messages"].index_information()
    assert sorted(await entries(db)) == ["old1", "old3"]
    assert sorted(await texts(messages, "zebra")) == ["old zebra", "older zebra"]
    # Twice is the same as once.
    await db.ensure_indexes()
    assert sorted(await entries(db)) == ["old1", "old3"]
