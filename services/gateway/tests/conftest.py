"""Stand-ins for the gateway's unit tests: no network, no fleet.

- ``RoomServer`` stands in for ``socketio.AsyncServer``: it keeps rooms the way
  the real manager does and records every emit, so fan-out and socket handlers
  are tested as pure logic.
- ``FakeConversation`` stands in for the conversation service's gRPC stub: it
  records each request and answers with a canned response (or an RPC error).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import grpc
import httpx
import pytest
import pytest_asyncio
from aiokafka.structs import ConsumerRecord
from fastapi import FastAPI
from google.protobuf.message import Message as PbMessage

from confab.conversation.v1 import conversation_pb2 as cpb
from confab.conversation.v1 import events_pb2
from confab_core.auth import JwtVerifier, mint_hs256
from confab_core.crypto import DataKey, TenantKeys
from confab_core.errors import ERROR_CODE_METADATA_KEY
from confab_core.identity import Caller
from confab_core.kafka import CONVERSATION_EVENTS_TOPIC
from confab_core.sealed_events import EventOpener, event_headers, seal_event
from gateway.app import build_api
from gateway.clients.conversation import ConversationClient
from gateway.clients.ops import ChatOps
from gateway.context import GatewayContext
from gateway.ratelimit import Action

SECRET = "unit-test-secret-that-is-long-enough-for-hs256"


class _Manager:
    def __init__(self, server: RoomServer) -> None:
        self._server = server

    def get_participants(self, namespace: str, room: str) -> Iterator[tuple[str, str]]:
        for sid in sorted(self._server.rooms.get(room, set())):
            yield sid, f"eio-{sid}"


class RoomServer:
    """Records emits and room changes like socketio.AsyncServer would make them."""

    def __init__(self) -> None:
        self.emits: list[tuple[str, Any, str]] = []
        # The sockets each emit reached: the room's members at that moment.
        self.audiences: list[set[str]] = []
        self.rooms: dict[str, set[str]] = {}
        self.handlers: dict[str, Callable[..., Awaitable[Any]]] = {}
        self.closed: list[str] = []
        self.disconnected: list[str] = []
        self.manager = _Manager(self)

    def on(self, event: str, handler: Callable[..., Awaitable[Any]]) -> None:
        self.handlers[event] = handler

    async def emit(
        self, event: str, data: Any = None, room: Any = "", to: Any = None, **_: Any
    ) -> None:
        room = to if to is not None else room
        self.emits.append((event, data, room))
        # Like python-socketio: a list of rooms reaches each socket once.
        targets = room if isinstance(room, list) else [room]
        self.audiences.append(set().union(*(self.rooms.get(r, set()) for r in targets)))

    async def enter_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        self.rooms.setdefault(room, set()).add(sid)

    async def leave_room(self, sid: str, room: str, namespace: str | None = None) -> None:
        self.rooms.get(room, set()).discard(sid)

    async def disconnect(self, sid: str, namespace: str | None = None) -> None:
        self.disconnected.append(sid)
        for members in self.rooms.values():
            members.discard(sid)
        handler = self.handlers.get("disconnect")
        if handler is not None:
            await handler(sid, "server disconnect")

    def get_environ(self, sid: str, namespace: str | None = None) -> dict[str, Any] | None:
        return {"asgi.scope": {"client": ("192.0.2.1", 4000)}}

    def rooms_of(self, sid: str) -> set[str]:
        return {room for room, members in self.rooms.items() if sid in members}

    async def close_room(self, room: str, namespace: str | None = None) -> None:
        self.closed.append(room)
        self.rooms.pop(room, None)

    def members(self, room: str) -> set[str]:
        return set(self.rooms.get(room, set()))

    def reached(self, event: str) -> list[set[str]]:
        return [a for (e, _, _), a in zip(self.emits, self.audiences, strict=True) if e == event]

    def emitted(self, event: str) -> list[tuple[Any, str]]:
        return [(d, r) for e, d, r in self.emits if e == event]


class RpcError(grpc.aio.AioRpcError):
    def __init__(self, status: grpc.StatusCode, details: str, code: str | None = None) -> None:
        trailing = grpc.aio.Metadata(*([(ERROR_CODE_METADATA_KEY, code)] if code else []))
        super().__init__(status, grpc.aio.Metadata(), trailing, details)


@dataclass
class FakeConversation:
    """Every attribute is an RPC: records (name, request) and answers from
    ``responses`` (a message, or an exception to raise), else an empty response."""

    calls: list[tuple[str, PbMessage]] = field(default_factory=list)
    responses: dict[str, PbMessage | Exception | list[PbMessage]] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Callable[..., Awaitable[PbMessage]]:
        if name.startswith("_") or not name[:1].isupper():
            raise AttributeError(name)

        async def rpc(request: PbMessage, **_: Any) -> PbMessage:
            self.calls.append((name, request))
            canned = self.responses.get(name)
            if isinstance(canned, list):
                canned = canned.pop(0)
            if isinstance(canned, Exception):
                raise canned
            if canned is not None:
                return canned
            return cast(PbMessage, getattr(cpb, f"{name}Response")())

        return rpc

    def last(self, name: str) -> Any:
        found = [req for n, req in self.calls if n == name]
        assert found, f"{name} was not called; calls: {[n for n, _ in self.calls]}"
        return found[-1]


class NoLimit:
    def __init__(self) -> None:
        self.checked: list[Action] = []

    async def check(self, caller: Caller, action: Action) -> None:
        self.checked.append(action)


@dataclass
class FakeBackends:
    conversation: ConversationClient


def fake_backends(conv: FakeConversation) -> FakeBackends:
    return FakeBackends(ConversationClient(cast(Any, conv), 5.0))


def make_ops(conv: FakeConversation) -> ChatOps:
    return ChatOps(fake_backends(conv), NoLimit())  # type: ignore[arg-type]


@functools.cache
def shared_api() -> FastAPI:
    """The REST API, built once per test process.

    Building its routes costs about half a second; tests only differ in the
    context they set on ``api.state.gateway``, and run one at a time.
    """
    return build_api()


def token(tenant: str = "t1", user: str = "u1", roles: list[str] | None = None) -> str:
    return mint_hs256(SECRET, tenant_id=tenant, user_id=user, roles=roles)


@pytest.fixture
def conv_stub() -> FakeConversation:
    return FakeConversation()


@pytest_asyncio.fixture
async def client(conv_stub: FakeConversation) -> AsyncIterator[httpx.AsyncClient]:
    """The REST API over ASGI, its conversation service faked."""
    api = shared_api()
    api.state.gateway = GatewayContext(
        settings=cast(Any, None),
        verifier=JwtVerifier(hs256_secret=SECRET),
        backends=cast(Any, fake_backends(conv_stub)),
        ops=make_ops(conv_stub),
    )
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://gateway/api/v1",
        headers={"Authorization": f"Bearer {token()}"},
    ) as http:
        yield http


class Keyring:
    """A KeySource over keys made on first use per tenant (pure lookup), for sealing
    test events the way the conversation service does and opening them in fan-out."""

    def __init__(self) -> None:
        self._keys: dict[str, TenantKeys] = {}

    async def keys(self, tenant_id: str) -> TenantKeys:
        return self.sync_keys(tenant_id)

    def sync_keys(self, tenant_id: str) -> TenantKeys:
        if tenant_id not in self._keys:
            key = DataKey.generate(f"{tenant_id}-k1")
            self._keys[tenant_id] = TenantKeys(tenant_id, key, {key.key_id: key}, b"s" * 32)
        return self._keys[tenant_id]


KEYRING = Keyring()


def opener() -> EventOpener:
    return EventOpener(KEYRING, "gateway-test")


def record(event: events_pb2.ConversationEvent, offset: int = 0) -> ConsumerRecord[bytes, bytes]:
    """The record the relay publishes for ``event``: sealed, tenant and event id in headers."""
    keys = KEYRING.sync_keys(event.tenant_id)
    return ConsumerRecord(
        topic=CONVERSATION_EVENTS_TOPIC,
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=event.conversation_id.encode(),
        value=seal_event(keys.current, event.tenant_id, event.event_id, event.SerializeToString()),
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=0,
        headers=event_headers(event.tenant_id, event.event_id),
    )


def sample_message(**fields: Any) -> cpb.Message:
    msg = cpb.Message(
        id="m1",
        conversation_id="c1",
        seq=1,
        sender_id="u1",
        sender_name="U1",
        kind=cpb.MESSAGE_KIND_TEXT,
        text="hello",
        client_msg_id="cm1",
    )
    msg.created_at.FromSeconds(1_700_000_000)
    for key, value in fields.items():
        if key in ("edited_at", "last_reply_at"):
            getattr(msg, key).FromSeconds(value)
        elif key in ("reactions", "mentions"):
            getattr(msg, key).extend(value)
        elif key == "file":
            msg.file.CopyFrom(value)
        else:
            setattr(msg, key, value)
    return msg


def sample_conversation(**fields: Any) -> cpb.Conversation:
    conv = cpb.Conversation(
        id="c1", kind=cpb.CONVERSATION_KIND_PUBLIC_CHANNEL, title="general", created_by="u1"
    )
    conv.created_at.FromSeconds(1_700_000_000)
    conv.last_activity_at.FromSeconds(1_700_000_100)
    for key, value in fields.items():
        setattr(conv, key, value)
    return conv


def sample_member(user_id: str, role: int = cpb.MEMBER_ROLE_MEMBER) -> cpb.Member:
    member = cpb.Member(user_id=user_id, role=cast(Any, role), display_name=user_id.title())
    member.joined_at.FromSeconds(1_700_000_000)
    return member


def conv_event(
    event_seq: int, tenant: str = "t1", conversation_id: str = "c1", **payload: Any
) -> events_pb2.ConversationEvent:
    event = events_pb2.ConversationEvent(
        event_id=f"e{event_seq}",
        tenant_id=tenant,
        conversation_id=conversation_id,
        event_seq=event_seq,
        actor_id="u1",
        **payload,
    )
    event.occurred_at.FromSeconds(1_700_000_000 + event_seq)
    return event


class Helpers:
    """The builders above, for test modules (importlib mode: tests cannot import
    conftest by name)."""

    RoomServer = RoomServer
    FakeConversation = FakeConversation
    RpcError = RpcError
    record = staticmethod(record)
    opener = staticmethod(opener)
    make_ops = staticmethod(make_ops)
    token = staticmethod(token)
    message = staticmethod(sample_message)
    conversation = staticmethod(sample_conversation)
    member = staticmethod(sample_member)
    event = staticmethod(conv_event)


@pytest.fixture
def h() -> type[Helpers]:
    return Helpers
