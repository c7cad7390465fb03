"""The gateway and the services enforce the same input limits (confab_core.limits).

For every limit: the gateway's schema accepts the limit and refuses limit+1 (a
refused body or query is a 4xx before any service is called), and the service
itself, called on its public gRPC API with the gateway bypassed, refuses limit+1
too. A limit changed on one side only fails here.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from pydantic import BaseModel, ValidationError

import conversation.app as conversation_app
from confab.conversation.v1 import conversation_pb2 as pb
from confab.conversation.v1 import conversation_pb2_grpc as pb_grpc
from confab_core import limits
from confab_core.clock import SystemClock
from confab_core.errors import InvalidArgument
from confab_core.grpcx.client import channel
from confab_core.identity import Caller, reset_caller, set_caller
from confab_core.ids import new_id
from confab_core.servicetoken import CONVERSATION, GATEWAY, InternalAuth
from confab_devservers import KafkaServer, MongoServer, dev_key_file
from conversation.settings import ConversationSettings
from gateway import governance_schemas, schemas
from gateway.app import build_api
from presence.handlers.validate import custom_status_text, require_id

KEY = b"limits-agree-tests-internal-key-32b"
ALICE = Caller(tenant_id="t-limits", user_id="alice", roles=frozenset({"member"}))

# (limit, gateway model, a valid body, the field the limit applies to)
STRING_FIELDS: list[tuple[int, type[BaseModel], dict[str, Any], str]] = [
    (limits.MAX_TEXT_CHARS, schemas.SendMessageIn, {"text": "x"}, "text"),
    (limits.MAX_TEXT_CHARS, schemas.EditMessageIn, {"text": "x"}, "text"),
    (limits.MAX_CLIENT_MSG_ID_CHARS, schemas.SendMessageIn, {"text": "x"}, "client_msg_id"),
    (limits.MAX_ID_CHARS, schemas.SendMessageIn, {"text": "x"}, "thread_root_id"),
    (limits.MAX_TITLE_CHARS, schemas.CreateConversationIn, {"kind": "group"}, "title"),
    (limits.MAX_DESCRIPTION_CHARS, schemas.CreateConversationIn, {"kind": "group"}, "description"),
    (limits.MAX_TITLE_CHARS, schemas.UpdateConversationIn, {}, "title"),
    (limits.MAX_DESCRIPTION_CHARS, schemas.UpdateConversationIn, {}, "description"),
    (limits.MAX_TOPIC_CHARS, schemas.UpdateConversationIn, {}, "topic"),
    (limits.MAX_EMOJI_CHARS, schemas.ToggleReactionIn, {}, "emoji"),
    (limits.MAX_CUSTOM_STATUS_CHARS, schemas.SetPresenceIn, {}, "custom_status"),
    (limits.MAX_REASON_CHARS, governance_schemas.ReportIn, {}, "reason"),
    (limits.MAX_REASON_CHARS, governance_schemas.SanctionIn, {"user_id": "u"}, "reason"),
    (limits.MAX_ID_CHARS, governance_schemas.SanctionIn, {}, "user_id"),
]

# (limit, gateway model, a valid body, the list field)
LIST_FIELDS: list[tuple[int, type[BaseModel], dict[str, Any], str]] = [
    (limits.MAX_MEMBERS_AT_CREATE, schemas.CreateConversationIn, {"kind": "group"}, "member_ids"),
    (limits.MAX_USER_IDS, schemas.AddMembersIn, {}, "user_ids"),
]

# (REST path, method, query or path parameter, its maxLength or maximum)
QUERY_PARAMS: list[tuple[str, str, str, int]] = [
    ("/api/v1/search/messages", "get", "q", limits.MAX_QUERY_CHARS),
    ("/api/v1/channels", "get", "query", limits.MAX_QUERY_CHARS),
    ("/api/v1/conversations/{conversation_id}/messages", "get", "limit", limits.MAX_PAGE),
    ("/api/v1/search/messages", "get", "limit", limits.MAX_PAGE),
    ("/api/v1/notifications", "get", "limit", limits.MAX_PAGE),
    ("/api/v1/conversations/{conversation_id}", "get", "conversation_id", limits.MAX_ID_CHARS),
    (
        "/api/v1/conversations/{conversation_id}/members/{user_id}",
        "delete",
        "user_id",
        limits.MAX_ID_CHARS,
    ),
]


@pytest.mark.parametrize(("limit", "model", "body", "name"), STRING_FIELDS)
def test_gateway_schema_takes_the_limit_and_refuses_one_more(
    limit: int, model: type[BaseModel], body: dict[str, Any], name: str
) -> None:
    model.model_validate({**body, name: "x" * limit})
    with pytest.raises(ValidationError):
        model.model_validate({**body, name: "x" * (limit + 1)})


@pytest.mark.parametrize(("limit", "model", "body", "name"), LIST_FIELDS)
def test_gateway_schema_takes_the_list_limit_and_refuses_one_more(
    limit: int, model: type[BaseModel], body: dict[str, Any], name: str
) -> None:
    model.model_validate({**body, name: [f"u{i}" for i in range(limit)]})
    with pytest.raises(ValidationError):
        model.model_validate({**body, name: [f"u{i}" for i in range(limit + 1)]})
    with pytest.raises(ValidationError):
        model.model_validate({**body, name: ["x" * (limits.MAX_ID_CHARS + 1)]})


@pytest.mark.parametrize(("path", "method", "param", "limit"), QUERY_PARAMS)
def test_gateway_query_parameters_use_the_shared_limits(
    path: str, method: str, param: str, limit: int
) -> None:
    spec = build_api().openapi()
    [schema] = [
        p["schema"] for p in spec["paths"][path][method]["parameters"] if p["name"] == param
    ]
    assert schema.get("maxLength", schema.get("maximum")) == limit


def test_presence_validators_take_the_limit_and_refuse_one_more() -> None:
    require_id("user_id", "x" * limits.MAX_ID_CHARS)
    with pytest.raises(InvalidArgument):
        require_id("user_id", "x" * (limits.MAX_ID_CHARS + 1))
    assert custom_status_text("x" * limits.MAX_CUSTOM_STATUS_CHARS)
    with pytest.raises(InvalidArgument):
        custom_status_text("x" * (limits.MAX_CUSTOM_STATUS_CHARS + 1))


@contextlib.contextmanager
def acting_as(caller: Caller) -> Iterator[None]:
    token = set_caller(caller)
    try:
        yield
    finally:
        reset_caller(token)


@dataclass
class Conversation:
    stub: pb_grpc.ConversationServiceStub

    async def call(self, rpc: Callable[..., Awaitable[Any]], request: Any) -> Any:
        with acting_as(ALICE):
            return await rpc(request)

    async def refuses(self, rpc: Callable[..., Awaitable[Any]], request: Any) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await self.call(rpc, request)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    workdir = tmp_path_factory.mktemp("limits")
    mongo, kafka = MongoServer(workdir / "mongo"), KafkaServer(workdir / "kafka")
    mongo.start()
    try:
        kafka.start()
        try:
            yield mongo.url, kafka.bootstrap_servers
        finally:
            kafka.stop()
    finally:
        mongo.stop()


@pytest_asyncio.fixture
async def conv(servers: tuple[str, str], tmp_path: Path) -> AsyncIterator[Conversation]:
    settings = ConversationSettings(
        mongo_url=servers[0],
        kafka_bootstrap_servers=servers[1],
        grpc_port=0,
        mongo_database=f"limits_{new_id()}",
        internal_key=KEY.decode(),  # type: ignore[arg-type]
        key_file=dev_key_file(tmp_path / "kek"),
        # No virus scanner here: new files would stay pending.
        clamd_required=False,
    )
    async with conversation_app.running(settings) as port:
        ch = channel(f"127.0.0.1:{port}", InternalAuth(GATEWAY, KEY, SystemClock()), CONVERSATION)
        try:
            yield Conversation(pb_grpc.ConversationServiceStub(ch))
        finally:
            await ch.close()


@pytest.mark.asyncio
async def test_conversation_service_takes_each_limit_and_refuses_one_more(
    conv: Conversation,
) -> None:
    s = conv.stub

    def text(n: int) -> str:
        return "x" * n

    # Conversation fields.
    group = pb.CONVERSATION_KIND_GROUP
    created = await conv.call(
        s.CreateConversation,
        pb.CreateConversationRequest(
            kind=group,
            title=text(limits.MAX_TITLE_CHARS),
            description=text(limits.MAX_DESCRIPTION_CHARS),
            member_ids=["x" * limits.MAX_ID_CHARS],
        ),
    )
    cid = created.conversation.id
    for request in (
        pb.CreateConversationRequest(kind=group, title=text(limits.MAX_TITLE_CHARS + 1)),
        pb.CreateConversationRequest(
            kind=group, description=text(limits.MAX_DESCRIPTION_CHARS + 1)
        ),
        pb.CreateConversationRequest(kind=group, member_ids=["x" * (limits.MAX_ID_CHARS + 1)]),
        pb.CreateConversationRequest(
            kind=group, member_ids=[f"u{i}" for i in range(limits.MAX_MEMBERS_AT_CREATE + 1)]
        ),
    ):
        await conv.refuses(s.CreateConversation, request)
    await conv.call(
        s.UpdateConversation,
        pb.UpdateConversationRequest(conversation_id=cid, topic=text(limits.MAX_TOPIC_CHARS)),
    )
    await conv.refuses(
        s.UpdateConversation,
        pb.UpdateConversationRequest(conversation_id=cid, topic=text(limits.MAX_TOPIC_CHARS + 1)),
    )
    await conv.refuses(
        s.AddMembers,
        pb.AddMembersRequest(conversation_id=cid, user_ids=["x" * (limits.MAX_ID_CHARS + 1)]),
    )
    await conv.refuses(
        s.AddMembers,
        pb.AddMembersRequest(
            conversation_id=cid, user_ids=[f"u{i}" for i in range(limits.MAX_USER_IDS + 1)]
        ),
    )

    # Message fields.
    sent = await conv.call(
        s.SendMessage,
        pb.SendMessageRequest(
            conversation_id=cid,
            client_msg_id="c" * limits.MAX_CLIENT_MSG_ID_CHARS,
            text=text(limits.MAX_TEXT_CHARS),
        ),
    )
    mid = sent.message.id
    await conv.refuses(
        s.SendMessage,
        pb.SendMessageRequest(
            conversation_id=cid, client_msg_id=new_id(), text=text(limits.MAX_TEXT_CHARS + 1)
        ),
    )
    await conv.refuses(
        s.SendMessage,
        pb.SendMessageRequest(
            conversation_id=cid,
            client_msg_id="c" * (limits.MAX_CLIENT_MSG_ID_CHARS + 1),
            text="hi",
        ),
    )
    await conv.call(
        s.EditMessage,
        pb.EditMessageRequest(
            conversation_id=cid, message_id=mid, text=text(limits.MAX_TEXT_CHARS)
        ),
    )
    await conv.refuses(
        s.EditMessage,
        pb.EditMessageRequest(
            conversation_id=cid, message_id=mid, text=text(limits.MAX_TEXT_CHARS + 1)
        ),
    )
    await conv.call(
        s.ToggleReaction,
        pb.ToggleReactionRequest(
            conversation_id=cid, message_id=mid, emoji=text(limits.MAX_EMOJI_CHARS)
        ),
    )
    await conv.refuses(
        s.ToggleReaction,
        pb.ToggleReactionRequest(
            conversation_id=cid, message_id=mid, emoji=text(limits.MAX_EMOJI_CHARS + 1)
        ),
    )

    # Queries and pages.
    words = ("ab " * limits.MAX_QUERY_CHARS)[: limits.MAX_QUERY_CHARS]
    await conv.call(s.SearchMessages, pb.SearchMessagesRequest(query=words))
    await conv.refuses(s.SearchMessages, pb.SearchMessagesRequest(query=words + "x"))
    await conv.call(s.BrowseChannels, pb.BrowseChannelsRequest(query=words))
    await conv.refuses(s.BrowseChannels, pb.BrowseChannelsRequest(query=words + "x"))
    await conv.call(
        s.ListMessages, pb.ListMessagesRequest(conversation_id=cid, limit=limits.MAX_PAGE)
    )
    await conv.refuses(
        s.ListMessages, pb.ListMessagesRequest(conversation_id=cid, limit=limits.MAX_PAGE + 1)
    )
