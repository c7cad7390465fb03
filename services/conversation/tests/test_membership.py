"""MembershipService: what other services (presence) ask to enforce their rules."""

from __future__ import annotations

import pytest

from confab.conversation.v1 import conversation_pb2 as pb
from confab_core.errors import InvalidArgument, NotFound, PermissionDenied
from confab_core.identity import ROLE_TENANT_ADMIN
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.membership import MAX_FILTER_IDS, MembershipHandler
from conversation.storage.db import Database

from .conftest import ALICE, ALICE_B, BOB, CAROL, MALLORY, create, user

pytestmark = pytest.mark.asyncio


async def test_check_member(conversations: ConversationHandler, db: Database) -> None:
    membership = MembershipHandler(db, conversations.unit.roles)
    group = (await create(conversations, ALICE, members=["bob"])).conversation.id
    await membership.check_member(ALICE, group)
    await membership.check_member(BOB, group)
    # A private group is invisible to others, and to other tenants.
    for outsider in (CAROL, MALLORY):
        with pytest.raises(NotFound) as hidden:
            await membership.check_member(outsider, group)
        assert hidden.value.code == "conversation_not_found"
    with pytest.raises(NotFound):
        await membership.check_member(ALICE, "no-such-conversation")
    # A public channel is visible to all, yet only its members are in it.
    admin = user("root", "tenant-a", ROLE_TENANT_ADMIN)
    channel = (
        await create(conversations, admin, kind=pb.CONVERSATION_KIND_PUBLIC_CHANNEL)
    ).conversation.id
    with pytest.raises(PermissionDenied) as refused:
        await membership.check_member(CAROL, channel)
    assert refused.value.code == "not_a_member"


async def test_filter_co_members(conversations: ConversationHandler, db: Database) -> None:
    membership = MembershipHandler(db, conversations.unit.roles)
    await create(conversations, ALICE, members=["bob"])
    await create(conversations, ALICE_B, members=["carol"])  # another tenant
    asked = ["carol", "bob", "alice", "bob", "nobody"]
    assert await membership.filter_co_members(ALICE, asked) == ["bob", "alice"]
    assert await membership.filter_co_members(CAROL, ["alice", "bob", "carol"]) == ["carol"]
    assert await membership.filter_co_members(ALICE_B, ["carol", "bob"]) == ["carol"]
    assert await membership.filter_co_members(ALICE, []) == []


async def test_a_deleted_conversation_shares_nothing(
    conversations: ConversationHandler, db: Database
) -> None:
    membership = MembershipHandler(db, conversations.unit.roles)
    group = (await create(conversations, ALICE, members=["bob"])).conversation.id
    assert await membership.filter_co_members(ALICE, ["bob"]) == ["bob"]
    await conversations.delete(user("root", "tenant-a", ROLE_TENANT_ADMIN), group)
    assert await membership.filter_co_members(ALICE, ["bob"]) == []


async def test_too_many_ids(conversations: ConversationHandler, db: Database) -> None:
    with pytest.raises(InvalidArgument) as info:
        await MembershipHandler(db, conversations.unit.roles).filter_co_members(
            ALICE, [f"u{i}" for i in range(MAX_FILTER_IDS + 1)]
        )
    assert info.value.code == "too_many_user_ids"
