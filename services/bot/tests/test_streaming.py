"""Streamed replies against real Kafka, the in-process conversation service and the
fake OpenAI server in each of its modes (fail, slow, cut)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import grpc
import pytest
import pytest_asyncio
from aiokafka import ConsumerRecord

from bot.clients.conversation import ConversationClient
from bot.clients.keys import key_client
from bot.handlers.replies import bot_caller
from bot.model import ClientPool
from bot.prompting import Turn
from bot.stream_servicer import BotStreamServicer
from bot.streaming import (
    FAILED_MARKER,
    STOPPED_MARKER,
    ReplyStreamer,
    StreamOutcome,
    StreamPublisher,
    StreamRequest,
    StreamSettings,
)
from confab.bot.v1 import stream_pb2 as spb
from confab.bot.v1 import stream_pb2_grpc as spb_grpc
from confab.conversation.v1 import conversation_pb2 as conv_pb
from confab_core.clock import SystemClock
from confab_core.crypto import CachingKeySource
from confab_core.grpcx.client import channel
from confab_core.grpcx.server import GrpcServer
from confab_core.identity import BOT_USER_ID, Caller
from confab_core.ids import new_id
from confab_core.kafka import (
    BOT_STREAM_CONTROL_TOPIC,
    BOT_STREAMS_TOPIC,
    Producer,
    consume_forever,
)
from confab_core.sealed_events import STREAM_COLLECTION, SealedOpener
from confab_core.servicetoken import BOT, CONVERSATION, GATEWAY, InternalAuth

AI = conv_pb.CONVERSATION_KIND_AI_ASSISTANT
HOST = "127.0.0.1"
# As conftest.py signs (importlib mode: a test module cannot import conftest).
INTERNAL_KEY = b"bot-tests-internal-key-of-32-bytes-at-least"
BOT_AUTH = InternalAuth(BOT, INTERNAL_KEY, SystemClock())
GATEWAY_AUTH = InternalAuth(GATEWAY, INTERNAL_KEY, SystemClock())
LONG = " ".join(f"w{i}" for i in range(40))

SETTINGS = StreamSettings(
    model="test-model",
    coalesce_seconds=0.02,
    coalesce_tokens=3,
    idle_timeout_seconds=5.0,
    first_token_timeout_seconds=5.0,
    attempts=3,
    backoff_initial_seconds=0.01,
    backoff_max_seconds=0.05,
)


@dataclass
class Harness:
    stack: Any
    conversation_addr: str
    publisher: StreamPublisher
    keys: CachingKeySource
    events: list[spb.StreamEvent] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    closers: list[Callable[[], Any]] = field(default_factory=list)

    def streamer(self, settings: StreamSettings = SETTINGS) -> ReplyStreamer:
        clients = ClientPool(self.stack.fake.base_url, "test-key", 10.0)
        self.closers.append(clients.close)
        return ReplyStreamer(self.stack.client, clients, self.publisher, settings)

    async def consume(self, topic: str, handler: Any) -> None:
        ready = asyncio.Event()
        task = asyncio.create_task(
            consume_forever(
                bootstrap=self.stack.servers.kafka,
                topics=[topic],
                group_id=f"bot-test-{new_id()}",
                handler=handler,
                from_latest=True,
                ready=ready,
                retry_delay=0.1,
            )
        )
        self.tasks.append(task)
        await asyncio.wait_for(ready.wait(), 60)

    async def listen_control(self, streamer: ReplyStreamer) -> None:
        await self.consume(BOT_STREAM_CONTROL_TOPIC, streamer.handle_control)

    def of(self, message_id: str) -> list[spb.StreamEvent]:
        return [e for e in self.events if e.message_id == message_id]

    async def ended(self, message_id: str) -> list[spb.StreamEvent]:
        async def probe() -> bool:
            return any(e.WhichOneof("payload") == "ended" for e in self.of(message_id))

        await self.stack.eventually(probe, "the stream's end event", within=30)
        return self.of(message_id)

    async def serve(self, streamer: ReplyStreamer) -> spb_grpc.BotStreamServiceStub:
        conv_channel = channel(self.conversation_addr, BOT_AUTH, CONVERSATION)
        servicer = BotStreamServicer(ConversationClient(conv_channel), streamer, self.publisher)
        server = GrpcServer(0, BOT_AUTH, host=HOST)
        server.add(
            lambda s: spb_grpc.add_BotStreamServiceServicer_to_server(servicer, s),
            spb.DESCRIPTOR.services_by_name["BotStreamService"].full_name,
        )
        port = await server.start()
        ch = channel(f"{HOST}:{port}", GATEWAY_AUTH, BOT)

        async def close() -> None:
            await ch.close()
            await server.stop(0)
            await conv_channel.close()

        self.closers.append(close)
        return spb_grpc.BotStreamServiceStub(ch)


@pytest_asyncio.fixture
async def hs(stack: Any, conversation_addr: str) -> AsyncIterator[Harness]:
    conv_channel = channel(conversation_addr, BOT_AUTH, CONVERSATION)
    keys = CachingKeySource(key_client(conv_channel))
    producer = Producer(stack.servers.kafka)
    harness = Harness(stack, conversation_addr, StreamPublisher(producer, keys), keys)
    opener = SealedOpener(keys, "bot-test", spb.StreamEvent, STREAM_COLLECTION)

    async def collect(record: ConsumerRecord[bytes, bytes]) -> None:
        event = await opener.open(record)
        if event is not None:
            harness.events.append(event)

    await harness.consume(BOT_STREAMS_TOPIC, collect)
    try:
        yield harness
    finally:
        for task in harness.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for close in reversed(harness.closers):
            await close()
        await producer.stop()
        await conv_channel.close()


def bot(stack: Any) -> Caller:
    return bot_caller(stack.tenant_id, "Confab Assistant")


async def ask(stack: Any, text: str) -> tuple[conv_pb.Conversation, conv_pb.Message, Caller]:
    alice = stack.user("alice")
    conv = await stack.create(alice, AI)
    question = await stack.send(alice, conv.id, text)
    return conv, question, alice


def request(stack: Any, conv_id: str, question_id: str, **kw: Any) -> StreamRequest:
    return StreamRequest(
        tenant_id=stack.tenant_id,
        conversation_id=conv_id,
        client_msg_id=f"bot-reply:{question_id}",
        turns=[Turn("system", "be brief"), Turn("user", kw.pop("text", "hello"))],
        **kw,
    )


async def run(stack: Any, streamer: ReplyStreamer, req: StreamRequest) -> StreamOutcome:
    with stack.acting_as(bot(stack)):
        return await streamer.stream(req)


def deltas(events: list[spb.StreamEvent]) -> list[spb.StreamEvent]:
    return [e for e in events if e.WhichOneof("payload") == "delta"]


@pytest.mark.asyncio
async def test_a_reply_streams_in_coalesced_gapless_deltas_and_is_stored_once(
    stack: Any, hs: Harness
) -> None:
    conv, question, alice = await ask(stack, LONG)
    out = await run(stack, hs.streamer(), request(stack, conv.id, question.id, text=LONG))

    assert out.state == conv_pb.STREAM_STATE_COMPLETE and not out.refused
    assert out.message.text == "echo: " + LONG
    assert out.message.stream_state == conv_pb.STREAM_STATE_COMPLETE
    assert out.tokens_out == 41 and out.tokens_in > 0
    events = await hs.ended(out.message.id)
    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds[0] == "started" and kinds[-1] == "ended"
    assert [e.index for e in events] == list(range(len(events)))
    pieces = deltas(events)
    assert "".join(d.delta.text for d in pieces) == out.message.text
    # 41 model chunks, coalesced by 3 (or 20 ms): far fewer records than tokens.
    assert len(pieces) <= 14
    assert events[-1].ended.message.id == out.message.id
    assert {e.sender_id for e in events} == {BOT_USER_ID}
    stored = await stack.bot_messages(alice, conv.id)
    assert [(m.id, m.stream_state) for m in stored] == [
        (out.message.id, conv_pb.STREAM_STATE_COMPLETE)
    ]
    sent = stack.fake.requests[-1]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["model"] == "test-model"


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [429, 500, 503])
async def test_failures_before_the_first_token_are_retried(
    stack: Any, hs: Harness, status: int
) -> None:
    conv, question, _ = await ask(stack, "again")
    stack.fake.fail_next(2, status=status, retry_after=0.01)
    out = await run(stack, hs.streamer(), request(stack, conv.id, question.id, text="again"))
    assert out.state == conv_pb.STREAM_STATE_COMPLETE
    assert out.message.text == "echo: again"
    assert [r.status for r in stack.fake.request_log] == [status, status, 200]


@pytest.mark.asyncio
async def test_a_model_that_stays_down_ends_the_reply_failed(stack: Any, hs: Harness) -> None:
    conv, question, _ = await ask(stack, "down")
    stack.fake.fail_next(10, status=503)
    out = await run(stack, hs.streamer(), request(stack, conv.id, question.id))
    assert out.state == conv_pb.STREAM_STATE_FAILED
    assert "did not respond" in out.message.text
    # SDK retries off: exactly the attempts tenacity allows.
    assert len(stack.fake.request_log) == SETTINGS.attempts


@pytest.mark.asyncio
async def test_a_stream_cut_before_its_first_token_is_retried(stack: Any, hs: Harness) -> None:
    conv, question, _ = await ask(stack, "cut early")
    stack.fake.cut_next(after_chunks=1)
    out = await run(stack, hs.streamer(), request(stack, conv.id, question.id, text="cut early"))
    assert out.state == conv_pb.STREAM_STATE_COMPLETE
    assert out.message.text == "echo: cut early"
    assert len(stack.fake.request_log) == 2


@pytest.mark.asyncio
async def test_a_stream_cut_midway_ends_with_the_error_marker(stack: Any, hs: Harness) -> None:
    conv, question, _ = await ask(stack, LONG)
    stack.fake.cut_next(after_chunks=10)
    out = await run(stack, hs.streamer(), request(stack, conv.id, question.id, text=LONG))
    assert out.state == conv_pb.STREAM_STATE_FAILED
    assert out.message.text.endswith(FAILED_MARKER)
    shown = out.message.text.removesuffix(FAILED_MARKER)
    # The role chunk and 9 word chunks went out before the cut.
    assert shown == "".join(("echo: " + LONG).split(" ")[i] + " " for i in range(9))
    events = await hs.ended(out.message.id)
    assert "".join(d.delta.text for d in deltas(events)) == shown
    assert events[-1].ended.state == conv_pb.STREAM_STATE_FAILED
    # Never retried once text was shown.
    assert len(stack.fake.request_log) == 1


@pytest.mark.asyncio
async def test_a_stream_that_goes_silent_fails_at_the_idle_timeout(stack: Any, hs: Harness) -> None:
    conv, question, _ = await ask(stack, LONG)
    stack.fake.set_slow(per_token=2.0)
    streamer = hs.streamer(replace(SETTINGS, idle_timeout_seconds=0.3))
    out = await run(stack, streamer, request(stack, conv.id, question.id, text=LONG))
    assert out.state == conv_pb.STREAM_STATE_FAILED
    assert out.message.text == "echo: " + FAILED_MARKER


@pytest.mark.asyncio
async def test_a_slow_first_token_is_retried_then_answered(stack: Any, hs: Harness) -> None:
    conv, question, _ = await ask(stack, "slow")
    stack.fake.set_slow(first_token=2.0, n=1)
    streamer = hs.streamer(replace(SETTINGS, first_token_timeout_seconds=0.3))
    out = await run(stack, streamer, request(stack, conv.id, question.id, text="slow"))
    assert out.state == conv_pb.STREAM_STATE_COMPLETE
    assert out.message.text == "echo: slow"
    assert len(stack.fake.request_log) == 2


@pytest.mark.asyncio
async def test_a_redelivered_event_never_starts_a_second_stream(stack: Any, hs: Harness) -> None:
    conv, question, alice = await ask(stack, LONG)
    stack.fake.set_slow(per_token=0.01)
    streamer = hs.streamer()
    req = request(stack, conv.id, question.id, text=LONG)
    # The same event handled twice while the stream runs...
    first, second = await asyncio.gather(run(stack, streamer, req), run(stack, streamer, req))
    assert first.message.id == second.message.id
    assert len(stack.fake.request_log) == 1
    # ...and again once it is stored (a restart replaying the partition).
    third = await run(stack, hs.streamer(), req)
    assert third.message.id == first.message.id
    assert third.state == conv_pb.STREAM_STATE_COMPLETE
    assert len(stack.fake.request_log) == 1
    assert len(await stack.bot_messages(alice, conv.id)) == 1
    started = [e for e in hs.events if e.WhichOneof("payload") == "started"]
    assert [e.message_id for e in started if e.conversation_id == conv.id] == [first.message.id]


@pytest.mark.asyncio
async def test_a_member_stops_a_stream_running_on_another_pod(stack: Any, hs: Harness) -> None:
    conv, question, alice = await ask(stack, LONG)
    stack.fake.set_slow(per_token=0.1)
    running_pod, other_pod = hs.streamer(), hs.streamer()
    await hs.listen_control(running_pod)
    rpc = await hs.serve(other_pod)
    task = asyncio.create_task(
        run(stack, running_pod, request(stack, conv.id, question.id, text=LONG))
    )

    async def first_delta() -> spb.StreamEvent | None:
        found = [e for e in deltas(hs.events) if e.conversation_id == conv.id]
        return found[0] if found else None

    delta = await stack.eventually(first_delta, "the first delta", within=30)
    with stack.acting_as(alice):
        snap = await rpc.GetStream(
            spb.GetStreamRequest(conversation_id=conv.id, message_id=delta.message_id)
        )
        assert (snap.found, snap.requested) == (False, True)

        async def snapshot() -> bool:
            return any(e.WhichOneof("payload") == "snapshot" for e in hs.of(delta.message_id))

        await stack.eventually(snapshot, "the running pod's snapshot", within=30)
        await rpc.CancelStream(
            spb.CancelStreamRequest(conversation_id=conv.id, message_id=delta.message_id)
        )
    out = await asyncio.wait_for(task, 30)
    assert out.state == conv_pb.STREAM_STATE_STOPPED and not out.refused
    assert out.message.id == delta.message_id
    assert out.message.text.endswith(STOPPED_MARKER)
    events = await hs.ended(out.message.id)
    shown = "".join(d.delta.text for d in deltas(events))
    assert out.message.text == shown + STOPPED_MARKER
    assert len(shown) < len("echo: " + LONG)
    snap_event = next(e for e in events if e.WhichOneof("payload") == "snapshot")
    assert shown.startswith(snap_event.snapshot.text)
    assert snap_event.snapshot.text == "".join(
        d.delta.text for d in deltas(events) if d.index <= snap_event.index
    )


@pytest.mark.asyncio
async def test_cancel_and_get_stream_check_the_caller_and_the_input(
    stack: Any, hs: Harness
) -> None:
    conv, _, alice = await ask(stack, "hi")
    rpc = await hs.serve(hs.streamer())
    outsiders = [stack.user("mallory"), stack.user("alice", tenant_id="t2")]
    for outsider in outsiders:
        with stack.acting_as(outsider), pytest.raises(grpc.aio.AioRpcError) as info:
            await rpc.CancelStream(
                spb.CancelStreamRequest(conversation_id=conv.id, message_id=new_id())
            )
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    for bad in (
        spb.CancelStreamRequest(conversation_id=conv.id, message_id=""),
        spb.CancelStreamRequest(conversation_id="", message_id=new_id()),
        spb.CancelStreamRequest(conversation_id=conv.id, message_id="x" * 200),
    ):
        with stack.acting_as(alice), pytest.raises(grpc.aio.AioRpcError) as info:
            await rpc.CancelStream(bad)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with stack.acting_as(alice):
        # A stream that is not running (any more): nothing to stop, no error.
        await rpc.CancelStream(
            spb.CancelStreamRequest(conversation_id=conv.id, message_id=new_id())
        )


@pytest.mark.asyncio
async def test_a_refused_check_stops_the_stream_for_the_caller_to_hand_off(
    stack: Any, hs: Harness
) -> None:
    conv, question, _ = await ask(stack, LONG)
    req = request(stack, conv.id, question.id, text=LONG, check=lambda so_far: "w20" not in so_far)
    out = await run(stack, hs.streamer(), req)
    assert out.refused and out.state == conv_pb.STREAM_STATE_STOPPED
    assert "w20" not in out.message.text
    events = await hs.ended(out.message.id)
    assert "w20" not in "".join(d.delta.text for d in deltas(events))


@pytest.mark.asyncio
async def test_agent_overrides_reach_the_model(stack: Any, hs: Harness) -> None:
    conv, question, _ = await ask(stack, "x")
    req = request(
        stack,
        conv.id,
        question.id,
        model="agent-model",
        base_url=stack.fake.base_url,
        temperature=0.2,
        max_tokens=50,
    )
    out = await run(stack, hs.streamer(), req)
    assert out.state == conv_pb.STREAM_STATE_COMPLETE
    sent = stack.fake.requests[-1]
    assert (sent["model"], sent["temperature"], sent["max_completion_tokens"]) == (
        "agent-model",
        0.2,
        50,
    )


@pytest.mark.asyncio
async def test_send_message_takes_a_message_id_and_stream_state_from_services_only(
    stack: Any,
) -> None:
    conv, _, alice = await ask(stack, "hi")
    chosen = new_id()

    async def send(caller: Caller, **kw: Any) -> conv_pb.SendMessageResponse:
        with stack.acting_as(caller):
            resp: conv_pb.SendMessageResponse = await stack.conversations.SendMessage(
                conv_pb.SendMessageRequest(conversation_id=conv.id, text="reply", **kw)
            )
            return resp

    text, as_bot = conv_pb.MESSAGE_KIND_TEXT, conv_pb.MESSAGE_KIND_BOT
    cases: list[tuple[Caller, dict[str, Any], str]] = [
        (alice, {"message_id": chosen, "kind": text}, "service_fields_only"),
        (
            alice,
            {"stream_state": conv_pb.STREAM_STATE_COMPLETE, "kind": text},
            "service_fields_only",
        ),
        (bot(stack), {"message_id": "not-an-id", "kind": as_bot}, "invalid_message_id"),
        (bot(stack), {"message_id": chosen.upper(), "kind": as_bot}, "invalid_message_id"),
        (
            bot(stack),
            {"message_id": chosen, "stream_state": 9, "kind": as_bot},
            "invalid_stream_state",
        ),
    ]
    for caller, kw, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await send(caller, client_msg_id=new_id(), **kw)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, kw
        assert code in str(info.value.trailing_metadata()), (kw, code)

    kw = {
        "client_msg_id": "bot-reply:q1",
        "kind": conv_pb.MESSAGE_KIND_BOT,
        "message_id": chosen,
        "stream_state": conv_pb.STREAM_STATE_STOPPED,
    }
    first = await send(bot(stack), **kw)
    assert (first.created, first.message.id) == (True, chosen)
    assert first.message.stream_state == conv_pb.STREAM_STATE_STOPPED
    again = await send(bot(stack), **kw)
    assert (again.created, again.message.id) == (False, chosen)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await send(bot(stack), **{**kw, "client_msg_id": "bot-reply:q2"})
    assert "message_id_taken" in str(info.value.trailing_metadata())
    listed = await stack.messages(alice, conv.id)
    assert [m.stream_state for m in listed if m.id == chosen] == [conv_pb.STREAM_STATE_STOPPED]
