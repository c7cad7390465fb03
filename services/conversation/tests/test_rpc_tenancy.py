"""Every ConversationService RPC, over real gRPC: another tenant's ids are NOT_FOUND.

The RPC list comes from the proto descriptor, so a new RPC without a case here
fails ``test_every_rpc_has_a_cross_tenant_case``. Each request names tenant A's
conversation (and message, member, thread root) ids; callers of tenant B, however
privileged, get NOT_FOUND with ``conversation_not_found``, and tenant A's documents
are exactly as before. RPCs that name no conversation are checked for showing
tenant B nothing of tenant A instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import conversation_pb2_grpc as pb_grpc
from confab_core.identity import (
    PLATFORM_TENANT_ID,
    ROLE_SERVICE,
    ROLE_SUPER_ADMIN,
    ROLE_TENANT_ADMIN,
)
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.messages import MessageHandler
from conversation.storage.db import Database

from .conftest import (
    ALICE,
    ALICE_AGENT,
    ALICE_B,
    CORE_COLLECTIONS,
    MALLORY,
    TENANT_A,
    TENANT_B,
    create,
    send,
    snapshot,
    user,
)
from .test_servicer import As, stub, trailing_code  # noqa: F401  (stub is a fixture)

SERVICE = pb.DESCRIPTOR.services_by_name["ConversationService"]

STRANGERS = [
    MALLORY,
    # Same user id as tenant A's owner.
    ALICE_B,
    user("root", TENANT_B, ROLE_TENANT_ADMIN),
    # Platform staff hold no rights in any tenant.
    user("staff", PLATFORM_TENANT_ID, ROLE_SUPER_ADMIN),
    user("confab-bot", TENANT_B, ROLE_SERVICE),
]


@dataclass(frozen=True)
class TenantA:
    group: str
    channel: str
    direct: str
    message: str
    reply: str


# Requests naming tenant A's ids, one per RPC that takes a conversation id.
NAMING_A: dict[str, Callable[[TenantA], Message]] = {
    "GetConversation": lambda a: pb.GetConversationRequest(conversation_id=a.group),
    "ListMembers": lambda a: pb.ListMembersRequest(conversation_id=a.group),
    "SendMessage": lambda a: pb.SendMessageRequest(
        conversation_id=a.group, client_msg_id="x1", text="sneaky", thread_root_id=a.message
    ),
    "ListMessages": lambda a: pb.ListMessagesRequest(conversation_id=a.channel, limit=10),
    "MarkRead": lambda a: pb.MarkReadRequest(conversation_id=a.group, seq=2),
    "UpdateConversation": lambda a: pb.UpdateConversationRequest(
        conversation_id=a.group, title="pwned"
    ),
    "ArchiveConversation": lambda a: pb.ArchiveConversationRequest(conversation_id=a.group),
    "DeleteConversation": lambda a: pb.DeleteConversationRequest(conversation_id=a.group),
    "JoinConversation": lambda a: pb.JoinConversationRequest(conversation_id=a.channel),
    "LeaveConversation": lambda a: pb.LeaveConversationRequest(conversation_id=a.group),
    "AddMembers": lambda a: pb.AddMembersRequest(
        conversation_id=a.group, user_ids=["mallory"], role=pb.MEMBER_ROLE_OWNER
    ),
    "RemoveMember": lambda a: pb.RemoveMemberRequest(conversation_id=a.group, user_id="bob"),
    "UpdateMemberRole": lambda a: pb.UpdateMemberRoleRequest(
        conversation_id=a.group, user_id="bob", role=pb.MEMBER_ROLE_OWNER
    ),
    "EditMessage": lambda a: pb.EditMessageRequest(
        conversation_id=a.group, message_id=a.message, text="pwned"
    ),
    "DeleteMessage": lambda a: pb.DeleteMessageRequest(
        conversation_id=a.group, message_id=a.message
    ),
    "ToggleReaction": lambda a: pb.ToggleReactionRequest(
        conversation_id=a.group, message_id=a.message, emoji="💀"
    ),
    "ListThread": lambda a: pb.ListThreadRequest(
        conversation_id=a.group, root_message_id=a.message, limit=10
    ),
    "SearchMessages": lambda a: pb.SearchMessagesRequest(
        query="secret", conversation_id=a.channel, limit=10
    ),
    "ListEvents": lambda a: pb.ListEventsRequest(conversation_id=a.group, limit=10),
}


# RPCs that name no conversation: they must show (or touch) nothing of tenant A.
async def _create(s: pb_grpc.ConversationServiceStub, a: TenantA) -> None:
    # Tenant A has a direct conversation alice-bob; the same pair in B is another one.
    made = await s.CreateConversation(
        pb.CreateConversationRequest(kind=pb.CONVERSATION_KIND_DIRECT, member_ids=["bob"])
    )
    assert made.created and made.conversation.id not in (a.group, a.channel, a.direct)


async def _list(s: pb_grpc.ConversationServiceStub, a: TenantA) -> None:
    listed = await s.ListConversations(pb.ListConversationsRequest(limit=100))
    assert not {c.id for c in listed.conversations} & {a.group, a.channel, a.direct}


async def _list_ids(s: pb_grpc.ConversationServiceStub, a: TenantA) -> None:
    for size in (0, 2, 1000):
        listed = await s.ListConversationIds(pb.ListConversationIdsRequest(max_member_count=size))
        assert not set(listed.conversation_ids) & {a.group, a.channel, a.direct}


async def _browse(s: pb_grpc.ConversationServiceStub, a: TenantA) -> None:
    for query in ("", "Announcements"):
        found = await s.BrowseChannels(pb.BrowseChannelsRequest(query=query))
        assert a.channel not in {c.id for c in found.conversations}


async def _search_everywhere(s: pb_grpc.ConversationServiceStub, a: TenantA) -> None:
    found = await s.SearchMessages(pb.SearchMessagesRequest(query="secret"))
    assert list(found.messages) == []


NAMING_NONE: dict[str, Callable[[pb_grpc.ConversationServiceStub, TenantA], Any]] = {
    "CreateConversation": _create,
    "ListConversations": _list,
    "ListConversationIds": _list_ids,
    "BrowseChannels": _browse,
    # SearchMessages names a conversation in NAMING_A; unscoped, it is checked here too.
    "SearchMessages": _search_everywhere,
}


def test_every_rpc_has_a_cross_tenant_case() -> None:
    rpcs = {m.name for m in SERVICE.methods}
    missing = rpcs - set(NAMING_A) - set(NAMING_NONE)
    assert not missing, f"add a cross-tenant case for {sorted(missing)}"
    assert set(NAMING_A) | set(NAMING_NONE) <= rpcs


async def tenant_a(conversations: ConversationHandler, messages: MessageHandler) -> TenantA:
    group = (await create(conversations, ALICE, members=["bob"])).conversation.id
    channel = (
        await create(
            conversations, ALICE_AGENT, pb.CONVERSATION_KIND_PUBLIC_CHANNEL, title="Announcements"
        )
    ).conversation.id
    direct = (
        await create(conversations, ALICE, pb.CONVERSATION_KIND_DIRECT, ["bob"])
    ).conversation.id
    message = (await send(messages, ALICE, group, text="secret plan")).message.id
    reply = (
        await send(messages, ALICE, group, text="secret reply", thread_root_id=message)
    ).message.id
    await send(messages, ALICE, channel, text="secret announcement")
    return TenantA(group, channel, direct, message, reply)


@pytest.mark.asyncio
async def test_other_tenant_gets_not_found_on_every_rpc(
    db: Database,
    conversations: ConversationHandler,
    messages: MessageHandler,
    stub: pb_grpc.ConversationServiceStub,  # noqa: F811
) -> None:
    a = await tenant_a(conversations, messages)
    failures: list[str] = []
    for method in SERVICE.methods:
        for stranger in STRANGERS:
            where = f"{method.name} as {stranger.tenant_id}/{stranger.user_id}"
            before_a = await snapshot(db, tenant=TENANT_A)
            totals = {c: await db.db[c].count_documents({}) for c in CORE_COLLECTIONS}
            with As(stranger):
                if method.name in NAMING_A:
                    call = getattr(stub, method.name)
                    try:
                        await call(NAMING_A[method.name](a), timeout=10)
                        failures.append(f"{where}: succeeded")
                    except grpc.aio.AioRpcError as err:
                        got = (err.code(), trailing_code(err))
                        if got != (grpc.StatusCode.NOT_FOUND, "conversation_not_found"):
                            failures.append(f"{where}: {got}")
                    after = {c: await db.db[c].count_documents({}) for c in CORE_COLLECTIONS}
                    if after != totals:
                        failures.append(f"{where}: wrote {totals} -> {after}")
                if method.name in NAMING_NONE:
                    await NAMING_NONE[method.name](stub, a)
            if await snapshot(db, tenant=TENANT_A) != before_a:
                failures.append(f"{where}: changed tenant A's documents")
    assert failures == []


@pytest.mark.asyncio
async def test_own_conversation_with_another_tenants_message_ids(
    db: Database,
    conversations: ConversationHandler,
    messages: MessageHandler,
    stub: pb_grpc.ConversationServiceStub,  # noqa: F811
) -> None:
    """Tenant B's own conversation, tenant A's message ids: still nothing to find."""
    a = await tenant_a(conversations, messages)
    mine = (await create(conversations, MALLORY, members=["bob"])).conversation.id
    await send(messages, MALLORY, mine, text="secret of b")
    calls: list[tuple[str, Message, grpc.StatusCode, str]] = [
        (
            "EditMessage",
            pb.EditMessageRequest(conversation_id=mine, message_id=a.message, text="x"),
            grpc.StatusCode.NOT_FOUND,
            "message_not_found",
        ),
        (
            "DeleteMessage",
            pb.DeleteMessageRequest(conversation_id=mine, message_id=a.message),
            grpc.StatusCode.NOT_FOUND,
            "message_not_found",
        ),
        (
            "ToggleReaction",
            pb.ToggleReactionRequest(conversation_id=mine, message_id=a.message, emoji="💀"),
            grpc.StatusCode.NOT_FOUND,
            "message_not_found",
        ),
        (
            "ListThread",
            pb.ListThreadRequest(conversation_id=mine, root_message_id=a.message, limit=5),
            grpc.StatusCode.NOT_FOUND,
            "message_not_found",
        ),
        (
            "SendMessage",
            pb.SendMessageRequest(
                conversation_id=mine, client_msg_id="t1", text="hi", thread_root_id=a.message
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid_thread_root",
        ),
    ]
    before = await snapshot(db)
    with As(MALLORY):
        for name, request, status, code in calls:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await getattr(stub, name)(request, timeout=10)
            assert (info.value.code(), trailing_code(info.value)) == (status, code), name
    assert await snapshot(db) == before
