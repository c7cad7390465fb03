"""After a delete or an edit, no RPC returns what the message used to say.

Walks every RPC whose response can carry message content (found from the
service's descriptors, so a new one fails the walk until it is added), over
a real gRPC connection, and also reads the stored event log and search
entries: the old words are in none of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
import pytest_asyncio
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import conversation_pb2_grpc as pb_grpc
from confab_core.grpcx.client import channel
from confab_core.grpcx.server import GrpcServer
from confab_core.identity import Caller, reset_caller, set_caller
from confab_core.servicetoken import CONVERSATION
from conversation.handlers.conversations import ConversationHandler
from conversation.handlers.messages import MessageHandler
from conversation.servicer import ConversationServicer
from conversation.storage.db import Database

from .conftest import ALICE, BOB
from .test_servicer import AUTH, GATEWAY_AUTH

OLD = "zebrafish"
NEW = "okapi"
Stub = pb_grpc.ConversationServiceStub


@pytest_asyncio.fixture
async def stub(conversations: ConversationHandler, messages: MessageHandler) -> AsyncIterator[Stub]:
    server = GrpcServer(0, AUTH, host="127.0.0.1")
    servicer = ConversationServicer(conversations, messages)
    server.add(
        lambda s: pb_grpc.add_ConversationServiceServicer_to_server(servicer, s),
        pb.DESCRIPTOR.services_by_name["ConversationService"].full_name,
    )
    port = await server.start()
    ch = channel(f"127.0.0.1:{port}", GATEWAY_AUTH, CONVERSATION)
    try:
        yield Stub(ch)
    finally:
        await ch.close()
        await server.stop(0)


async def as_(caller: Caller, call: Callable[[], Awaitable[Message]]) -> Message:
    # The client interceptor reads the caller when the call starts.
    token = set_caller(caller)
    try:
        return await call()
    finally:
        reset_caller(token)


def _carries_content(desc: Descriptor, seen: frozenset[str] = frozenset()) -> bool:
    """A message type that holds a Message, or raw event payloads, at any depth."""
    if desc.full_name == pb.Message.DESCRIPTOR.full_name:
        return True
    if desc.full_name == pb.ListEventsResponse.DESCRIPTOR.full_name:
        return True
    return any(
        f.message_type is not None
        and f.message_type.full_name not in seen
        and _carries_content(f.message_type, seen | {desc.full_name})
        for f in desc.fields
    )


CONTENT_RPCS = {
    m.name
    for m in pb.DESCRIPTOR.services_by_name["ConversationService"].methods
    if _carries_content(m.output_type)
}

Walk = Callable[[Stub], Awaitable[dict[str, list[bytes]]]]


def test_the_walk_knows_every_rpc_that_returns_message_content() -> None:
    # The walk below calls each of these; a new one must join it.
    assert {
        "SendMessage",
        "ListMessages",
        "EditMessage",
        "DeleteMessage",
        "ToggleReaction",
        "ListThread",
        "SearchMessages",
        "ListEvents",
    } == CONTENT_RPCS


async def _setup(stub: Stub) -> tuple[str, pb.Message, pb.Message]:
    created = await as_(
        ALICE,
        lambda: stub.CreateConversation(
            pb.CreateConversationRequest(kind=pb.CONVERSATION_KIND_GROUP, member_ids=["bob"])
        ),
    )
    assert isinstance(created, pb.CreateConversationResponse)
    conv = created.conversation.id
    root = await as_(
        ALICE,
        lambda: stub.SendMessage(
            pb.SendMessageRequest(conversation_id=conv, client_msg_id="r", text=f"the {OLD} plan")
        ),
    )
    reply = await as_(
        ALICE,
        lambda: stub.SendMessage(
            pb.SendMessageRequest(
                conversation_id=conv,
                client_msg_id="t",
                text=f"more {OLD} details",
                thread_root_id=root.message.id,  # type: ignore[attr-defined]
            )
        ),
    )
    await as_(
        BOB,
        lambda: stub.ToggleReaction(
            pb.ToggleReactionRequest(
                conversation_id=conv,
                message_id=root.message.id,  # type: ignore[attr-defined]
                emoji="eyes",
            )
        ),
    )
    return conv, root.message, reply.message  # type: ignore[attr-defined]


async def _walk(stub: Stub, conv: str, root: pb.Message, changed: str) -> list[bytes]:
    """Every content-returning RPC (but the edit or delete itself), as Bob and Alice."""
    out: list[bytes] = []
    calls: dict[str, int] = dict.fromkeys(CONTENT_RPCS, 0)

    async def rpc(name: str, caller: Caller, call: Callable[[], Awaitable[Message]]) -> None:
        try:
            response = await as_(caller, call)
        except grpc.aio.AioRpcError as err:
            # A refusal returns no content (a reaction on a deleted message).
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err
            out.append((err.details() or "").encode())
        else:
            out.append(response.SerializeToString())
        calls[name] += 1

    for who in (ALICE, BOB):
        await rpc(
            "ListMessages",
            who,
            lambda: stub.ListMessages(pb.ListMessagesRequest(conversation_id=conv)),
        )
        await rpc(
            "ListMessages",
            who,
            lambda: stub.ListMessages(pb.ListMessagesRequest(conversation_id=conv, before_seq=100)),
        )
        await rpc(
            "ListThread",
            who,
            lambda: stub.ListThread(
                pb.ListThreadRequest(conversation_id=conv, root_message_id=root.id)
            ),
        )
        for scope in ("", conv):
            await rpc(
                "SearchMessages",
                who,
                lambda: stub.SearchMessages(
                    pb.SearchMessagesRequest(query=OLD, conversation_id=scope)  # noqa: B023 - awaited at once
                ),
            )
        await rpc(
            "ListEvents", who, lambda: stub.ListEvents(pb.ListEventsRequest(conversation_id=conv))
        )
    # A retried send answers with the stored message: as it is now.
    for client_msg_id in ("r", "t"):
        await rpc(
            "SendMessage",
            ALICE,
            lambda: stub.SendMessage(
                pb.SendMessageRequest(
                    conversation_id=conv,
                    client_msg_id=client_msg_id,  # noqa: B023 - awaited at once
                    text="retry",
                )
            ),
        )
    await rpc(
        "ToggleReaction",
        BOB,
        lambda: stub.ToggleReaction(
            pb.ToggleReactionRequest(conversation_id=conv, message_id=root.id, emoji="ok")
        ),
    )
    if changed == "DeleteMessage":
        await rpc(
            "EditMessage",
            ALICE,
            lambda: stub.EditMessage(
                pb.EditMessageRequest(conversation_id=conv, message_id=root.id, text="again")
            ),
        )
    else:
        # Deleting answers with the tombstone: the delete test reads that answer.
        calls["DeleteMessage"] += 1
    calls[changed] += 1
    assert all(calls.values()), calls
    return out


async def _stored(db: Database) -> list[bytes]:
    """The raw event log and search entries: what a database read would find."""
    out = [bytes(d["payload"]) async for d in db.db["outbox"].find({})]
    out += [str(d).encode() async for d in db.db["message_search"].find({})]
    out += [str(d).encode() async for d in db.db["messages"].find({})]
    return out


@pytest.mark.asyncio
async def test_nothing_returns_the_text_of_a_deleted_message(stub: Stub, db: Database) -> None:
    conv, root, reply = await _setup(stub)
    answers = []
    for message in (reply, root):
        deleted = await as_(
            ALICE,
            lambda: stub.DeleteMessage(
                pb.DeleteMessageRequest(conversation_id=conv, message_id=message.id)  # noqa: B023 - awaited at once
            ),
        )
        answers.append(deleted.SerializeToString())
    seen = answers + await _walk(stub, conv, root, "DeleteMessage") + await _stored(db)
    assert not [b for b in seen if OLD.encode() in b]


@pytest.mark.asyncio
async def test_nothing_returns_the_text_a_message_had_before_its_edit(
    stub: Stub, db: Database
) -> None:
    conv, root, reply = await _setup(stub)
    answers = []
    for message in (reply, root):
        edited = await as_(
            ALICE,
            lambda: stub.EditMessage(
                pb.EditMessageRequest(conversation_id=conv, message_id=message.id, text=NEW)  # noqa: B023
            ),
        )
        assert edited.message.text == NEW  # type: ignore[attr-defined]
        answers.append(edited.SerializeToString())
    seen = answers + await _walk(stub, conv, root, "EditMessage") + await _stored(db)
    assert not [b for b in seen if OLD.encode() in b]
    # The replay shows the current text where it used to show the old one.
    events = await as_(BOB, lambda: stub.ListEvents(pb.ListEventsRequest(conversation_id=conv)))
    assert sum(NEW.encode() in e for e in events.events) >= 4  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_events_stored_before_message_ids_are_rewritten_too(stub: Stub, db: Database) -> None:
    conv, root, reply = await _setup(stub)
    # The log as an older version wrote it: no record names its message.
    await db.db["outbox"].update_many({}, {"$unset": {"message_id": ""}})
    await db.db["outbox"].drop_index("tenant_id_1_conversation_id_1_message_id_1")
    await db.ensure_indexes()
    for message in (reply, root):
        await as_(
            ALICE,
            lambda: stub.DeleteMessage(
                pb.DeleteMessageRequest(conversation_id=conv, message_id=message.id)  # noqa: B023
            ),
        )
    assert not [b for b in await _stored(db) if OLD.encode() in b]
