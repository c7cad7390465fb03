"""message:stream: deltas to the rooms, the text so far for sockets that join
mid-stream (whole or asked of the bot), and message:stream:cancel."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord

from confab.bot.v1 import stream_pb2 as spb
from confab.conversation.v1 import conversation_pb2 as cpb
from confab_core.auth import JwtVerifier
from confab_core.errors import NotFound
from confab_core.identity import Caller
from confab_core.ids import new_id
from confab_core.kafka import BOT_STREAMS_TOPIC
from confab_core.sealed_events import STREAM_COLLECTION, SealedOpener, event_headers, seal_event
from gateway.ratelimit import Action
from gateway.realtime.sockets import Session, SocketGateway
from gateway.realtime.streams import StreamRelay

pytestmark = pytest.mark.asyncio

ALICE = Caller("t1", "alice", frozenset({"member"}))


def stream_event(index: int, kind: str, *, text: str = "", tenant: str = "t1") -> spb.StreamEvent:
    event = spb.StreamEvent(
        event_id=new_id(),
        tenant_id=tenant,
        conversation_id="c1",
        message_id="m1",
        sender_id="confab-bot",
        sender_name="Confab Assistant",
        index=index,
    )
    if kind == "started":
        event.started.SetInParent()
    elif kind == "delta":
        event.delta.text = text
    elif kind == "snapshot":
        event.snapshot.text = text
    else:
        event.ended.state = cpb.STREAM_STATE_COMPLETE
        event.ended.message.CopyFrom(
            cpb.Message(
                id="m1",
                conversation_id="c1",
                seq=2,
                sender_id="confab-bot",
                kind=cpb.MESSAGE_KIND_BOT,
                text=text,
                stream_state=cpb.STREAM_STATE_COMPLETE,
            )
        )
    return event


def record(h: Any, event: spb.StreamEvent) -> ConsumerRecord[bytes, bytes]:
    keys = h.opener()._keys.sync_keys(event.tenant_id)
    sealed = seal_event(
        keys.current,
        event.tenant_id,
        event.event_id,
        event.SerializeToString(),
        STREAM_COLLECTION,
    )
    return ConsumerRecord(
        topic=BOT_STREAMS_TOPIC,
        partition=0,
        offset=0,
        timestamp=0,
        timestamp_type=0,
        key=event.conversation_id.encode(),
        value=sealed,
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=0,
        headers=event_headers(event.tenant_id, event.event_id),
    )


def relay(h: Any, server: Any, snapshots: Any = None) -> StreamRelay:
    opener = SealedOpener(h.opener()._keys, "gateway-test", spb.StreamEvent, STREAM_COLLECTION)
    return StreamRelay(server, opener, snapshots)


async def test_deltas_reach_the_room_in_order_and_the_end_carries_the_message(h: Any) -> None:
    server = h.RoomServer()
    streams = relay(h, server)
    for event in [
        stream_event(0, "started"),
        stream_event(1, "delta", text="Hel"),
        stream_event(2, "delta", text="lo"),
        stream_event(3, "ended", text="Hello"),
    ]:
        await streams.handle(record(h, event))
    sent = server.emitted("message:stream")
    assert {room for _, room in sent} == {"conv:t1:c1"}
    assert [(d["index"], d.get("delta")) for d, _ in sent[:3]] == [(0, ""), (1, "Hel"), (2, "lo")]
    end = sent[3][0]
    assert (end["done"], end["state"], end["message"]["text"]) == (True, "complete", "Hello")
    assert end["message"]["stream_state"] == "complete"
    assert end["message_id"] == "m1"


async def test_a_repeated_delta_is_not_emitted_twice(h: Any) -> None:
    server = h.RoomServer()
    streams = relay(h, server)
    one = record(h, stream_event(1, "delta", text="a"))
    await streams.handle(record(h, stream_event(0, "started")))
    await streams.handle(one)
    await streams.handle(one)
    assert [d["index"] for d, _ in server.emitted("message:stream")] == [0, 1]


async def test_a_socket_joining_mid_stream_gets_the_text_so_far(h: Any) -> None:
    server = h.RoomServer()
    streams = relay(h, server)
    for event in [
        stream_event(0, "started"),
        stream_event(1, "delta", text="Hel"),
        stream_event(2, "delta", text="lo"),
    ]:
        await streams.handle(record(h, event))
    await streams.catch_up("late", ALICE, ["c1"])
    (payload, _), *_ = [(d, r) for d, r in server.emitted("message:stream") if r == "late"]
    assert (payload["text"], payload["index"], payload["message_id"]) == ("Hello", 2, "m1")
    # Another tenant's conversation of the same id has nothing running.
    await streams.catch_up("other", Caller("t2", "eve"), ["c1"])
    assert not [d for d, r in server.emitted("message:stream") if r == "other"]
    # Once ended, nothing is left to catch up on: the stored message is the answer.
    await streams.handle(record(h, stream_event(3, "ended", text="Hello")))
    await streams.catch_up("later", ALICE, ["c1"])
    assert not [d for d, r in server.emitted("message:stream") if r == "later"]


async def test_a_pod_that_missed_the_start_asks_the_bot(h: Any) -> None:
    server = h.RoomServer()
    asked: list[tuple[str, str, str]] = []

    async def snapshots(caller: Caller, conv: str, msg: str) -> spb.GetStreamResponse:
        asked.append((caller.user_id, conv, msg))
        return spb.GetStreamResponse(found=True, text="Hello", index=2)

    streams = relay(h, server, snapshots)
    # This pod started after deltas 1 and 2 went by.
    await streams.handle(record(h, stream_event(3, "delta", text=" wor")))
    await streams.catch_up("late", ALICE, ["c1"])
    assert asked == [("alice", "c1", "m1")]
    texts = [d for d, r in server.emitted("message:stream") if r == "late"]
    assert [(d["text"], d["index"]) for d in texts] == [("Hello wor", 3)]
    # Whole from now on: the next joiner needs no call.
    await streams.handle(record(h, stream_event(4, "delta", text="ld")))
    await streams.catch_up("later", ALICE, ["c1"])
    assert len(asked) == 1
    assert [d["text"] for d, r in server.emitted("message:stream") if r == "later"] == [
        "Hello world"
    ]


async def test_a_snapshot_from_another_bot_pod_serves_the_waiting_sockets(h: Any) -> None:
    server = h.RoomServer()

    async def snapshots(caller: Caller, conv: str, msg: str) -> spb.GetStreamResponse:
        return spb.GetStreamResponse(found=False, requested=True)

    streams = relay(h, server, snapshots)
    await streams.handle(record(h, stream_event(3, "delta", text=" wor")))
    await streams.catch_up("late", ALICE, ["c1"])
    assert not [d for d, r in server.emitted("message:stream") if r == "late"]
    await streams.handle(record(h, stream_event(3, "snapshot", text="Hello wor")))
    await streams.handle(record(h, stream_event(4, "delta", text="ld")))
    late = [d for d, r in server.emitted("message:stream") if r == "late"]
    assert [(d["text"], d["index"]) for d in late] == [("Hello wor", 3)]
    await streams.catch_up("later", ALICE, ["c1"])
    assert [d["text"] for d, r in server.emitted("message:stream") if r == "later"] == [
        "Hello world"
    ]


async def test_join_and_sync_catch_up(h: Any) -> None:
    server = h.RoomServer()
    stub = h.FakeConversation()
    stub.responses["GetConversation"] = cpb.GetConversationResponse(
        conversation=h.conversation(id="c1")
    )
    streams = relay(h, server)
    gw = SocketGateway(
        server, h.make_ops(stub), JwtVerifier(hs256_secret="x" * 40), "gw-1", streams=streams
    )
    gw.sessions["sid1"] = Session(ALICE, "conn-1", 4e9)
    await streams.handle(record(h, stream_event(0, "started")))
    await streams.handle(record(h, stream_event(1, "delta", text="Hi")))
    ack = await server.handlers["conversation:join"]("sid1", {"conversation_id": "c1"})
    assert ack["ok"] is True
    ack = await server.handlers["sync"]("sid1", {"conversations": {"c1": 0}})
    assert ack["ok"] is True
    texts = [d["text"] for d, r in server.emitted("message:stream") if r == "sid1"]
    assert texts == ["Hi", "Hi"]


class _Streams:
    def __init__(self, error: Exception | None = None) -> None:
        self.calls: list[tuple[str, spb.CancelStreamRequest]] = []
        self.error = error

    async def cancel_stream(
        self, caller: Caller, request: spb.CancelStreamRequest
    ) -> spb.CancelStreamResponse:
        self.calls.append((caller.user_id, request))
        if self.error is not None:
            raise self.error
        return spb.CancelStreamResponse()


async def test_cancel_is_validated_rate_limited_and_sent_as_the_member(h: Any) -> None:
    server = h.RoomServer()
    ops = h.make_ops(h.FakeConversation())
    bot = _Streams()
    ops._b.bot_streams = bot
    gw = SocketGateway(server, ops, JwtVerifier(hs256_secret="x" * 40), "gw-1")
    gw.sessions["sid1"] = Session(ALICE, "conn-1", 4e9)
    cancel = server.handlers["message:stream:cancel"]

    ack = await cancel("sid1", {"conversation_id": "c1", "message_id": "m1"})
    assert ack == {"ok": True}
    assert [(u, r.conversation_id, r.message_id) for u, r in bot.calls] == [("alice", "c1", "m1")]
    assert ops.limiter.checked == [Action.STREAM_CANCEL]

    for bad in (
        {},
        {"conversation_id": "c1"},
        {"conversation_id": "c1", "message_id": ""},
        {"conversation_id": "c1", "message_id": "m1", "extra": 1},
        "nope",
    ):
        ack = await cancel("sid1", bad)
        assert ack["ok"] is False and ack["error"]["code"] == "invalid_request", bad
    assert len(bot.calls) == 1

    bot.error = NotFound("conversation not found", "conversation_not_found")
    ack = await cancel("sid1", {"conversation_id": "c9", "message_id": "m1"})
    assert ack["ok"] is False and ack["error"]["code"] == "conversation_not_found"
    assert await cancel("nobody", {"conversation_id": "c1", "message_id": "m1"}) == {
        "ok": False,
        "error": {"code": "unauthenticated", "message": "not connected"},
    }
