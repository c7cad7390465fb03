"""A caller of another tenant can neither read, write, list nor detect a conversation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from confab.conversation.v1 import conversation_pb2 as pb
from confab_core.errors import NotFound
from confab_core.identity import (
    PLATFORM_TENANT_ID,
    ROLE_SERVICE,
    ROLE_SUPER_ADMIN,
    ROLE_TENANT_ADMIN,
    Caller,
)
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.messages import MessageHandler
from conversation.storage.db import Database

from .conftest import (
    ALICE,
    ALICE_AGENT,
    ALICE_B,
    MALLORY,
    TENANT_B,
    count,
    create,
    outbox,
    send,
    user,
)

STRANGERS = [
    MALLORY,
    # Same user id, other tenant.
    ALICE_B,
    # Privileged roles do not cross tenants either.
    user("root", TENANT_B, ROLE_TENANT_ADMIN),
    # Platform staff hold no rights in any tenant.
    user("staff", PLATFORM_TENANT_ID, ROLE_SUPER_ADMIN),
    user("confab-bot", TENANT_B, ROLE_SERVICE),
]


def operations(
    conversations: ConversationHandler, messages: MessageHandler, conv_id: str
) -> dict[str, Callable[[Caller], Awaitable[Any]]]:
    return {
        "get": lambda c: conversations.get(c, conv_id),
        "list_members": lambda c: conversations.list_members(c, conv_id),
        "send": lambda c: send(messages, c, conv_id, text="sneaky"),
        "page": lambda c: messages.page(
            c, conversation_id=conv_id, after_seq=0, before_seq=0, limit=10
        ),
        "page_before": lambda c: messages.page(
            c, conversation_id=conv_id, after_seq=0, before_seq=100, limit=10
        ),
        "mark_read": lambda c: messages.mark_read(c, conversation_id=conv_id, seq=1),
    }


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "kind",
    [
        pb.CONVERSATION_KIND_GROUP,
        pb.CONVERSATION_KIND_PUBLIC_CHANNEL,
        pb.CONVERSATION_KIND_AI_ASSISTANT,
    ],
)
async def test_other_tenant_gets_not_found_everywhere(
    db: Database, conversations: ConversationHandler, messages: MessageHandler, kind: int
) -> None:
    conv_id = (await create(conversations, ALICE_AGENT, kind, ["bob"])).conversation.id
    await send(messages, ALICE, conv_id, text="secret")
    messages_before = await count(db, "messages")
    events_before = len(await outbox(db))

    for stranger in STRANGERS:
        for name, op in operations(conversations, messages, conv_id).items():
            with pytest.raises(NotFound) as info:
                await op(stranger)
            assert info.value.code == "conversation_not_found", (stranger, name)
        assert (await conversations.list_for_caller(stranger, 100)).conversations == []

    assert await count(db, "messages") == messages_before
    assert len(await outbox(db)) == events_before
    # Alice still sees it, untouched.
    view = await conversations.get(ALICE, conv_id)
    assert view.last_seq == 1 and view.my_role == pb.MEMBER_ROLE_OWNER


@pytest.mark.asyncio
async def test_not_found_is_the_same_as_for_a_missing_conversation(
    conversations: ConversationHandler,
) -> None:
    conv_id = (await create(conversations, ALICE, members=["bob"])).conversation.id
    with pytest.raises(NotFound) as theirs:
        await conversations.get(MALLORY, conv_id)
    with pytest.raises(NotFound) as missing:
        await conversations.get(MALLORY, "does-not-exist")
    assert (theirs.value.code, theirs.value.message) == (
        missing.value.code,
        missing.value.message,
    )


@pytest.mark.asyncio
async def test_same_user_ids_in_two_tenants_are_separate(
    db: Database, conversations: ConversationHandler, messages: MessageHandler
) -> None:
    bob_b = user("bob", TENANT_B)
    in_a = await create(conversations, ALICE, pb.CONVERSATION_KIND_DIRECT, ["bob"])
    in_b = await create(conversations, ALICE_B, pb.CONVERSATION_KIND_DIRECT, ["bob"])
    # The direct pair is unique per tenant, not across tenants.
    assert in_a.created and in_b.created
    assert in_a.conversation.id != in_b.conversation.id
    await send(messages, ALICE, in_a.conversation.id, client_msg_id="c1", text="to A")
    sent_b = await send(messages, ALICE_B, in_b.conversation.id, client_msg_id="c1", text="to B")
    # Same client_msg_id in another tenant is a different message.
    assert sent_b.created and sent_b.message.seq == 1

    listed_a = (await conversations.list_for_caller(ALICE, 100)).conversations
    listed_b = (await conversations.list_for_caller(bob_b, 100)).conversations
    assert [c.id for c in listed_a] == [in_a.conversation.id]
    assert [c.id for c in listed_b] == [in_b.conversation.id]
    page = await messages.page(
        bob_b, conversation_id=in_b.conversation.id, after_seq=0, before_seq=0, limit=10
    )
    assert [m.text for m in page.messages] == ["to B"]

    # Profiles are per tenant too.
    profiles = {(u["tenant_id"], u["user_id"]) async for u in db.db["users"].find({})}
    assert {("tenant-a", "alice"), ("tenant-b", "alice")} <= profiles
    tenants = {d["tenant_id"] async for d in db.db["messages"].find({})}
    assert tenants == {"tenant-a", "tenant-b"}
