"""Sending, paging and reading messages against a real MongoDB-wire server."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
import pytest_asyncio

from confab.conversation.v1 import conversation_pb2 as pb
from confab_core.clock import FakeClock
from confab_core.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied
from confab_core.identity import BOT_USER_ID, ROLE_SERVICE
from confab_core.limits import MAX_CLIENT_MSG_ID_CHARS, MAX_TEXT_CHARS
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.messages import MessageHandler
from conversation.storage.db import Database
from conversation.storage.members import member_id
from conversation.storage.messages import FileAttachment

from .conftest import ALICE, ALICE_AGENT, BOB, CAROL, count, create, decode, outbox, send, user


@pytest_asyncio.fixture
async def group(conversations: ConversationHandler) -> str:
    result = await create(conversations, ALICE, members=["bob", "carol"])
    return result.conversation.id


async def seqs(db: Database, conversation_id: str) -> list[int]:
    cursor = db.db["messages"].find({"conversation_id": conversation_id}).sort("seq", 1)
    return [m["seq"] async for m in cursor]


async def event_seqs(db: Database, conversation_id: str) -> list[int]:
    return [d["event_seq"] for d in await outbox(db, conversation_id)]


@pytest.mark.asyncio
async def test_send_assigns_gapless_seqs(
    db: Database, messages: MessageHandler, clock: FakeClock, group: str, wakeup: asyncio.Event
) -> None:
    wakeup.clear()
    sent = []
    for i in range(5):
        clock.advance(1)
        sender = (ALICE, BOB)[i % 2]
        sent.append(await send(messages, sender, group, text=f"m{i}", client_msg_id=f"c{i}"))
    assert [s.message.seq for s in sent] == [1, 2, 3, 4, 5]
    assert all(s.created for s in sent)
    first = sent[0].message
    assert first.sender_id == "alice"
    assert first.sender_name == "Alice"
    assert first.text == "m0"
    assert first.client_msg_id == "c0"
    assert first.kind == pb.MESSAGE_KIND_TEXT
    assert await seqs(db, group) == [1, 2, 3, 4, 5]
    conv = await db.db["conversations"].find_one({"_id": group})
    assert conv is not None
    assert conv["last_seq"] == 5
    assert conv["last_event_seq"] == 6
    assert conv["last_activity_at"] == clock.now()
    # A commit wakes the relay.
    assert wakeup.is_set()


@pytest.mark.asyncio
async def test_concurrent_sends_get_exactly_one_to_n(
    db: Database, messages: MessageHandler, group: str
) -> None:
    senders = [ALICE, BOB, CAROL]
    results = await asyncio.gather(
        *(send(messages, senders[i % 3], group, text=f"m{i}") for i in range(20))
    )
    assert sorted(r.message.seq for r in results) == list(range(1, 21))
    assert all(r.created for r in results)
    assert await seqs(db, group) == list(range(1, 21))
    # One event per write, gapless after the creation event.
    assert await event_seqs(db, group) == list(range(1, 22))
    by_seq = {
        decode(d).message_created.message.seq: d["event_seq"]
        for d in await outbox(db, group)
        if decode(d).WhichOneof("payload") == "message_created"
    }
    # Events are numbered in commit order, which is the seq order.
    assert by_seq == {seq: seq + 1 for seq in range(1, 21)}


@pytest.mark.asyncio
async def test_repeated_client_msg_id_returns_the_stored_message(
    db: Database, messages: MessageHandler, group: str
) -> None:
    first = await send(messages, ALICE, group, text="hi", client_msg_id="same")
    again = await send(messages, ALICE, group, text="hi (retry)", client_msg_id="same")
    assert first.created and not again.created
    assert again.message.id == first.message.id
    assert again.message.text == "hi"
    # The id is per sender: Bob's "same" is his own message.
    bobs = await send(messages, BOB, group, client_msg_id="same")
    assert bobs.created and bobs.message.seq == 2
    assert await seqs(db, group) == [1, 2]
    assert await event_seqs(db, group) == [1, 2, 3]


@pytest.mark.asyncio
async def test_racing_identical_sends_store_one_message(
    db: Database, messages: MessageHandler, group: str
) -> None:
    results = await asyncio.gather(
        *(send(messages, ALICE, group, text="once", client_msg_id="dup") for _ in range(6))
    )
    assert sum(r.created for r in results) == 1
    assert len({r.message.id for r in results}) == 1
    assert {r.message.seq for r in results} == {1}
    assert await seqs(db, group) == [1]
    assert await event_seqs(db, group) == [1, 2]
    # The next send continues without a gap left by the losers.
    assert (await send(messages, BOB, group)).message.seq == 2


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("text", "client_msg_id", "kind", "code"),
    [
        ("", "c", pb.MESSAGE_KIND_TEXT, "empty_message"),
        ("  \n\t ", "c", pb.MESSAGE_KIND_TEXT, "empty_message"),
        ("x" * (MAX_TEXT_CHARS + 1), "c", pb.MESSAGE_KIND_TEXT, "message_too_long"),
        ("hi", "", pb.MESSAGE_KIND_TEXT, "client_msg_id_required"),
        ("hi", "c" * (MAX_CLIENT_MSG_ID_CHARS + 1), pb.MESSAGE_KIND_TEXT, "client_msg_id_too_long"),
        ("hi", "c", pb.MESSAGE_KIND_BOT, "invalid_message_kind"),
        ("hi", "c", pb.MESSAGE_KIND_SYSTEM, "invalid_message_kind"),
        ("hi", "c", 42, "invalid_message_kind"),
    ],
)
async def test_invalid_sends_write_nothing(
    db: Database,
    messages: MessageHandler,
    group: str,
    text: str,
    client_msg_id: str,
    kind: int,
    code: str,
) -> None:
    with pytest.raises(InvalidArgument) as info:
        await send(messages, ALICE, group, text=text, client_msg_id=client_msg_id, kind=kind)
    assert info.value.code == code
    assert await count(db, "messages") == 0
    assert await event_seqs(db, group) == [1]
    conv = await db.db["conversations"].find_one({"_id": group})
    assert conv is not None and conv["last_seq"] == 0 and conv["last_event_seq"] == 1


@pytest.mark.asyncio
async def test_text_at_the_limit_and_file_kind_are_fine(
    messages: MessageHandler, group: str
) -> None:
    sent = await send(messages, ALICE, group, text="x" * MAX_TEXT_CHARS)
    assert sent.created
    unspecified = await send(messages, ALICE, group, kind=pb.MESSAGE_KIND_UNSPECIFIED)
    assert unspecified.message.kind == pb.MESSAGE_KIND_TEXT
    attachment = {
        "url": "https://files.example/a.pdf",
        "name": "a.pdf",
        "content_type": "application/pdf",
        "size_bytes": 10,
    }
    file = await send(messages, ALICE, group, text="", kind=pb.MESSAGE_KIND_FILE, file=attachment)
    assert file.message.kind == pb.MESSAGE_KIND_FILE
    assert file.message.file == FileAttachment(**attachment)


@pytest.mark.asyncio
async def test_observer_cannot_send(db: Database, messages: MessageHandler, group: str) -> None:
    await db.db["members"].update_one(
        {"_id": member_id(group, "bob")}, {"$set": {"role": pb.MEMBER_ROLE_OBSERVER}}
    )
    with pytest.raises(PermissionDenied) as info:
        await send(messages, BOB, group)
    assert info.value.code == "observer_cannot_send"
    assert await count(db, "messages") == 0
    assert await event_seqs(db, group) == [1]
    # Observers still read.
    assert (
        await messages.page(BOB, conversation_id=group, after_seq=0, before_seq=0, limit=0)
    ).messages == []


@pytest.mark.asyncio
async def test_archived_conversation_refuses_sends(
    db: Database, messages: MessageHandler, group: str
) -> None:
    await db.db["conversations"].update_one({"_id": group}, {"$set": {"archived": True}})
    with pytest.raises(FailedPrecondition) as info:
        await send(messages, ALICE, group)
    assert info.value.code == "conversation_archived"
    assert await count(db, "messages") == 0
    assert await event_seqs(db, group) == [1]


@pytest.mark.asyncio
async def test_non_member_of_public_channel_reads_but_cannot_send(
    db: Database, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    channel_id = (
        await create(conversations, ALICE_AGENT, pb.CONVERSATION_KIND_PUBLIC_CHANNEL)
    ).conversation.id
    await send(messages, ALICE, channel_id, text="announcement")
    with pytest.raises(PermissionDenied) as info:
        await send(messages, CAROL, channel_id)
    assert info.value.code == "not_a_member"
    page = await messages.page(
        CAROL, conversation_id=channel_id, after_seq=0, before_seq=0, limit=10
    )
    assert [m.text for m in page.messages] == ["announcement"]
    with pytest.raises(PermissionDenied):
        await messages.mark_read(CAROL, conversation_id=channel_id, seq=1)
    assert await count(db, "messages") == 1


@pytest.mark.asyncio
async def test_unknown_conversation_is_not_found(messages: MessageHandler) -> None:
    with pytest.raises(NotFound) as info:
        await send(messages, ALICE, "no-such-conversation")
    assert info.value.code == "conversation_not_found"


@pytest.mark.asyncio
async def test_bot_sends_bot_messages_in_assistant_conversations(
    db: Database, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    conv_id = (
        await create(conversations, ALICE, pb.CONVERSATION_KIND_AI_ASSISTANT)
    ).conversation.id
    bot = user(BOT_USER_ID, ALICE.tenant_id, ROLE_SERVICE)
    sent = await send(messages, bot, conv_id, text="How can I help?", kind=pb.MESSAGE_KIND_BOT)
    assert sent.created and sent.message.kind == pb.MESSAGE_KIND_BOT
    # The service role writes no user profile.
    assert await db.db["users"].count_documents({"user_id": BOT_USER_ID}) == 0
    event = decode((await outbox(db, conv_id))[-1])
    assert event.message_created.conversation_kind == pb.CONVERSATION_KIND_AI_ASSISTANT


@pytest.mark.asyncio
async def test_thread_replies_need_a_top_level_root(messages: MessageHandler, group: str) -> None:
    root = (await send(messages, ALICE, group, text="root")).message
    reply = await send(messages, BOB, group, text="reply", thread_root_id=root.id)
    assert reply.message.thread_root_id == root.id
    for bad in ("missing-id", reply.message.id):
        with pytest.raises(InvalidArgument) as info:
            await send(messages, CAROL, group, thread_root_id=bad)
        assert info.value.code == "invalid_thread_root"


# -- paging ----------


async def page(
    messages: MessageHandler, conv: str, after: int = 0, before: int = 0, limit: int = 0
) -> tuple[list[int], bool]:
    result = await messages.page(
        ALICE, conversation_id=conv, after_seq=after, before_seq=before, limit=limit
    )
    return [m.seq for m in result.messages], result.has_more


@pytest.mark.asyncio
async def test_paging_after_and_before(messages: MessageHandler, group: str) -> None:
    for i in range(7):
        await send(messages, ALICE, group, text=f"m{i}")
    assert await page(messages, group, after=0, limit=3) == ([1, 2, 3], True)
    assert await page(messages, group, after=3, limit=3) == ([4, 5, 6], True)
    assert await page(messages, group, after=6, limit=3) == ([7], False)
    assert await page(messages, group, after=4, limit=3) == ([5, 6, 7], False)
    assert await page(messages, group, after=7) == ([], False)
    # Before: newest first.
    assert await page(messages, group, before=6, limit=2) == ([5, 4], True)
    assert await page(messages, group, before=3, limit=5) == ([2, 1], False)
    assert await page(messages, group, before=1) == ([], False)
    # Default and maximum limits.
    assert await page(messages, group) == ([1, 2, 3, 4, 5, 6, 7], False)
    assert await page(messages, group, limit=100) == ([1, 2, 3, 4, 5, 6, 7], False)


@pytest.mark.asyncio
async def test_default_page_size_is_fifty(
    db: Database, messages: MessageHandler, group: str
) -> None:
    # Paging only reads messages; writing them directly keeps this test fast.
    await db.db["messages"].insert_many(
        [
            {
                "_id": f"m{seq}",
                "tenant_id": ALICE.tenant_id,
                "conversation_id": group,
                "seq": seq,
                "sender_id": "alice",
                "client_msg_id": f"c{seq}",
                "kind": pb.MESSAGE_KIND_TEXT,
                "text": f"m{seq}",
                "created_at": datetime(2026, 1, 1, tzinfo=UTC),
            }
            for seq in range(1, 52)
        ]
    )
    seq_list, more = await page(messages, group)
    assert seq_list == list(range(1, 51)) and more is True


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("after", "before", "limit", "code"),
    [
        (-1, 0, 10, "invalid_cursor"),
        (0, -1, 10, "invalid_cursor"),
        (2, 5, 10, "invalid_cursor"),
        (0, 0, 101, "invalid_limit"),
        (0, 0, -1, "invalid_limit"),
    ],
)
async def test_invalid_page_requests(
    messages: MessageHandler, group: str, after: int, before: int, limit: int, code: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        await page(messages, group, after=after, before=before, limit=limit)
    assert info.value.code == code


# -- read markers ----------


async def unread(conversations: ConversationHandler, caller_name: str, conv: str) -> int:
    caller = {"alice": ALICE, "bob": BOB, "carol": CAROL}[caller_name]
    view = await conversations.get(caller, conv)
    assert view.my_role != pb.MEMBER_ROLE_UNSPECIFIED
    # The view counts unread messages itself; it must agree with the markers.
    assert view.unread_count == view.last_seq - view.last_read_seq
    return view.unread_count


@pytest.mark.asyncio
async def test_mark_read_moves_forward_only_and_clamps(
    db: Database, conversations: ConversationHandler, messages: MessageHandler, group: str
) -> None:
    for _ in range(5):
        await send(messages, ALICE, group)
    # The sender has read her own messages.
    assert await unread(conversations, "alice", group) == 0
    assert await unread(conversations, "bob", group) == 5
    events_before = len(await outbox(db, group))

    assert await messages.mark_read(BOB, conversation_id=group, seq=3) == (3, 2)
    assert await unread(conversations, "bob", group) == 2
    # Backwards or equal: no change, no event.
    assert await messages.mark_read(BOB, conversation_id=group, seq=1) == (3, 2)
    assert await messages.mark_read(BOB, conversation_id=group, seq=3) == (3, 2)
    assert len(await outbox(db, group)) == events_before + 1
    # Past the end: clamped to the last message.
    assert await messages.mark_read(BOB, conversation_id=group, seq=1000) == (5, 0)
    assert await unread(conversations, "bob", group) == 0
    member = await db.db["members"].find_one({"_id": member_id(group, "bob")})
    assert member is not None and member["last_read_seq"] == 5

    events = await outbox(db, group)
    assert [d["event_seq"] for d in events] == list(range(1, 9))
    reads = [decode(d) for d in events[-2:]]
    assert [e.WhichOneof("payload") for e in reads] == ["read_marker_changed"] * 2
    assert [
        (e.read_marker_changed.user_id, e.read_marker_changed.last_read_seq) for e in reads
    ] == [
        ("bob", 3),
        ("bob", 5),
    ]

    with pytest.raises(InvalidArgument) as info:
        await messages.mark_read(BOB, conversation_id=group, seq=-1)
    assert info.value.code == "invalid_seq"
    # Carol, who read nothing, still has all five unread.
    assert await unread(conversations, "carol", group) == 5


@pytest.mark.asyncio
async def test_mark_read_on_empty_conversation_is_a_no_op(
    db: Database, messages: MessageHandler, group: str
) -> None:
    assert await messages.mark_read(BOB, conversation_id=group, seq=10) == (0, 0)
    assert await event_seqs(db, group) == [1]


# -- the outbox ----------


@pytest.mark.asyncio
async def test_every_write_leaves_exactly_one_outbox_record(
    db: Database, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    a = (await create(conversations, ALICE, members=["bob"])).conversation.id
    b = (await create(conversations, BOB, members=["alice"])).conversation.id
    await send(messages, ALICE, a)
    await send(messages, BOB, b)
    await send(messages, BOB, a)
    await messages.mark_read(ALICE, conversation_id=a, seq=2)
    # Failures in between write nothing.
    for bad in (
        send(messages, ALICE, a, text=""),
        send(messages, CAROL, a),
        send(messages, ALICE, "missing"),
        messages.mark_read(ALICE, conversation_id=a, seq=-5),
    ):
        with pytest.raises((InvalidArgument, NotFound, PermissionDenied)):
            await bad
    await send(messages, ALICE, b, client_msg_id=uuid.uuid4().hex)

    assert await event_seqs(db, a) == [1, 2, 3, 4]
    assert await event_seqs(db, b) == [1, 2, 3]
    kinds = [decode(d).WhichOneof("payload") for d in await outbox(db, a)]
    assert kinds == [
        "conversation_created",
        "message_created",
        "message_created",
        "read_marker_changed",
    ]
    for doc in await outbox(db):
        event = decode(doc)
        assert doc["_id"] == event.event_id
        assert doc["conversation_id"] == event.conversation_id
        assert doc["event_seq"] == event.event_seq
        assert doc["tenant_id"] == event.tenant_id == ALICE.tenant_id
        assert doc["topic"] == "confab.conversation.events.v1"
        headers = dict((k, bytes(v)) for k, v in doc["headers"])
        assert headers["confab-event-type"] == b"confab.conversation.v1.ConversationEvent"
    assert await count(db, "outbox") == 7
