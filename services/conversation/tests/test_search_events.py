"""Message search (words, scope, tombstones, edits, the index it walks) and ListEvents."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import events_pb2
from confab_core.clock import FakeClock
from confab_core.errors import InvalidArgument, NotFound
from confab_core.identity import ROLE_TENANT_ADMIN
from confab_core.mongo import TenantCollection
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.messages import MessageHandler
from conversation.storage.db import Database
from conversation.storage.messages import SEARCH_COLLECTION

from .conftest import (
    ALICE,
    ALICE_AGENT,
    ALICE_B,
    BOB,
    CAROL,
    MALLORY,
    TENANT_A,
    TENANT_B,
    create,
    send,
    user,
)

BOB_B = user("bob", TENANT_B)
ADMIN = user("root", TENANT_A, ROLE_TENANT_ADMIN)


async def texts(
    messages: MessageHandler, caller: Any, query: str, conversation_id: str = "", limit: int = 0
) -> list[str]:
    found = await messages.search(caller, query=query, conversation_id=conversation_id, limit=limit)
    return [m.text for m in found]


# -- search ----------


@pytest.mark.asyncio
async def test_search_folds_case_and_accents_and_needs_every_word(
    conversations: ConversationHandler, messages: MessageHandler, clock: FakeClock
) -> None:
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    for text in ("Crème Brûlée at NOON", "creme fraiche", "Brulee recipe, crème-free", "cream"):
        clock.advance(1)
        await send(messages, ALICE, conv, text=text)
    assert await texts(messages, BOB, "CREME") == [
        "Brulee recipe, crème-free",
        "creme fraiche",
        "Crème Brûlée at NOON",
    ]
    assert await texts(messages, BOB, "brûlée crème") == [
        "Brulee recipe, crème-free",
        "Crème Brûlée at NOON",
    ]
    # Every word must be there; words match whole, not as prefixes.
    assert await texts(messages, BOB, "noon brulee creme") == ["Crème Brûlée at NOON"]
    assert await texts(messages, BOB, "creme cream") == []
    assert await texts(messages, BOB, "crem") == []
    # Newest first, and the limit keeps the newest.
    assert await texts(messages, BOB, "creme", limit=2) == [
        "Brulee recipe, crème-free",
        "creme fraiche",
    ]


@pytest.mark.asyncio
async def test_search_stays_in_the_callers_conversations_and_tenant(
    db: Database, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    mine = (await create(conversations, ALICE, members=["bob"])).conversation.id
    not_mine = (await create(conversations, CAROL, members=["dave"])).conversation.id
    channel = (
        await create(conversations, ALICE_AGENT, pb.CONVERSATION_KIND_PUBLIC_CHANNEL)
    ).conversation.id
    # Same user ids, same words, another tenant.
    theirs = (await create(conversations, ALICE_B, members=["bob"])).conversation.id
    await send(messages, ALICE, mine, text="quarterly zebra report")
    await send(messages, CAROL, not_mine, text="quarterly zebra report")
    await send(messages, ALICE, channel, text="quarterly zebra report")
    await send(messages, ALICE_B, theirs, text="quarterly zebra report")

    found = await messages.search(BOB, query="zebra report", conversation_id="", limit=0)
    assert [m.conversation_id for m in found] == [mine]
    # A public channel the caller is not in is searched only when named.
    assert [
        m.conversation_id
        for m in await messages.search(BOB, query="zebra", conversation_id=channel, limit=0)
    ] == [channel]
    with pytest.raises(NotFound):
        await messages.search(BOB, query="zebra", conversation_id=not_mine, limit=0)

    found_b = await messages.search(BOB_B, query="zebra report", conversation_id="", limit=0)
    assert [m.conversation_id for m in found_b] == [theirs]
    stored_b = [await db.db["messages"].find_one({"_id": m.id}) for m in found_b]
    assert [(d["tenant_id"], d["conversation_id"]) for d in stored_b if d] == [(TENANT_B, theirs)]
    for stranger in (BOB_B, MALLORY):
        for conv in (mine, channel):
            with pytest.raises(NotFound) as info:
                await messages.search(stranger, query="zebra", conversation_id=conv, limit=0)
            assert info.value.code == "conversation_not_found"
    # Even a tenant admin finds only their own tenant's messages.
    assert await texts(messages, user("root", TENANT_B, ROLE_TENANT_ADMIN), "zebra") == []


@pytest.mark.asyncio
async def test_tombstones_are_not_found_and_edits_are_reindexed(
    conversations: ConversationHandler, messages: MessageHandler
) -> None:
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    msg = (await send(messages, ALICE, conv, text="alpha bravo")).message
    await send(messages, BOB, conv, text="bravo charlie")
    await messages.edit(ALICE, conversation_id=conv, message_id=msg.id, text="delta echo")
    assert await texts(messages, BOB, "alpha") == []
    assert await texts(messages, BOB, "bravo") == ["bravo charlie"]
    assert await texts(messages, BOB, "ECHO delta") == ["delta echo"]
    await messages.delete(ALICE, conversation_id=conv, message_id=msg.id)
    assert await texts(messages, BOB, "delta") == []
    assert await texts(messages, BOB, "echo", conv) == []
    # A deleted conversation's messages are gone from search too.
    await conversations.delete(ADMIN, conv)
    assert await texts(messages, BOB, "charlie") == []


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("", "query_too_short"),
        ("a", "query_too_short"),
        ("a b c ! ?", "query_too_short"),
        ("   ", "query_too_short"),
        ("x" * 201, "query_too_long"),
    ],
    ids=["empty", "one-letter", "only-short-words", "blank", "too-long"],
)
async def test_unusable_queries_are_refused(
    conversations: ConversationHandler, messages: MessageHandler, query: str, code: str
) -> None:
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    for scope in ("", conv):
        with pytest.raises(InvalidArgument) as info:
            await messages.search(BOB, query=query, conversation_id=scope, limit=0)
        assert info.value.code == code


def plan_stages(plan: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every stage of an explain plan tree, outermost first."""
    out: list[Mapping[str, Any]] = [plan]
    for child in [plan.get("inputStage"), *plan.get("inputStages", [])]:
        if child:
            out.extend(plan_stages(child))
    return out


@pytest.mark.asyncio
async def test_search_walks_the_search_terms_index(
    db: Database,
    conversations: ConversationHandler,
    messages: MessageHandler,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    convs = [
        (await create(conversations, ALICE, members=["bob"])).conversation.id for _ in range(3)
    ]
    for i in range(30):
        text = f"status update {i}" + (" xylophone" if i % 10 == 0 else "")
        await send(messages, ALICE, convs[i % 3], text=text)

    # Record the exact find the repository issues, then ask the server to explain it.
    issued: list[tuple[Mapping[str, Any], dict[str, Any]]] = []
    real_find = TenantCollection.find

    def spy(self: TenantCollection, flt: Mapping[str, Any], **kwargs: Any) -> Any:
        if self._c.name == SEARCH_COLLECTION:
            issued.append((flt, kwargs))
        return real_find(self, flt, **kwargs)

    monkeypatch.setattr(TenantCollection, "find", spy)
    found = await messages.search(BOB, query="update XYLOPHONE", conversation_id="", limit=0)
    monkeypatch.undo()
    assert sorted(m.text for m in found) == [
        "status update 0 xylophone",
        "status update 10 xylophone",
        "status update 20 xylophone",
    ]
    assert len(issued) == 1
    flt, kwargs = issued[0]
    cursor = TenantCollection(db.db[SEARCH_COLLECTION], TENANT_A).find(flt, **kwargs)
    explained = await cursor.explain()
    stages = plan_stages(explained["queryPlanner"]["winningPlan"])
    names = [s["stage"] for s in stages]
    assert "COLLSCAN" not in names, names
    scans = [s for s in stages if s["stage"] == "IXSCAN"]
    assert scans and "search_terms" in scans[0]["keyPattern"], stages
    assert next(iter(scans[0]["keyPattern"])) == "tenant_id"
    # Only the rarest word's messages were read, not the conversation's 30.
    assert explained["executionStats"]["totalDocsExamined"] <= 3


# -- ListEvents ----------


async def all_events(
    messages: MessageHandler, caller: Any, conv: str, after: int = 0, limit: int = 3
) -> list[events_pb2.ConversationEvent]:
    """Pages through the whole log, ``limit`` at a time."""
    out: list[events_pb2.ConversationEvent] = []
    while True:
        page = await messages.events(
            caller, conversation_id=conv, after_event_seq=after, limit=limit
        )
        assert not page.resync_required
        for raw in page.events:
            event = events_pb2.ConversationEvent()
            event.ParseFromString(raw)
            out.append(event)
        if not page.has_more:
            return out
        after = out[-1].event_seq


@pytest.mark.asyncio
async def test_list_events_replays_every_kind_of_change_in_order(
    conversations: ConversationHandler, messages: MessageHandler
) -> None:
    conv = (await create(conversations, ALICE, members=["bob", "carol"])).conversation.id
    root = (await send(messages, ALICE, conv, text="root")).message
    await send(messages, BOB, conv, text="reply", thread_root_id=root.id)
    await messages.edit(ALICE, conversation_id=conv, message_id=root.id, text="root!")
    await messages.react(BOB, conversation_id=conv, message_id=root.id, emoji="👍")
    doomed = (await send(messages, CAROL, conv, text="oops")).message
    await messages.delete(CAROL, conversation_id=conv, message_id=doomed.id)
    # Clamped to the last message (seq 3).
    await messages.mark_read(BOB, conversation_id=conv, seq=99)
    await conversations.add_members(ALICE, conv, ["dave"], 0)
    await conversations.set_role(ALICE, conv, "dave", pb.MEMBER_ROLE_ADMIN)
    await conversations.remove_member(ALICE, conv, "dave")
    await conversations.leave(CAROL, conv)
    await conversations.update(ALICE, conv, title="Renamed", description=None, topic=None)
    await conversations.archive(ALICE, conv)

    events = await all_events(messages, BOB, conv)
    assert [str(e.WhichOneof("payload")) for e in events] == [
        "conversation_created",
        "message_created",
        "message_created",
        "message_updated",
        "message_updated",
        "reaction_changed",
        "message_created",
        "message_deleted",
        "read_marker_changed",
        "members_added",
        "member_role_changed",
        "member_removed",
        "member_removed",
        "conversation_updated",
        "conversation_updated",
    ]
    view = await conversations.get(BOB, conv)
    assert [e.event_seq for e in events] == list(range(1, view.last_event_seq + 1))
    assert {(e.tenant_id, e.conversation_id) for e in events} == {(TENANT_A, conv)}
    assert events[3].message_updated.message.reply_count == 1
    assert events[4].message_updated.message.text == "root!"
    assert events[8].read_marker_changed.last_read_seq == 3
    assert events[12].member_removed.user_id == "carol" and events[12].member_removed.left
    assert events[-1].conversation_updated.conversation.archived
    # Any page size gives the same log; from the middle, the rest of it.
    assert await all_events(messages, BOB, conv, limit=100) == events
    assert await all_events(messages, BOB, conv, after=9) == events[9:]

    for after in (view.last_event_seq, view.last_event_seq + 10):
        end = await messages.events(BOB, conversation_id=conv, after_event_seq=after, limit=10)
        assert (end.events, end.has_more, end.resync_required) == ([], False, False)
    for stranger in (MALLORY, BOB_B, user("root", TENANT_B, ROLE_TENANT_ADMIN)):
        with pytest.raises(NotFound) as info:
            await messages.events(stranger, conversation_id=conv, after_event_seq=0, limit=10)
        assert info.value.code == "conversation_not_found"


@pytest.mark.asyncio
async def test_expired_events_ask_for_a_resync(
    db: Database, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    conv = (await create(conversations, ALICE, members=["bob"])).conversation.id
    for i in range(5):
        await send(messages, ALICE, conv, text=f"m{i}")
    # The TTL index removed the five oldest records (event seqs 1-5 of 6).
    removed = await db.db["outbox"].delete_many({"conversation_id": conv, "event_seq": {"$lte": 5}})
    assert removed.deleted_count == 5
    for after in (0, 1, 4):
        page = await messages.events(BOB, conversation_id=conv, after_event_seq=after, limit=10)
        assert (page.events, page.resync_required) == ([], True), after
    rest = await all_events(messages, BOB, conv, after=5)
    assert [e.event_seq for e in rest] == [6]
    assert rest[0].message_created.message.text == "m4"
    # Everything expired: nothing to replay from anywhere before the end.
    await db.db["outbox"].delete_many({"conversation_id": conv})
    page = await messages.events(BOB, conversation_id=conv, after_event_seq=5, limit=10)
    assert page.resync_required and page.events == []
    page = await messages.events(BOB, conversation_id=conv, after_event_seq=6, limit=10)
    assert not page.resync_required and page.events == []
