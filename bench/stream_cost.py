"""The cost per delta (and per token) of a streamed bot reply, from the bot's seal to
the gateway's emit: seal + publish to Kafka + consume + open + emit to a room with a
real python-socketio client in it. See docs/fanout.md, "Streamed replies".

Usage (from the repository root):
    uv run python -m bench.stream_cost              # 2,000 deltas
    uv run python -m bench.stream_cost --deltas 5000

Prints, per delta: the CPU time of sealing and of opening alone (in-process loops),
the CPU time of the gateway's handling (open + emit, measured around
StreamRelay.handle), the bot's publish time (awaiting each send, as the streamer
does), and the latency from publish to the client's receipt; per token divides by
the tokens per delta (16 at the default coalescing).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import socketio
import uvicorn

from confab.bot.v1 import stream_pb2 as spb
from confab_core.crypto import DataKey, TenantKeys
from confab_core.identity import Caller
from confab_core.ids import new_id
from confab_core.kafka import BOT_STREAMS_TOPIC, Producer, consume_forever
from confab_core.sealed_events import (
    STREAM_COLLECTION,
    SealedOpener,
    event_headers,
    open_event,
    seal_event,
)
from confab_devservers import KafkaServer
from gateway.realtime import rooms
from gateway.realtime.streams import StreamRelay

KEY = DataKey.generate("t1-k1")
KEYS = TenantKeys("t1", KEY, {KEY.key_id: KEY}, b"s" * 32)
TOKENS_PER_DELTA = 16
# A delta of 16 tokens is about 64 characters of English.
DELTA_TEXT = "lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do ei"


class _Keys:
    async def keys(self, tenant_id: str) -> TenantKeys:
        return KEYS


def _event(index: int) -> spb.StreamEvent:
    return spb.StreamEvent(
        event_id=new_id(),
        tenant_id="t1",
        conversation_id="c1",
        message_id="m1",
        sender_id="confab-bot",
        sender_name="Confab Assistant",
        index=index,
        delta=spb.StreamDelta(text=DELTA_TEXT),
    )


def _micro(n: int) -> tuple[float, float]:
    events = [_event(i) for i in range(n)]
    started = time.perf_counter()
    sealed = [
        seal_event(KEY, "t1", e.event_id, e.SerializeToString(), STREAM_COLLECTION) for e in events
    ]
    seal_us = (time.perf_counter() - started) / n * 1e6
    started = time.perf_counter()
    for e, value in zip(events, sealed, strict=True):
        spb.StreamEvent.FromString(open_event(KEYS, e.event_id, value, STREAM_COLLECTION))
    open_us = (time.perf_counter() - started) / n * 1e6
    return seal_us, open_us


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _pipeline(bootstrap: str, n: int) -> dict[str, float]:
    sio = socketio.AsyncServer(async_mode="asgi")
    relay = StreamRelay(sio, SealedOpener(_Keys(), "bench", spb.StreamEvent, STREAM_COLLECTION))
    handle_cpu: list[float] = []

    async def timed(record: Any) -> None:
        started = time.process_time()
        await relay.handle(record)
        handle_cpu.append(time.process_time() - started)

    async def join(sid: str, data: Any) -> bool:
        await sio.enter_room(sid, rooms.conversation("t1", "c1"))
        await relay.catch_up(sid, Caller("t1", "u"), ["c1"])
        return True

    sio.on("join", join)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            socketio.ASGIApp(sio), host="127.0.0.1", port=port, log_config=None, lifespan="off"
        )
    )
    serving = asyncio.create_task(server.serve())
    ready = asyncio.Event()
    consuming = asyncio.create_task(
        consume_forever(
            bootstrap=bootstrap,
            topics=[BOT_STREAMS_TOPIC],
            group_id=f"bench-{new_id()}",
            handler=timed,
            from_latest=True,
            ready=ready,
        )
    )
    await ready.wait()
    for _ in range(1000):
        if server.started:
            break
        await asyncio.sleep(0.01)
    client = socketio.AsyncClient(reconnection=False)
    received: dict[int, float] = {}
    done = asyncio.Event()

    async def heard(data: dict[str, Any]) -> None:
        received[data["index"]] = time.perf_counter()
        if len(received) >= n:
            done.set()

    client.on("message:stream", heard)
    await client.connect(f"http://127.0.0.1:{port}", transports=["websocket"])
    await client.call("join", {})
    producer = Producer(bootstrap)
    sent: dict[int, float] = {}
    publish: list[float] = []
    # Warm the producer's connection first.
    await producer.send_many(BOT_STREAMS_TOPIC, [])
    for i in range(1, n + 1):
        e = _event(i)
        started = time.perf_counter()
        sent[i] = started
        value = seal_event(KEY, "t1", e.event_id, e.SerializeToString(), STREAM_COLLECTION)
        await producer.send_many(
            BOT_STREAMS_TOPIC, [(b"c1", value, event_headers("t1", e.event_id))]
        )
        publish.append(time.perf_counter() - started)
    await asyncio.wait_for(done.wait(), 120)
    latencies = sorted(received[i] - sent[i] for i in range(1, n + 1))
    await client.disconnect()
    await producer.stop()
    consuming.cancel()
    server.should_exit = True
    await asyncio.gather(serving, consuming, return_exceptions=True)
    return {
        "publish_ms_p50": statistics.median(publish) * 1e3,
        "handle_cpu_us_mean": statistics.fmean(handle_cpu) * 1e6,
        "latency_ms_p50": latencies[len(latencies) // 2] * 1e3,
        "latency_ms_p99": latencies[int(len(latencies) * 0.99)] * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deltas", type=int, default=2000)
    args = parser.parse_args()
    seal_us, open_us = _micro(20_000)
    with tempfile.TemporaryDirectory() as tmp:
        kafka = KafkaServer(Path(tmp) / "kafka")
        kafka.start()
        try:
            result = asyncio.run(_pipeline(kafka.bootstrap_servers, args.deltas))
        finally:
            kafka.stop()
    print(f"deltas: {args.deltas}, {len(DELTA_TEXT)} characters, {TOKENS_PER_DELTA} tokens each")
    print(f"seal (bot CPU):                 {seal_us:8.1f} us/delta")
    print(f"open (gateway CPU):             {open_us:8.1f} us/delta")
    print(f"consume+open+emit (gateway CPU):{result['handle_cpu_us_mean']:8.1f} us/delta")
    print(f"publish, acked (bot wait):      {result['publish_ms_p50']:8.2f} ms/delta p50")
    print(
        f"publish -> client receives:     {result['latency_ms_p50']:8.2f} ms p50, "
        f"{result['latency_ms_p99']:.2f} ms p99"
    )
    per_token = (seal_us + result["handle_cpu_us_mean"]) / TOKENS_PER_DELTA
    print(f"CPU per token (seal + gateway): {per_token:8.1f} us")


if __name__ == "__main__":
    main()
