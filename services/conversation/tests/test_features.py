"""Editing, deleting, reactions, threads, search, the event log and membership changes."""

from __future__ import annotations

import asyncio

import pytest

from confab.conversation.v1 import conversation_pb2 as pb
from confab_core.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from confab_core.identity import ROLE_TENANT_ADMIN, Caller
from confab_core.mongo import Doc
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.messages import MessageHandler
from conversation.storage.db import Database
from conversation.storage.messages import Reaction

from .conftest import (
    ALICE,
    ALICE_AGENT,
    ALICE_B,
    BOB,
    CAROL,
    create,
    decode,
    outbox,
    send,
    user,
)

ADMIN = user("root", ALICE.tenant_id, ROLE_TENANT_ADMIN)
DAVE = user("dave")


async def group_of(conversations: ConversationHandler, *members: str) -> str:
    return (await create(conversations, ALICE, members=list(members))).conversation.id


async def event_kinds(db: Database, conversation_id: str) -> list[str]:
    docs = await outbox(db, conversation_id)
    assert [d["event_seq"] for d in docs] == list(range(1, len(docs) + 1))
    return [str(decode(d).WhichOneof("payload")) for d in docs]


# -- edit and delete ----------


@pytest.mark.asyncio
async def test_author_edits_own_message(
    db: Database, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    conv = await group_of(conversations, "bob")
    msg = (await send(messages, ALICE, conv, text="helo")).message
    edited = await messages.edit(ALICE, conversation_id=conv, message_id=msg.id, text="hello")
    assert edited.text == "hello" and edited.edited_at is not None
    assert edited.seq == msg.seq
    with pytest.raises(PermissionDenied) as info:
        await messages.edit(BOB, conversation_id=conv, message_id=msg.id, text="hijack")
    assert info.value.code == "not_the_author"
    with pytest.raises(InvalidArgument):
        await messages.edit(ALICE, conversation_id=conv, message_id=msg.id, text="  ")
    with pytest.raises(NotFound) as missing:
        await messages.edit(ALICE, conversation_id=conv, message_id="nope", text="x")
    assert missing.value.code == "message_not_found"
    assert await event_kinds(db, conv) == [
        "conversation_created",
        "message_created",
        "message_updated",
    ]


@pytest.mark.asyncio
async def test_delete_leaves_a_tombstone(
    db: Database, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    conv = await group_of(conversations, "bob", "carol")
    msg = (await send(messages, BOB, conv, text="oops")).message
    with pytest.raises(PermissionDenied):
        await messages.delete(CAROL, conversation_id=conv, message_id=msg.id)
    gone = await messages.delete(BOB, conversation_id=conv, message_id=msg.id)
    assert gone.deleted is True and gone.text == ""
    # Deleting again is a no-op; editing a tombstone is refused.
    again = await messages.delete(BOB, conversation_id=conv, message_id=msg.id)
    assert again.deleted is True
    with pytest.raises(FailedPrecondition) as info:
        await messages.edit(BOB, conversation_id=conv, message_id=msg.id, text="back")
    assert info.value.code == "message_deleted"
    # The owner (a conv admin) may delete anyone's message.
    other = (await send(messages, CAROL, conv, text="spam")).message
    await messages.delete(ALICE, conversation_id=conv, message_id=other.id)
    page = await messages.page(ALICE, conversation_id=conv, after_seq=0, before_seq=0, limit=10)
    assert [(m.seq, m.deleted) for m in page.messages] == [(1, True), (2, True)]
    assert (await event_kinds(db, conv)).count("message_deleted") == 2


# -- reactions ----------


@pytest.mark.asyncio
async def test_reactions_toggle(
    conversations: ConversationHandler, messages: MessageHandler
) -> None:
    conv = await group_of(conversations, "bob", "carol")
    msg = (await send(messages, ALICE, conv)).message
    doc, added = await messages.react(BOB, conversation_id=conv, message_id=msg.id, emoji="👍")
    assert added and doc.reactions == (Reaction("👍", ("bob",)),)
    doc, added = await messages.react(CAROL, conversation_id=conv, message_id=msg.id, emoji="👍")
    assert added and doc.reactions == (Reaction("👍", ("bob", "carol")),)
    doc, added = await messages.react(BOB, conversation_id=conv, message_id=msg.id, emoji="👍")
    assert not added and doc.reactions == (Reaction("👍", ("carol",)),)
    doc, _ = await messages.react(CAROL, conversation_id=conv, message_id=msg.id, emoji="👍")
    assert doc.reactions == ()
    for bad in ("", "a b", "x" * 65):
        with pytest.raises(InvalidArgument) as info:
            await messages.react(BOB, conversation_id=conv, message_id=msg.id, emoji=bad)
        assert info.value.code == "invalid_emoji"


@pytest.mark.asyncio
async def test_concurrent_reactions_are_all_kept(
    conversations: ConversationHandler, messages: MessageHandler
) -> None:
    names = [f"u{i}" for i in range(6)]
    conv = await group_of(conversations, *names)
    msg = (await send(messages, ALICE, conv)).message
    await asyncio.gather(
        *(
            messages.react(user(n), conversation_id=conv, message_id=msg.id, emoji="🎉")
            for n in names
        )
    )
    page = await messages.page(ALICE, conversation_id=conv, after_seq=0, before_seq=0, limit=1)
    assert sorted(page.messages[0].reactions[0].users) == names


# -- threads ----------


@pytest.mark.asyncio
async def test_thread_replies_are_listed_and_counted(
    db: Database, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    conv = await group_of(conversations, "bob")
    root = (await send(messages, ALICE, conv, text="root")).message
    for i in range(3):
        await send(messages, BOB, conv, text=f"r{i}", thread_root_id=root.id)
    await send(messages, ALICE, conv, text="top level again")
    got_root, page = await messages.thread(
        ALICE, conversation_id=conv, root_message_id=root.id, after_seq=0, limit=2
    )
    assert got_root.reply_count == 3
    assert [m.text for m in page.messages] == ["r0", "r1"] and page.has_more
    _, rest = await messages.thread(
        ALICE,
        conversation_id=conv,
        root_message_id=root.id,
        after_seq=page.messages[-1].seq,
        limit=2,
    )
    assert [m.text for m in rest.messages] == ["r2"] and not rest.has_more
    # A reply takes two event seqs: the reply, and the root's new reply count.
    kinds = await event_kinds(db, conv)
    assert kinds[2:4] == ["message_created", "message_updated"]
    with pytest.raises(NotFound):
        await messages.thread(
            ALICE,
            conversation_id=conv,
            root_message_id=page.messages[0].id,
            after_seq=0,
            limit=5,
        )


# -- mentions and unread counts ----------


@pytest.mark.asyncio
async def test_mentions_and_unread_counts(
    conversations: ConversationHandler, messages: MessageHandler
) -> None:
    conv = await group_of(conversations, "bob", "carol")
    sent = await send(messages, ALICE, conv, text="hi @bob and @nobody, mail bob@example.com")
    assert sent.message.mentions == ("bob",)
    await send(messages, ALICE, conv, text="@channel standup")
    root = (await send(messages, CAROL, conv, text="question")).message
    await send(messages, ALICE, conv, text="reply @bob", thread_root_id=root.id)
    view = await conversations.get(BOB, conv)
    # Thread replies count as mentions but not as unread top-level messages.
    assert (view.unread_count, view.mention_count) == (3, 3)
    last, unread = await messages.mark_read(BOB, conversation_id=conv, seq=2)
    assert (last, unread) == (2, 1)
    # Carol's own message moved her marker; after it there is only a thread reply.
    carol = await conversations.get(CAROL, conv)
    assert (carol.last_read_seq, carol.unread_count, carol.mention_count) == (3, 0, 0)


# -- search ----------


@pytest.mark.asyncio
async def test_search_finds_words_in_visible_conversations_only(
    conversations: ConversationHandler, messages: MessageHandler
) -> None:
    mine = await group_of(conversations, "bob")
    theirs = (await create(conversations, CAROL, members=["dave"])).conversation.id
    other_tenant = (await create(conversations, ALICE_B)).conversation.id
    await send(messages, ALICE, mine, text="The Café opens at nine")
    await send(messages, BOB, mine, text="cafe closed on sunday")
    await send(messages, CAROL, theirs, text="secret cafe plans")
    await send(messages, ALICE_B, other_tenant, text="cafe in tenant b")
    found = await messages.search(BOB, query="CAFE", conversation_id="", limit=0)
    assert sorted(m.text for m in found) == ["The Café opens at nine", "cafe closed on sunday"]
    assert [
        m.text for m in await messages.search(BOB, query="cafe nine", conversation_id=mine, limit=5)
    ] == ["The Café opens at nine"]
    with pytest.raises(NotFound):
        await messages.search(BOB, query="cafe", conversation_id=theirs, limit=5)
    with pytest.raises(InvalidArgument) as info:
        await messages.search(BOB, query="a", conversation_id="", limit=5)
    assert info.value.code == "query_too_short"


# -- the event log ----------


@pytest.mark.asyncio
async def test_event_log_replays_in_order(
    conversations: ConversationHandler, messages: MessageHandler
) -> None:
    conv = await group_of(conversations, "bob")
    for i in range(4):
        await send(messages, ALICE, conv, text=f"m{i}")
    page = await messages.events(BOB, conversation_id=conv, after_event_seq=1, limit=2)
    seqs = [decode({"payload": p}).event_seq for p in page.events]
    assert seqs == [2, 3] and page.has_more and not page.resync_required
    page = await messages.events(BOB, conversation_id=conv, after_event_seq=3, limit=10)
    assert [decode({"payload": p}).event_seq for p in page.events] == [4, 5]
    assert not page.has_more
    up_to_date = await messages.events(BOB, conversation_id=conv, after_event_seq=5, limit=10)
    assert up_to_date.events == [] and not up_to_date.resync_required
    with pytest.raises(NotFound):
        await messages.events(ALICE_B, conversation_id=conv, after_event_seq=0, limit=10)


@pytest.mark.asyncio
async def test_event_log_with_a_gap_asks_for_resync(
    db: Database, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    conv = await group_of(conversations, "bob")
    for _ in range(3):
        await send(messages, ALICE, conv)
    # Retention removed the oldest events.
    await db.db["outbox"].delete_many({"conversation_id": conv, "event_seq": {"$lte": 2}})
    page = await messages.events(BOB, conversation_id=conv, after_event_seq=0, limit=10)
    assert page.resync_required and page.events == []
    page = await messages.events(BOB, conversation_id=conv, after_event_seq=2, limit=10)
    assert [decode({"payload": p}).event_seq for p in page.events] == [3, 4]


# -- membership ----------


@pytest.mark.asyncio
async def test_join_and_leave_a_public_channel(
    db: Database, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    channel = (
        await create(conversations, ALICE_AGENT, pb.CONVERSATION_KIND_PUBLIC_CHANNEL)
    ).conversation.id
    browsed = await conversations.browse(CAROL, "", 10)
    assert [c.id for c in browsed] == [channel]
    joined = await conversations.join(CAROL, channel)
    assert joined.my_role == pb.MEMBER_ROLE_MEMBER and joined.member_count == 2
    # Joining twice returns the same membership.
    assert (await conversations.join(CAROL, channel)).member_count == 2
    await send(messages, CAROL, channel, text="hello all")
    await conversations.leave(CAROL, channel)
    assert (await conversations.get(CAROL, channel)).my_role == pb.MEMBER_ROLE_UNSPECIFIED
    with pytest.raises(PermissionDenied):
        await send(messages, CAROL, channel)
    kinds = await event_kinds(db, channel)
    assert kinds == ["conversation_created", "members_added", "message_created", "member_removed"]


@pytest.mark.asyncio
async def test_concurrent_joins_make_one_membership(
    db: Database, conversations: ConversationHandler
) -> None:
    channel = (
        await create(conversations, ALICE_AGENT, pb.CONVERSATION_KIND_PUBLIC_CHANNEL)
    ).conversation.id
    results = await asyncio.gather(
        *(conversations.join(CAROL, channel) for _ in range(3)), return_exceptions=True
    )
    # Each join either returns the membership or asks the client to retry; none crashes.
    for r in results:
        assert not isinstance(r, Exception) or isinstance(r, FailedPrecondition), repr(r)
    assert await db.db["members"].count_documents({"conversation_id": channel}) == 2
    assert (await conversations.get(CAROL, channel)).member_count == 2


@pytest.mark.asyncio
async def test_join_that_lost_a_race_returns_the_membership(
    conversations: ConversationHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    channel = (
        await create(conversations, ALICE_AGENT, pb.CONVERSATION_KIND_PUBLIC_CHANNEL)
    ).conversation.id
    await conversations.join(CAROL, channel)
    # A second join read the conversation before the first one committed: it saw
    # no membership, but by the time it adds one, there is one.
    real = conversations.readable

    async def stale(caller: Caller, conversation_id: str) -> tuple[Doc, Doc | None]:
        conv, _ = await real(caller, conversation_id)
        return conv, None

    monkeypatch.setattr(conversations, "readable", stale)
    view = await conversations.join(CAROL, channel)
    assert view.my_role == pb.MEMBER_ROLE_MEMBER and view.member_count == 2


@pytest.mark.asyncio
async def test_group_is_not_joinable_and_direct_cannot_be_left(
    conversations: ConversationHandler,
) -> None:
    group = await group_of(conversations, "bob")
    with pytest.raises(NotFound):
        await conversations.join(CAROL, group)
    direct = (await create(conversations, ALICE, pb.CONVERSATION_KIND_DIRECT, ["bob"])).conversation
    with pytest.raises(PermissionDenied) as info:
        await conversations.leave(BOB, direct.id)
    assert info.value.code == "cannot_leave"


@pytest.mark.asyncio
async def test_add_remove_and_roles(
    db: Database, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    conv = await group_of(conversations, "bob")
    with pytest.raises(PermissionDenied):
        await conversations.add_members(BOB, conv, ["carol"], 0)
    added = await conversations.add_members(ALICE, conv, ["carol", "dave", "bob"], 0)
    assert sorted(m.user_id for m in added) == ["carol", "dave"]
    assert (await conversations.get(ALICE, conv)).member_count == 4
    with pytest.raises(InvalidArgument):
        await conversations.add_members(ALICE, conv, ["confab-bot"], 0)

    await conversations.set_role(ALICE, conv, "bob", pb.MEMBER_ROLE_ADMIN)
    await conversations.set_role(ALICE, conv, "dave", pb.MEMBER_ROLE_OBSERVER)
    with pytest.raises(PermissionDenied) as observer:
        await send(messages, DAVE, conv)
    assert observer.value.code == "observer_cannot_send"
    # An admin removes members but not the owner; only owners change roles.
    await conversations.remove_member(BOB, conv, "carol")
    with pytest.raises(PermissionDenied):
        await conversations.remove_member(BOB, conv, "alice")
    with pytest.raises(PermissionDenied):
        await conversations.set_role(BOB, conv, "dave", pb.MEMBER_ROLE_MEMBER)
    with pytest.raises(NotFound):
        await conversations.get(CAROL, conv)
    # The only owner hands over before leaving a conversation with others in it.
    with pytest.raises(FailedPrecondition) as last:
        await conversations.leave(ALICE, conv)
    assert last.value.code == "last_owner"
    await conversations.set_role(ALICE, conv, "bob", pb.MEMBER_ROLE_OWNER)
    await conversations.leave(ALICE, conv)
    view = await conversations.get(BOB, conv)
    assert (view.member_count, view.my_role) == (2, pb.MEMBER_ROLE_OWNER)
    stored = await db.db["members"].count_documents({"conversation_id": conv})
    assert stored == view.member_count


@pytest.mark.asyncio
async def test_update_archive_and_delete(
    db: Database, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    conv = await group_of(conversations, "bob")
    msg = (await send(messages, BOB, conv)).message
    with pytest.raises(PermissionDenied):
        await conversations.update(BOB, conv, title="mine", description=None, topic=None)
    updated = await conversations.update(ALICE, conv, title="Team", description=None, topic="q3")
    assert (updated.title, updated.topic) == ("Team", "q3")
    with pytest.raises(InvalidArgument) as nothing:
        await conversations.update(ALICE, conv, title=None, description=None, topic=None)
    assert nothing.value.code == "nothing_to_update"

    archived = await conversations.archive(ALICE, conv)
    assert archived.archived
    for write in (
        send(messages, BOB, conv),
        messages.edit(BOB, conversation_id=conv, message_id=msg.id, text="x"),
        messages.react(BOB, conversation_id=conv, message_id=msg.id, emoji="👍"),
        conversations.add_members(ALICE, conv, ["carol"], 0),
    ):
        with pytest.raises(FailedPrecondition) as info:
            await write
        assert info.value.code == "conversation_archived"
    # Reading and read markers still work.
    assert await messages.mark_read(ALICE, conversation_id=conv, seq=1) == (1, 0)

    with pytest.raises(PermissionDenied):
        await conversations.delete(ALICE, conv)
    await conversations.delete(ADMIN, conv)
    for caller in (ALICE, BOB, ADMIN):
        with pytest.raises(NotFound):
            await conversations.get(caller, conv)
    assert (await conversations.list_for_caller(BOB, 10)).conversations == []
    assert (await event_kinds(db, conv))[-1] == "conversation_deleted"


@pytest.mark.asyncio
async def test_a_deleted_direct_conversation_can_be_started_again(
    conversations: ConversationHandler,
) -> None:
    # Others' direct conversations are private even to admins: an admin deletes their own.
    first = (await create(conversations, ADMIN, pb.CONVERSATION_KIND_DIRECT, ["bob"])).conversation
    await conversations.delete(ADMIN, first.id)
    with pytest.raises(NotFound):
        await conversations.get(BOB, first.id)
    again = await create(conversations, BOB, pb.CONVERSATION_KIND_DIRECT, ["root"])
    assert again.created and again.conversation.id != first.id
    assert (
        await create(conversations, ADMIN, pb.CONVERSATION_KIND_DIRECT, ["bob"])
    ).created is False


@pytest.mark.asyncio
async def test_tenant_admin_sees_groups_but_not_others_direct_conversations(
    conversations: ConversationHandler, messages: MessageHandler
) -> None:
    group = await group_of(conversations, "bob")
    direct = (await create(conversations, ALICE, pb.CONVERSATION_KIND_DIRECT, ["bob"])).conversation
    assistant = (await create(conversations, ALICE, pb.CONVERSATION_KIND_AI_ASSISTANT)).conversation
    assert (await conversations.get(ADMIN, group)).my_role == pb.MEMBER_ROLE_UNSPECIFIED
    for private in (direct.id, assistant.id):
        with pytest.raises(NotFound):
            await conversations.get(ADMIN, private)
    # Seeing is not sending: the admin is not a member.
    with pytest.raises(PermissionDenied):
        await send(messages, ADMIN, group)
