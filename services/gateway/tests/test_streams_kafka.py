"""Two gateway pods' stream relays on one real Kafka, real python-socketio clients:
every pod emits every delta in order, and a client joining mid-stream gets the
text so far, then the rest."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
import socketio
import uvicorn

from confab.bot.v1 import stream_pb2 as spb
from confab.conversation.v1 import conversation_pb2 as cpb
from confab_core.crypto import DataKey, TenantKeys
from confab_core.identity import Caller
from confab_core.ids import new_id
from confab_core.kafka import BOT_STREAMS_TOPIC, Producer, consume_forever
from confab_core.sealed_events import STREAM_COLLECTION, SealedOpener, event_headers, seal_event
from confab_devservers import KafkaServer
from confab_devservers.pytest_plugin import _confab_kafka, kafka_server  # noqa: F401
from gateway.realtime import rooms
from gateway.realtime.streams import StreamRelay

pytestmark = pytest.mark.asyncio

KEY = DataKey.generate("t1-k1")
KEYS = TenantKeys("t1", KEY, {KEY.key_id: KEY}, b"s" * 32)
ALICE = Caller("t1", "alice", frozenset({"member"}))


class _Keys:
    async def keys(self, tenant_id: str) -> TenantKeys:
        return KEYS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Pod:
    url: str
    server: uvicorn.Server
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)


async def start_pod(bootstrap: str) -> Pod:
    """A gateway pod's stream path: its own consumer group from latest, its rooms."""
    sio = socketio.AsyncServer(async_mode="asgi")
    group = f"gateway-{new_id()}"
    relay = StreamRelay(sio, SealedOpener(_Keys(), group, spb.StreamEvent, STREAM_COLLECTION))

    async def join(sid: str, data: Any) -> dict[str, bool]:
        # As conversation:join does: the room first, then the text so far.
        await sio.enter_room(sid, rooms.conversation("t1", "c1"))
        await relay.catch_up(sid, ALICE, ["c1"])
        return {"ok": True}

    sio.on("join", join)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            socketio.ASGIApp(sio, socketio_path="socket.io"),
            host="127.0.0.1",
            port=port,
            log_config=None,
            lifespan="off",
        )
    )
    pod = Pod(f"http://127.0.0.1:{port}", server)
    ready = asyncio.Event()
    pod.tasks.append(
        asyncio.create_task(
            consume_forever(
                bootstrap=bootstrap,
                topics=[BOT_STREAMS_TOPIC],
                group_id=group,
                handler=relay.handle,
                from_latest=True,
                ready=ready,
                retry_delay=0.1,
            )
        )
    )
    pod.tasks.append(asyncio.create_task(server.serve()))
    await asyncio.wait_for(ready.wait(), 60)
    for _ in range(1000):
        if server.started:
            break
        await asyncio.sleep(0.01)
    return pod


@pytest_asyncio.fixture
async def pods(kafka_server: KafkaServer) -> AsyncIterator[list[Pod]]:  # noqa: F811
    started = [await start_pod(kafka_server.bootstrap_servers) for _ in range(2)]
    try:
        yield started
    finally:
        for pod in started:
            pod.server.should_exit = True
            for task in pod.tasks[:1]:
                task.cancel()
            for task in pod.tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(task, 10)


class Client:
    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.heard: list[dict[str, Any]] = []
        self.sio.on("message:stream", self._heard)

    async def _heard(self, data: dict[str, Any]) -> None:
        self.heard.append(data)

    async def join(self, pod: Pod) -> None:
        await self.sio.connect(pod.url, transports=["websocket"])
        ack = await self.sio.call("join", {}, timeout=10)
        assert ack == {"ok": True}

    def text(self) -> str:
        """What a client shows: the text so far, then each delta after its index."""
        shown, index = "", -1
        for e in self.heard:
            if "text" in e:
                shown, index = e["text"], e["index"]
            elif "delta" in e:
                assert e["index"] == index + 1, f"gap before index {e['index']}"
                shown, index = shown + e["delta"], e["index"]
        return shown


def event(index: int, **payload: Any) -> spb.StreamEvent:
    return spb.StreamEvent(
        event_id=new_id(),
        tenant_id="t1",
        conversation_id="c1",
        message_id="m1",
        sender_id="confab-bot",
        sender_name="Confab Assistant",
        index=index,
        **payload,
    )


async def publish(producer: Producer, events: list[spb.StreamEvent]) -> None:
    await producer.send_many(
        BOT_STREAMS_TOPIC,
        [
            (
                e.conversation_id.encode(),
                seal_event(KEY, "t1", e.event_id, e.SerializeToString(), STREAM_COLLECTION),
                event_headers("t1", e.event_id),
            )
            for e in events
        ],
    )


async def until(probe: Any, what: str) -> None:
    for _ in range(600):
        if probe():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(what)


async def test_two_pods_stream_in_order_and_a_late_joiner_catches_up(
    pods: list[Pod],
    kafka_server: KafkaServer,  # noqa: F811
) -> None:
    producer = Producer(kafka_server.bootstrap_servers)
    early_a, early_b, late = Client(), Client(), Client()
    try:
        await early_a.join(pods[0])
        await early_b.join(pods[1])
        words = [f"w{i} " for i in range(1, 9)]
        await publish(
            producer,
            [event(0, started=spb.StreamStarted())]
            + [event(i, delta=spb.StreamDelta(text=words[i - 1])) for i in range(1, 6)],
        )
        await until(lambda: all(len(c.heard) == 6 for c in (early_a, early_b)), "the first deltas")
        await late.join(pods[1])
        await until(lambda: late.heard, "the text so far")
        assert (late.heard[0]["text"], late.heard[0]["index"]) == ("".join(words[:5]), 5)

        stored = cpb.Message(
            id="m1",
            conversation_id="c1",
            text="".join(words),
            seq=2,
            kind=cpb.MESSAGE_KIND_BOT,
        )
        await publish(
            producer,
            [event(i, delta=spb.StreamDelta(text=words[i - 1])) for i in range(6, 9)]
            + [
                event(
                    9,
                    ended=spb.StreamEnded(state=cpb.STREAM_STATE_COMPLETE, message=stored),
                )
            ],
        )
        clients = (early_a, early_b, late)
        await until(lambda: all(c.heard and c.heard[-1].get("done") for c in clients), "the end")
        for client in clients:
            assert client.text() == "".join(words)
            assert client.heard[-1]["message"]["text"] == "".join(words)
            assert client.heard[-1]["state"] == "complete"
        # The early sockets saw every index once, in order, on either pod.
        for client in (early_a, early_b):
            assert [e["index"] for e in client.heard] == list(range(10))
        assert [e["index"] for e in late.heard] == [5, 6, 7, 8, 9]
    finally:
        for client in (early_a, early_b, late):
            with contextlib.suppress(Exception):
                await client.sio.disconnect()
        await producer.stop()
