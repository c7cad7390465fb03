"""A refused write writes nothing: every write RPC, over real gRPC, with invalid requests.

For each write RPC, requests that are invalid (bad ids, empty or oversized text,
bad emoji, unknown roles, refused by the permission matrix, or refused half-way
through the transaction, after the conversation's seqs were taken) fail with
their stable code and leave the conversation, member, message and outbox
documents exactly as they were.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest
import pytest_asyncio
from google.protobuf.message import Message

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import conversation_pb2_grpc as pb_grpc
from confab_core.identity import BOT_USER_ID, ROLE_TENANT_ADMIN, Caller
from confab_core.limits import MAX_REACTIONS_PER_MESSAGE
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.messages import MessageHandler
from conversation.storage.db import Database

from .conftest import ALICE, ALICE_AGENT, BOB, CAROL, create, send, snapshot, user
from .test_servicer import As, stub, trailing_code  # noqa: F401  (stub is a fixture)

SERVICE = pb.DESCRIPTOR.services_by_name["ConversationService"]
READ_RPCS = {
    "GetConversation",
    "ListConversations",
    "ListMembers",
    "ListMessages",
    "BrowseChannels",
    "ListThread",
    "SearchMessages",
    "ListEvents",
    "ListConversationIds",
}
DAVE = user("dave")
ADMIN = user("root", ALICE.tenant_id, ROLE_TENANT_ADMIN)
NF = (grpc.StatusCode.NOT_FOUND, "conversation_not_found")


@dataclass(frozen=True)
class Scene:
    """Alice owns a group with bob (member), carol (observer) and dave (admin)."""

    group: str
    direct: str
    archived: str
    message: str
    reply: str
    tombstone: str
    crowded: str


@pytest_asyncio.fixture
async def scene(
    db: Database, conversations: ConversationHandler, messages: MessageHandler
) -> Scene:
    group = (await create(conversations, ALICE, members=["bob", "carol", "dave"])).conversation.id
    direct = (
        await create(conversations, ALICE, pb.CONVERSATION_KIND_DIRECT, ["bob"])
    ).conversation.id
    archived = (
        await create(conversations, ALICE_AGENT, pb.CONVERSATION_KIND_PUBLIC_CHANNEL)
    ).conversation.id
    await conversations.archive(ALICE, archived)
    message = (await send(messages, ALICE, group, text="root")).message.id
    reply = (await send(messages, BOB, group, text="reply", thread_root_id=message)).message.id
    tombstone = (await send(messages, BOB, group, text="gone")).message.id
    await messages.delete(BOB, conversation_id=group, message_id=tombstone)
    crowded = (await send(messages, BOB, group, text="popular")).message.id
    # As many different reactions as a message may have.
    await db.db["messages"].update_one(
        {"_id": crowded},
        {"$set": {"reactions": [{"emoji": f":e{i}:", "users": ["bob"]} for i in range(50)]}},
    )
    assert MAX_REACTIONS_PER_MESSAGE == 50
    await conversations.set_role(ALICE, group, "carol", pb.MEMBER_ROLE_OBSERVER)
    await conversations.set_role(ALICE, group, "dave", pb.MEMBER_ROLE_ADMIN)
    return Scene(group, direct, archived, message, reply, tombstone, crowded)


Bad = tuple[str, Caller, Message, tuple[grpc.StatusCode, str]]


def invalid(s: Scene) -> dict[str, list[Bad]]:
    """For each write RPC: (what, caller, request, expected status and code)."""
    inv = grpc.StatusCode.INVALID_ARGUMENT
    denied = grpc.StatusCode.PERMISSION_DENIED
    failed = grpc.StatusCode.FAILED_PRECONDITION
    g = s.group
    file = pb.FileAttachment(url="ftp://files.example/a", name="a.txt", size_bytes=1)
    return {
        "CreateConversation": [
            ("no kind", ALICE, pb.CreateConversationRequest(), (inv, "invalid_kind")),
            ("unknown kind", ALICE, pb.CreateConversationRequest(kind=99), (inv, "invalid_kind")),
            (
                "direct alone",
                ALICE,
                pb.CreateConversationRequest(kind=pb.CONVERSATION_KIND_DIRECT),
                (inv, "direct_needs_one_member"),
            ),
            (
                "direct with two",
                ALICE,
                pb.CreateConversationRequest(
                    kind=pb.CONVERSATION_KIND_DIRECT, member_ids=["bob", "carol"]
                ),
                (inv, "direct_needs_one_member"),
            ),
            (
                "member id too long",
                ALICE,
                pb.CreateConversationRequest(
                    kind=pb.CONVERSATION_KIND_GROUP, member_ids=["x" * 129]
                ),
                (inv, "invalid_member_id"),
            ),
            (
                "too many members",
                ALICE,
                pb.CreateConversationRequest(
                    kind=pb.CONVERSATION_KIND_GROUP, member_ids=[f"u{i}" for i in range(1001)]
                ),
                (inv, "too_many_members"),
            ),
            (
                "title too long",
                ALICE,
                pb.CreateConversationRequest(kind=pb.CONVERSATION_KIND_GROUP, title="t" * 201),
                (inv, "title_too_long"),
            ),
            (
                "half a context",
                ALICE,
                pb.CreateConversationRequest(
                    kind=pb.CONVERSATION_KIND_GROUP, context=pb.ContextLink(kind="ticket")
                ),
                (inv, "invalid_context"),
            ),
            (
                "member makes a channel",
                ALICE,
                pb.CreateConversationRequest(kind=pb.CONVERSATION_KIND_PUBLIC_CHANNEL),
                (denied, "forbidden_kind"),
            ),
        ],
        "UpdateConversation": [
            (
                "nothing",
                ALICE,
                pb.UpdateConversationRequest(conversation_id=g),
                (inv, "nothing_to_update"),
            ),
            (
                "title too long",
                ALICE,
                pb.UpdateConversationRequest(conversation_id=g, title="t" * 201),
                (inv, "title_too_long"),
            ),
            (
                "topic too long",
                ALICE,
                pb.UpdateConversationRequest(conversation_id=g, title="ok", topic="t" * 251),
                (inv, "topic_too_long"),
            ),
            (
                "description too long",
                ALICE,
                pb.UpdateConversationRequest(conversation_id=g, description="d" * 2001),
                (inv, "description_too_long"),
            ),
            (
                "unknown id",
                ALICE,
                pb.UpdateConversationRequest(conversation_id="nope", title="x"),
                NF,
            ),
            (
                "plain member",
                BOB,
                pb.UpdateConversationRequest(conversation_id=g, title="x"),
                (denied, "forbidden"),
            ),
            (
                "direct",
                ALICE,
                pb.UpdateConversationRequest(conversation_id=s.direct, title="x"),
                (denied, "not_editable"),
            ),
            (
                "archived",
                ALICE,
                pb.UpdateConversationRequest(conversation_id=s.archived, title="x"),
                (failed, "conversation_archived"),
            ),
        ],
        "ArchiveConversation": [
            ("unknown id", ALICE, pb.ArchiveConversationRequest(conversation_id="nope"), NF),
            ("empty id", ALICE, pb.ArchiveConversationRequest(), NF),
            (
                "plain member",
                BOB,
                pb.ArchiveConversationRequest(conversation_id=g),
                (denied, "forbidden"),
            ),
        ],
        "DeleteConversation": [
            ("unknown id", ADMIN, pb.DeleteConversationRequest(conversation_id="nope"), NF),
            (
                "owner",
                ALICE,
                pb.DeleteConversationRequest(conversation_id=g),
                (denied, "forbidden"),
            ),
            ("others' direct", ADMIN, pb.DeleteConversationRequest(conversation_id=s.direct), NF),
        ],
        "JoinConversation": [
            ("unknown id", BOB, pb.JoinConversationRequest(conversation_id="nope"), NF),
            ("invisible group", user("eve"), pb.JoinConversationRequest(conversation_id=g), NF),
            (
                "group",
                ADMIN,
                pb.JoinConversationRequest(conversation_id=g),
                (denied, "not_joinable"),
            ),
            (
                "archived channel",
                BOB,
                pb.JoinConversationRequest(conversation_id=s.archived),
                (failed, "conversation_archived"),
            ),
        ],
        "LeaveConversation": [
            ("unknown id", BOB, pb.LeaveConversationRequest(conversation_id="nope"), NF),
            (
                "not a member",
                ADMIN,
                pb.LeaveConversationRequest(conversation_id=g),
                (denied, "not_a_member"),
            ),
            (
                "direct",
                BOB,
                pb.LeaveConversationRequest(conversation_id=s.direct),
                (denied, "cannot_leave"),
            ),
            # Refused inside the transaction, after member_count and the event seq moved.
            (
                "last owner",
                ALICE,
                pb.LeaveConversationRequest(conversation_id=g),
                (failed, "last_owner"),
            ),
            (
                "archived",
                ALICE_AGENT,
                pb.LeaveConversationRequest(conversation_id=s.archived),
                (failed, "conversation_archived"),
            ),
        ],
        "AddMembers": [
            (
                "unknown role",
                ALICE,
                pb.AddMembersRequest(conversation_id=g, user_ids=["eve"], role=99),
                (inv, "invalid_role"),
            ),
            ("no ids", ALICE, pb.AddMembersRequest(conversation_id=g), (inv, "no_members")),
            (
                "empty id",
                ALICE,
                pb.AddMembersRequest(conversation_id=g, user_ids=[""]),
                (inv, "invalid_member_id"),
            ),
            (
                "id too long",
                ALICE,
                pb.AddMembersRequest(conversation_id=g, user_ids=["eve", "x" * 129]),
                (inv, "invalid_member_id"),
            ),
            (
                "the bot",
                ALICE,
                pb.AddMembersRequest(conversation_id=g, user_ids=["eve", BOT_USER_ID]),
                (inv, "invalid_member_id"),
            ),
            (
                "too many",
                ALICE,
                pb.AddMembersRequest(conversation_id=g, user_ids=[f"u{i}" for i in range(1001)]),
                (inv, "too_many_members"),
            ),
            (
                "plain member",
                BOB,
                pb.AddMembersRequest(conversation_id=g, user_ids=["eve"]),
                (denied, "forbidden"),
            ),
            (
                "admin grants owner",
                DAVE,
                pb.AddMembersRequest(
                    conversation_id=g, user_ids=["eve"], role=pb.MEMBER_ROLE_OWNER
                ),
                (denied, "forbidden"),
            ),
            (
                "direct",
                ALICE,
                pb.AddMembersRequest(conversation_id=s.direct, user_ids=["eve"]),
                (denied, "not_editable"),
            ),
            (
                "unknown id",
                ALICE,
                pb.AddMembersRequest(conversation_id="nope", user_ids=["eve"]),
                NF,
            ),
        ],
        "RemoveMember": [
            (
                "not a member",
                ALICE,
                pb.RemoveMemberRequest(conversation_id=g, user_id="eve"),
                (inv, "member_not_found"),
            ),
            (
                "plain member",
                BOB,
                pb.RemoveMemberRequest(conversation_id=g, user_id="carol"),
                (denied, "forbidden"),
            ),
            (
                "admin removes the owner",
                DAVE,
                pb.RemoveMemberRequest(conversation_id=g, user_id="alice"),
                (denied, "forbidden"),
            ),
            (
                "last owner",
                ADMIN,
                pb.RemoveMemberRequest(conversation_id=g, user_id="alice"),
                (failed, "last_owner"),
            ),
            (
                "unknown id",
                ALICE,
                pb.RemoveMemberRequest(conversation_id="nope", user_id="bob"),
                NF,
            ),
        ],
        "UpdateMemberRole": [
            (
                "no role",
                ALICE,
                pb.UpdateMemberRoleRequest(conversation_id=g, user_id="bob"),
                (inv, "invalid_role"),
            ),
            (
                "unknown role",
                ALICE,
                pb.UpdateMemberRoleRequest(conversation_id=g, user_id="bob", role=99),
                (inv, "invalid_role"),
            ),
            (
                "not a member",
                ALICE,
                pb.UpdateMemberRoleRequest(
                    conversation_id=g, user_id="eve", role=pb.MEMBER_ROLE_ADMIN
                ),
                (inv, "member_not_found"),
            ),
            (
                "admin",
                DAVE,
                pb.UpdateMemberRoleRequest(
                    conversation_id=g, user_id="bob", role=pb.MEMBER_ROLE_ADMIN
                ),
                (denied, "forbidden"),
            ),
            (
                "last owner steps down",
                ALICE,
                pb.UpdateMemberRoleRequest(
                    conversation_id=g, user_id="alice", role=pb.MEMBER_ROLE_ADMIN
                ),
                (failed, "last_owner"),
            ),
            (
                "direct",
                ALICE,
                pb.UpdateMemberRoleRequest(
                    conversation_id=s.direct, user_id="bob", role=pb.MEMBER_ROLE_ADMIN
                ),
                (denied, "not_editable"),
            ),
        ],
        "SendMessage": [
            (
                "empty text",
                BOB,
                pb.SendMessageRequest(conversation_id=g, client_msg_id="s1", text=""),
                (inv, "empty_message"),
            ),
            (
                "blank text",
                BOB,
                pb.SendMessageRequest(conversation_id=g, client_msg_id="s1", text=" \n\t"),
                (inv, "empty_message"),
            ),
            (
                "text too long",
                BOB,
                pb.SendMessageRequest(conversation_id=g, client_msg_id="s1", text="x" * 4001),
                (inv, "message_too_long"),
            ),
            (
                "no client_msg_id",
                BOB,
                pb.SendMessageRequest(conversation_id=g, text="hi"),
                (inv, "client_msg_id_required"),
            ),
            (
                "client_msg_id too long",
                BOB,
                pb.SendMessageRequest(conversation_id=g, client_msg_id="c" * 129, text="hi"),
                (inv, "client_msg_id_too_long"),
            ),
            (
                "bot kind from a user",
                BOB,
                pb.SendMessageRequest(
                    conversation_id=g, client_msg_id="s1", text="hi", kind=pb.MESSAGE_KIND_BOT
                ),
                (inv, "invalid_message_kind"),
            ),
            (
                "file kind without a file",
                BOB,
                pb.SendMessageRequest(
                    conversation_id=g, client_msg_id="s1", kind=pb.MESSAGE_KIND_FILE
                ),
                (inv, "file_required"),
            ),
            (
                "file with an ftp url",
                BOB,
                pb.SendMessageRequest(
                    conversation_id=g, client_msg_id="s1", kind=pb.MESSAGE_KIND_FILE, file=file
                ),
                (inv, "invalid_file"),
            ),
            (
                "text with a file",
                BOB,
                pb.SendMessageRequest(conversation_id=g, client_msg_id="s1", text="hi", file=file),
                (inv, "unexpected_file"),
            ),
            (
                "unknown thread root",
                BOB,
                pb.SendMessageRequest(
                    conversation_id=g, client_msg_id="s1", text="hi", thread_root_id="nope"
                ),
                (inv, "invalid_thread_root"),
            ),
            (
                "reply as thread root",
                BOB,
                pb.SendMessageRequest(
                    conversation_id=g, client_msg_id="s1", text="hi", thread_root_id=s.reply
                ),
                (inv, "invalid_thread_root"),
            ),
            (
                "tombstone as thread root",
                BOB,
                pb.SendMessageRequest(
                    conversation_id=g, client_msg_id="s1", text="hi", thread_root_id=s.tombstone
                ),
                (inv, "invalid_thread_root"),
            ),
            (
                "observer",
                CAROL,
                pb.SendMessageRequest(conversation_id=g, client_msg_id="s1", text="hi"),
                (denied, "observer_cannot_send"),
            ),
            (
                "archived",
                ALICE_AGENT,
                pb.SendMessageRequest(conversation_id=s.archived, client_msg_id="s1", text="hi"),
                (failed, "conversation_archived"),
            ),
            (
                "unknown id",
                BOB,
                pb.SendMessageRequest(conversation_id="nope", client_msg_id="s1", text="hi"),
                NF,
            ),
        ],
        "MarkRead": [
            (
                "negative seq",
                BOB,
                pb.MarkReadRequest(conversation_id=g, seq=-1),
                (inv, "invalid_seq"),
            ),
            (
                "not a member",
                ADMIN,
                pb.MarkReadRequest(conversation_id=g, seq=1),
                (denied, "not_a_member"),
            ),
            ("unknown id", BOB, pb.MarkReadRequest(conversation_id="nope", seq=1), NF),
        ],
        "EditMessage": [
            (
                "empty text",
                ALICE,
                pb.EditMessageRequest(conversation_id=g, message_id=s.message, text=" "),
                (inv, "empty_message"),
            ),
            (
                "text too long",
                ALICE,
                pb.EditMessageRequest(conversation_id=g, message_id=s.message, text="x" * 4001),
                (inv, "message_too_long"),
            ),
            (
                "unknown message",
                ALICE,
                pb.EditMessageRequest(conversation_id=g, message_id="nope", text="x"),
                (grpc.StatusCode.NOT_FOUND, "message_not_found"),
            ),
            (
                "someone else's",
                DAVE,
                pb.EditMessageRequest(conversation_id=g, message_id=s.message, text="x"),
                (denied, "not_the_author"),
            ),
            (
                "tombstone",
                BOB,
                pb.EditMessageRequest(conversation_id=g, message_id=s.tombstone, text="x"),
                (failed, "message_deleted"),
            ),
            (
                "unknown id",
                ALICE,
                pb.EditMessageRequest(conversation_id="nope", message_id=s.message, text="x"),
                NF,
            ),
        ],
        "DeleteMessage": [
            (
                "unknown message",
                ALICE,
                pb.DeleteMessageRequest(conversation_id=g, message_id="nope"),
                (grpc.StatusCode.NOT_FOUND, "message_not_found"),
            ),
            (
                "someone else's",
                BOB,
                pb.DeleteMessageRequest(conversation_id=g, message_id=s.message),
                (denied, "forbidden"),
            ),
            (
                "unknown id",
                ALICE,
                pb.DeleteMessageRequest(conversation_id="nope", message_id=s.message),
                NF,
            ),
        ],
        "ToggleReaction": [
            *(
                (
                    f"emoji {emoji!r}",
                    BOB,
                    pb.ToggleReactionRequest(conversation_id=g, message_id=s.message, emoji=emoji),
                    (inv, "invalid_emoji"),
                )
                for emoji in ("", "thumbs up", "x" * 65)
            ),
            (
                "unknown message",
                BOB,
                pb.ToggleReactionRequest(conversation_id=g, message_id="nope", emoji="👍"),
                (grpc.StatusCode.NOT_FOUND, "message_not_found"),
            ),
            (
                "tombstone",
                BOB,
                pb.ToggleReactionRequest(conversation_id=g, message_id=s.tombstone, emoji="👍"),
                (failed, "message_deleted"),
            ),
            (
                "observer",
                CAROL,
                pb.ToggleReactionRequest(conversation_id=g, message_id=s.message, emoji="👍"),
                (denied, "observer_cannot_send"),
            ),
            # Refused inside the transaction, after the event seq moved.
            (
                "one reaction too many",
                ALICE,
                pb.ToggleReactionRequest(conversation_id=g, message_id=s.crowded, emoji="🆕"),
                (failed, "too_many_reactions"),
            ),
            (
                "unknown id",
                BOB,
                pb.ToggleReactionRequest(conversation_id="nope", message_id=s.message, emoji="👍"),
                NF,
            ),
        ],
    }


WRITE_RPCS = sorted(m.name for m in SERVICE.methods if m.name not in READ_RPCS)


def test_every_write_rpc_has_invalid_requests() -> None:
    names = {m.name for m in SERVICE.methods}
    assert names >= READ_RPCS
    scene = Scene(*["x"] * 7)
    assert set(invalid(scene)) == set(WRITE_RPCS)


@pytest.mark.asyncio
@pytest.mark.parametrize("rpc", WRITE_RPCS)
async def test_invalid_write_changes_nothing(
    rpc: str,
    db: Database,
    scene: Scene,
    stub: pb_grpc.ConversationServiceStub,  # noqa: F811
) -> None:
    call = getattr(stub, rpc)
    for what, caller, request, (status, code) in invalid(scene)[rpc]:
        before = await snapshot(db)
        with As(caller), pytest.raises(grpc.aio.AioRpcError) as info:
            await call(request, timeout=10)
        assert (info.value.code(), trailing_code(info.value)) == (status, code), what
        assert await snapshot(db) == before, what
