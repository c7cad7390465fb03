"""Creating, reading and listing conversations against a real MongoDB-wire server."""

from __future__ import annotations

import asyncio

import pytest

from confab.conversation.v1 import conversation_pb2 as pb
from confab_core.clock import FakeClock
from confab_core.errors import InvalidArgument, NotFound, PermissionDenied
from confab_core.identity import BOT_USER_ID
from confab_core.limits import MAX_TITLE_CHARS
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.messages import MessageHandler
from conversation.storage.db import Database

from .conftest import ALICE, ALICE_AGENT, ALICE_B, BOB, CAROL, count, create, decode, outbox, send

KINDS = [
    pb.CONVERSATION_KIND_GROUP,
    pb.CONVERSATION_KIND_PUBLIC_CHANNEL,
    pb.CONVERSATION_KIND_PRIVATE_CHANNEL,
    pb.CONVERSATION_KIND_SUPPORT,
]


async def member_roles(db: Database, conversation_id: str) -> dict[str, int]:
    cursor = db.db["members"].find({"conversation_id": conversation_id})
    return {m["user_id"]: m["role"] async for m in cursor}


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", KINDS)
async def test_create_each_kind(
    db: Database, conversations: ConversationHandler, clock: FakeClock, kind: int
) -> None:
    result = await create(
        conversations,
        ALICE_AGENT,
        kind,
        members=["bob", "carol", "bob", "alice", ""],
        title="Team",
        context=("ticket", "T-1"),
    )
    conv = result.conversation
    assert result.created is True
    assert conv.kind == kind
    assert conv.title == "Team"
    assert conv.created_by == "alice"
    assert conv.created_at.ToDatetime().replace(tzinfo=clock.now().tzinfo) == clock.now()
    assert (conv.last_seq, conv.last_event_seq, conv.member_count) == (0, 1, 3)
    assert (conv.context.kind, conv.context.id) == ("ticket", "T-1")
    assert conv.my_role == pb.MEMBER_ROLE_OWNER
    # Duplicates, blanks and the creator are folded away.
    assert await member_roles(db, conv.id) == {
        "alice": pb.MEMBER_ROLE_OWNER,
        "bob": pb.MEMBER_ROLE_MEMBER,
        "carol": pb.MEMBER_ROLE_MEMBER,
    }
    stored = await db.db["conversations"].find_one({"_id": conv.id})
    assert stored is not None and stored["tenant_id"] == ALICE.tenant_id

    events = await outbox(db, conv.id)
    assert len(events) == 1
    event = decode(events[0])
    assert events[0]["event_seq"] == event.event_seq == 1
    assert events[0]["tenant_id"] == event.tenant_id == ALICE.tenant_id
    assert event.WhichOneof("payload") == "conversation_created"
    assert event.conversation_id == conv.id
    assert event.actor_id == "alice"
    assert list(event.conversation_created.member_ids) == ["alice", "bob", "carol"]
    assert event.conversation_created.conversation.title == "Team"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "kind", [pb.CONVERSATION_KIND_PUBLIC_CHANNEL, pb.CONVERSATION_KIND_PRIVATE_CHANNEL]
)
async def test_plain_members_cannot_create_channels(
    db: Database, conversations: ConversationHandler, kind: int
) -> None:
    with pytest.raises(PermissionDenied) as info:
        await create(conversations, ALICE, kind)
    assert info.value.code == "forbidden_kind"
    assert await count(db, "conversations") == 0
    assert await count(db, "outbox") == 0


@pytest.mark.asyncio
async def test_direct_is_created_once_from_either_side(
    db: Database, conversations: ConversationHandler
) -> None:
    first = await create(conversations, ALICE, pb.CONVERSATION_KIND_DIRECT, ["bob"])
    again = await create(conversations, ALICE, pb.CONVERSATION_KIND_DIRECT, ["bob"])
    other_side = await create(conversations, BOB, pb.CONVERSATION_KIND_DIRECT, ["alice"])
    assert first.created is True
    assert again.created is False and other_side.created is False
    conv_id = first.conversation.id
    assert again.conversation.id == other_side.conversation.id == conv_id
    # Each side sees it as itself.
    assert first.conversation.my_role == pb.MEMBER_ROLE_OWNER
    assert other_side.conversation.my_role == pb.MEMBER_ROLE_MEMBER
    assert await count(db, "conversations") == 1
    assert len(await outbox(db)) == 1
    # A different pair is a different conversation.
    third = await create(conversations, ALICE, pb.CONVERSATION_KIND_DIRECT, ["carol"])
    assert third.created and third.conversation.id != conv_id


@pytest.mark.asyncio
async def test_racing_direct_creates_make_one_conversation(
    db: Database, conversations: ConversationHandler
) -> None:
    results = await asyncio.gather(
        create(conversations, ALICE, pb.CONVERSATION_KIND_DIRECT, ["bob"]),
        create(conversations, BOB, pb.CONVERSATION_KIND_DIRECT, ["alice"]),
        create(conversations, ALICE, pb.CONVERSATION_KIND_DIRECT, ["bob"]),
    )
    assert len({r.conversation.id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert await count(db, "conversations") == 1
    assert await count(db, "members") == 2
    assert len(await outbox(db)) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("members", [[], ["alice"], ["bob", "carol"]])
async def test_direct_needs_exactly_one_other_member(
    db: Database, conversations: ConversationHandler, members: list[str]
) -> None:
    with pytest.raises(InvalidArgument) as info:
        await create(conversations, ALICE, pb.CONVERSATION_KIND_DIRECT, members)
    assert info.value.code == "direct_needs_one_member"
    assert await count(db, "conversations") == 0


@pytest.mark.asyncio
async def test_ai_assistant_has_only_the_bot(
    db: Database, conversations: ConversationHandler
) -> None:
    result = await create(conversations, ALICE, pb.CONVERSATION_KIND_AI_ASSISTANT, ["bob", "carol"])
    assert result.created
    assert result.conversation.member_count == 2
    assert await member_roles(db, result.conversation.id) == {
        "alice": pb.MEMBER_ROLE_OWNER,
        BOT_USER_ID: pb.MEMBER_ROLE_MEMBER,
    }
    event = decode((await outbox(db))[0])
    assert list(event.conversation_created.member_ids) == ["alice", BOT_USER_ID]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"kind": pb.CONVERSATION_KIND_UNSPECIFIED}, "invalid_kind"),
        ({"kind": 99}, "invalid_kind"),
        ({"title": "x" * (MAX_TITLE_CHARS + 1)}, "title_too_long"),
        ({"description": "d" * 2001}, "description_too_long"),
        ({"member_ids": [f"u{i}" for i in range(1001)]}, "too_many_members"),
        ({"member_ids": ["u" * 129]}, "invalid_member_id"),
        ({"context": ("ticket", "")}, "invalid_context"),
    ],
)
async def test_invalid_create_writes_nothing(
    db: Database, conversations: ConversationHandler, kwargs: dict[str, object], code: str
) -> None:
    args: dict[str, object] = {
        "kind": pb.CONVERSATION_KIND_GROUP,
        "title": "",
        "description": "",
        "member_ids": ["bob"],
        "context": None,
    }
    args.update(kwargs)
    with pytest.raises(InvalidArgument) as info:
        await conversations.create(ALICE, **args)  # type: ignore[arg-type]
    assert info.value.code == code
    assert await count(db, "conversations") == 0
    assert await count(db, "members") == 0
    assert await count(db, "outbox") == 0


@pytest.mark.asyncio
async def test_title_at_the_limit_is_fine(conversations: ConversationHandler) -> None:
    result = await create(conversations, ALICE, title="t" * MAX_TITLE_CHARS)
    assert result.created


@pytest.mark.asyncio
async def test_get_for_members_and_public_channels(conversations: ConversationHandler) -> None:
    private = await create(
        conversations, ALICE_AGENT, pb.CONVERSATION_KIND_PRIVATE_CHANNEL, ["bob"]
    )
    public = await create(conversations, ALICE_AGENT, pb.CONVERSATION_KIND_PUBLIC_CHANNEL)
    seen = await conversations.get(BOB, private.conversation.id)
    assert seen.id == private.conversation.id
    assert seen.my_role == pb.MEMBER_ROLE_MEMBER
    # A non-member cannot tell a private conversation from a missing one...
    with pytest.raises(NotFound) as info:
        await conversations.get(CAROL, private.conversation.id)
    assert info.value.code == "conversation_not_found"
    with pytest.raises(NotFound):
        await conversations.get(CAROL, "no-such-id")
    # ...but sees a public channel of the tenant, without a membership.
    seen = await conversations.get(CAROL, public.conversation.id)
    assert seen.id == public.conversation.id
    assert seen.my_role == pb.MEMBER_ROLE_UNSPECIFIED


@pytest.mark.asyncio
async def test_list_is_most_recent_first_and_limited(
    conversations: ConversationHandler, clock: FakeClock
) -> None:
    ids = []
    for i in range(4):
        clock.advance(10)
        result = await create(conversations, ALICE, members=["bob"], title=f"c{i}")
        ids.append(result.conversation.id)
    await create(conversations, CAROL, title="not mine")
    listed = (await conversations.list_for_caller(ALICE, 0)).conversations
    assert [c.id for c in listed] == list(reversed(ids))
    assert all(c.my_role == pb.MEMBER_ROLE_OWNER for c in listed)
    assert [c.id for c in (await conversations.list_for_caller(ALICE, 2)).conversations] == [
        ids[3],
        ids[2],
    ]
    assert len((await conversations.list_for_caller(BOB, 500)).conversations) == 4


@pytest.mark.asyncio
async def test_list_ids_by_size_for_presence(
    conversations: ConversationHandler, clock: FakeClock
) -> None:
    pair = await create(conversations, ALICE, members=["bob"])
    clock.advance(10)
    trio = await create(conversations, ALICE, members=["bob", "carol"])
    await create(conversations, CAROL, title="not alice's")
    everyone = await conversations.list_ids(ALICE, 0)
    assert sorted(everyone) == sorted([pair.conversation.id, trio.conversation.id])
    assert await conversations.list_ids(ALICE, 2) == [pair.conversation.id]
    assert sorted(await conversations.list_ids(ALICE, 3)) == sorted(everyone)
    assert await conversations.list_ids(ALICE_B, 0) == []
    # Most recent activity first (the trio was made last), cut at the limit.
    assert await conversations.list_ids(ALICE, 0, 1) == [trio.conversation.id]
    with pytest.raises(InvalidArgument) as info:
        await conversations.list_ids(ALICE, -1)
    assert info.value.code == "invalid_max_member_count"


@pytest.mark.asyncio
async def test_list_members_with_profiles(conversations: ConversationHandler) -> None:
    result = await create(conversations, ALICE, members=["bob", "carol"])
    conv_id = result.conversation.id
    # Bob's profile becomes known once he makes a call himself.
    await create(conversations, BOB, pb.CONVERSATION_KIND_DIRECT, ["alice"])
    rows = await conversations.list_members(ALICE, conv_id)
    by_user = {m.user_id: (m, p) for m, p in rows}
    assert set(by_user) == {"alice", "bob", "carol"}
    alice_profile = by_user["alice"][1]
    assert alice_profile is not None and alice_profile.display_name == "Alice"
    assert alice_profile.email == "alice@tenant-a.example"
    bob_profile = by_user["bob"][1]
    assert bob_profile is not None and bob_profile.display_name == "Bob"
    assert by_user["carol"][1] is None
    assert (by_user["alice"][0].conversation_id, by_user["alice"][0].user_id) == (conv_id, "alice")


@pytest.mark.asyncio
async def test_list_pages_with_a_token_through_every_conversation(
    conversations: ConversationHandler, messages: MessageHandler, clock: FakeClock
) -> None:
    ids = []
    for i in range(7):
        # Two share each activity time: ties are broken by id, not lost.
        if i % 2 == 0:
            clock.advance(10)
        ids.append(
            (await create(conversations, ALICE, members=["bob"], title=f"c{i}")).conversation.id
        )
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await conversations.list_for_caller(BOB, 3, token)
        seen += [c.id for c in page.conversations]
        pages += 1
        if pages == 1:
            # Activity after the first page moves that conversation ahead of the
            # cursor: the rest of the walk neither repeats nor skips the others.
            clock.advance(10)
            await send(messages, ALICE, seen[-1])
        token = page.next_page_token
        if not token:
            break
    assert pages == 3
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == set(ids)


@pytest.mark.asyncio
async def test_a_page_token_is_only_good_for_its_user(
    conversations: ConversationHandler,
) -> None:
    for _ in range(3):
        await create(conversations, ALICE, members=["bob"])
    token = (await conversations.list_for_caller(ALICE, 1)).next_page_token
    assert token
    for caller, bad in ((BOB, token), (ALICE_B, token), (ALICE, "garbage!"), (ALICE, token[:-4])):
        with pytest.raises(InvalidArgument) as err:
            await conversations.list_for_caller(caller, 1, bad)
        assert err.value.code == "invalid_cursor"
