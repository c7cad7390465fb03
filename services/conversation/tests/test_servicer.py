"""The gRPC servicer over a real loopback connection, with the production interceptors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
import pytest_asyncio

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import conversation_pb2_grpc as pb_grpc
from confab_core.clock import SystemClock
from confab_core.errors import ERROR_CODE_METADATA_KEY, NotFound
from confab_core.grpcx.client import channel, translate
from confab_core.grpcx.server import GrpcServer
from confab_core.identity import Caller, reset_caller, set_caller
from confab_core.servicetoken import CONVERSATION, GATEWAY, InternalAuth
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.messages import MessageHandler
from conversation.servicer import ConversationServicer

from .conftest import ALICE, BOB, MALLORY

KEY = b"conversation-tests-internal-key-32b"
AUTH = InternalAuth(CONVERSATION, KEY, SystemClock())
GATEWAY_AUTH = InternalAuth(GATEWAY, KEY, SystemClock())


@pytest_asyncio.fixture
async def stub(
    conversations: ConversationHandler, messages: MessageHandler
) -> AsyncIterator[pb_grpc.ConversationServiceStub]:
    server = GrpcServer(0, AUTH, host="127.0.0.1")
    servicer = ConversationServicer(conversations, messages)
    server.add(
        lambda s: pb_grpc.add_ConversationServiceServicer_to_server(servicer, s),
        pb.DESCRIPTOR.services_by_name["ConversationService"].full_name,
    )
    port = await server.start()
    ch = channel(f"127.0.0.1:{port}", GATEWAY_AUTH, CONVERSATION)
    try:
        yield pb_grpc.ConversationServiceStub(ch)
    finally:
        await ch.close()
        await server.stop(0)


class As:
    """Sets the caller the client interceptor sends, for the duration of a block."""

    def __init__(self, caller: Caller) -> None:
        self._caller = caller

    def __enter__(self) -> None:
        self._token = set_caller(self._caller)

    def __exit__(self, *exc: object) -> None:
        reset_caller(self._token)


def trailing_code(err: grpc.aio.AioRpcError) -> str | None:
    return next(
        (str(v) for k, v in err.trailing_metadata() or () if k == ERROR_CODE_METADATA_KEY), None
    )


@pytest.fixture
def no_caller() -> Iterator[None]:
    token = set_caller(None)
    yield
    reset_caller(token)


@pytest.mark.asyncio
async def test_create_send_list_round_trip(stub: pb_grpc.ConversationServiceStub) -> None:
    with As(ALICE):
        created = await stub.CreateConversation(
            pb.CreateConversationRequest(
                kind=pb.CONVERSATION_KIND_GROUP,
                title="Team",
                member_ids=["bob"],
                context=pb.ContextLink(kind="ticket", id="T-9"),
            ),
            timeout=10,
        )
        conv = created.conversation
        assert created.created
        assert (conv.kind, conv.title, conv.member_count) == (pb.CONVERSATION_KIND_GROUP, "Team", 2)
        assert (conv.context.kind, conv.context.id) == ("ticket", "T-9")
        assert conv.my_role == pb.MEMBER_ROLE_OWNER
        assert conv.created_by == "alice"

        sent = await stub.SendMessage(
            pb.SendMessageRequest(conversation_id=conv.id, client_msg_id="c1", text="hello"),
            timeout=10,
        )
        assert sent.created
        assert (sent.message.seq, sent.message.text, sent.message.sender_id) == (
            1,
            "hello",
            "alice",
        )
        assert sent.message.kind == pb.MESSAGE_KIND_TEXT
        again = await stub.SendMessage(
            pb.SendMessageRequest(conversation_id=conv.id, client_msg_id="c1", text="hello"),
            timeout=10,
        )
        assert not again.created and again.message.id == sent.message.id

    with As(BOB):
        listed = await stub.ListMessages(
            pb.ListMessagesRequest(conversation_id=conv.id, limit=10), timeout=10
        )
        assert [m.text for m in listed.messages] == ["hello"]
        assert listed.messages[0].sender_name == "Alice"
        assert not listed.has_more
        got = await stub.GetConversation(
            pb.GetConversationRequest(conversation_id=conv.id), timeout=10
        )
        assert (got.conversation.unread_count, got.conversation.my_role) == (
            1,
            pb.MEMBER_ROLE_MEMBER,
        )
        read = await stub.MarkRead(pb.MarkReadRequest(conversation_id=conv.id, seq=1), timeout=10)
        assert (read.last_read_seq, read.unread_count) == (1, 0)
        mine = await stub.ListConversations(pb.ListConversationsRequest(), timeout=10)
        assert [c.id for c in mine.conversations] == [conv.id]
        assert mine.conversations[0].last_read_seq == 1
        members = await stub.ListMembers(pb.ListMembersRequest(conversation_id=conv.id), timeout=10)
        assert {m.user_id: m.display_name for m in members.members} == {
            "alice": "Alice",
            "bob": "Bob",
        }


@pytest.mark.asyncio
async def test_other_tenant_gets_not_found_with_trailing_code(
    stub: pb_grpc.ConversationServiceStub,
) -> None:
    with As(ALICE):
        conv = (
            await stub.CreateConversation(
                pb.CreateConversationRequest(kind=pb.CONVERSATION_KIND_GROUP), timeout=10
            )
        ).conversation
    with As(MALLORY), pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetConversation(pb.GetConversationRequest(conversation_id=conv.id), timeout=10)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert trailing_code(info.value) == "conversation_not_found"
    err = translate(info.value)
    assert isinstance(err, NotFound) and err.code == "conversation_not_found"
    with As(MALLORY):
        assert (
            list((await stub.ListConversations(pb.ListConversationsRequest())).conversations) == []
        )


@pytest.mark.asyncio
async def test_invalid_argument_carries_its_code(stub: pb_grpc.ConversationServiceStub) -> None:
    with As(ALICE), pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ListMessages(pb.ListMessagesRequest(conversation_id="x", limit=101), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert trailing_code(info.value) == "invalid_limit"


@pytest.mark.asyncio
async def test_a_call_without_caller_is_unauthenticated(
    stub: pb_grpc.ConversationServiceStub, no_caller: None
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ListConversations(pb.ListConversationsRequest(), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert trailing_code(info.value) == "no_caller"
