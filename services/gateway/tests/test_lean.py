"""The lean per-connection objects: the queue and event on their own, then a real
uvicorn server with ``LeanWebSocketProtocol`` and ``LeanSocketServer`` against the
python-socketio client (websocket, polling, upgrade) and a raw websocket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import socketio
import uvicorn

from gateway.realtime.lean import (
    LeanAsyncSocket,
    LeanEngineIOServer,
    LeanEvent,
    LeanQueue,
    LeanSocketServer,
    LeanWebSocketProtocol,
    _AsgiBody,
)

pytestmark = pytest.mark.asyncio


async def test_queue_is_fifo_and_hands_items_to_a_waiting_getter() -> None:
    q = LeanQueue()
    assert q.empty() and q.qsize() == 0
    waiting = q.get()
    q.put_nowait("a")
    await q.put("b")
    assert await waiting == "a"
    assert q.qsize() == 1 and not q.empty()
    assert await q.get() == "b"
    with pytest.raises(asyncio.QueueEmpty):
        q.get_nowait()


async def test_queue_skips_getters_that_timed_out() -> None:
    q = LeanQueue()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(q.get(), 0.01)
    q.put_nowait(1)
    assert q.get_nowait() == 1


async def test_queue_join_waits_for_task_done() -> None:
    q = LeanQueue()
    await q.join()  # nothing unfinished
    q.put_nowait(1)
    q.put_nowait(2)
    joined = asyncio.ensure_future(q.join())
    q.get_nowait()
    q.task_done()
    await asyncio.sleep(0)
    assert not joined.done()
    q.get_nowait()
    q.task_done()
    await asyncio.wait_for(joined, 1)
    with pytest.raises(ValueError):
        q.task_done()


async def test_queue_is_unbounded_only() -> None:
    with pytest.raises(ValueError):
        LeanQueue(maxsize=1)


async def test_event_wakes_waiters_and_can_be_cleared() -> None:
    e = LeanEvent()
    assert not e.is_set()
    waiter = asyncio.ensure_future(e.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    e.set()
    assert await asyncio.wait_for(waiter, 1) is True
    assert await e.wait() is True
    e.clear()
    cancelled = asyncio.ensure_future(e.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await cancelled
    e.set()
    assert e.is_set()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    def __init__(self, sio: Any, url: str) -> None:
        self.sio = sio
        self.url = url
        self.disconnects: list[str] = []
        self.server: uvicorn.Server | None = None


@pytest_asyncio.fixture
async def served() -> AsyncIterator[Served]:
    sio = LeanSocketServer(async_mode="asgi", ping_interval=0.3, ping_timeout=0.5)
    port = _free_port()
    out = Served(sio, f"http://127.0.0.1:{port}")

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        if auth and auth.get("refuse"):
            raise socketio.exceptions.ConnectionRefusedError({"code": "nope"})
        await sio.save_session(sid, {"auth": auth})

    async def disconnect(sid: str, reason: Any = None) -> None:
        out.disconnects.append(sid)

    async def echo(sid: str, data: Any) -> Any:
        await sio.emit("echoed", data, to=sid)
        return {"ok": True, "data": data, "auth": (await sio.get_session(sid))["auth"]}

    sio.on("connect", connect)
    sio.on("disconnect", disconnect)
    sio.on("echo", echo)
    config = uvicorn.Config(
        socketio.ASGIApp(sio, socketio_path="socket.io"),
        host="127.0.0.1",
        port=port,
        log_config=None,
        lifespan="off",
        ws=LeanWebSocketProtocol,
        ws_per_message_deflate=False,
        # As in the gateway: Engine.IO's ping alone finds silent clients.
        ws_ping_interval=None,
    )
    server = uvicorn.Server(config)
    out.server = server
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield out
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@pytest.mark.parametrize("transports", [["websocket"], ["polling"], ["polling", "websocket"]])
async def test_official_python_client_over_each_transport(
    served: Served, transports: list[str]
) -> None:
    client = socketio.AsyncClient(reconnection=False)
    heard: asyncio.Queue[Any] = asyncio.Queue()
    client.on("echoed", heard.put)
    await client.connect(served.url, transports=transports, auth={"token": "t"})
    try:
        # Several ping intervals pass: pings are answered and the socket stays.
        await asyncio.sleep(1.5)
        assert client.connected
        ack = await client.call("echo", {"n": 1}, timeout=5)
        assert ack == {"ok": True, "data": {"n": 1}, "auth": {"token": "t"}}
        assert await asyncio.wait_for(heard.get(), 5) == {"n": 1}
        if transports == ["polling", "websocket"]:
            assert client.transport() == "websocket"
        [eio_socket] = served.sio.eio.sockets.values()
        assert type(eio_socket) is LeanAsyncSocket
        assert eio_socket._ping_timer is not None or eio_socket.last_ping is not None
        # Socket.IO keeps the connect request's environ: one body reader class for all.
        [environ] = served.sio.environ.values()
        assert type(environ["wsgi.input"]) is _AsgiBody
        if "websocket" in transports:
            assert served.server is not None
            [proto] = [
                c
                for c in served.server.server_state.connections
                if isinstance(c, LeanWebSocketProtocol)
            ]
            # Every attribute in a slot (a new one in uvicorn: add it to __slots__),
            # and the handshake let go.
            assert vars(proto) == {}
            assert not hasattr(proto, "request") and not hasattr(proto, "response")
            assert proto.scope["headers"] == ()
    finally:
        await client.disconnect()
    for _ in range(100):
        if served.disconnects:
            break
        await asyncio.sleep(0.02)
    assert len(served.disconnects) == 1


async def test_refused_connection_gets_the_error(served: Served) -> None:
    client = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(served.url, transports=["websocket"], auth={"refuse": True})


async def test_a_client_that_stops_answering_pings_is_dropped(served: Served) -> None:
    url = served.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        opened = await ws.receive_str()
        assert opened.startswith("0")
        assert json.loads(opened[1:])["pingTimeout"] == 500
        await ws.send_str("40{}")
        assert (await ws.receive_str()).startswith("40")
        # Answer nothing: a ping comes after ping_interval, and after ping_timeout
        # more the server gives up on the socket.
        assert await asyncio.wait_for(ws.receive_str(), 2) == "2"
        closed = await asyncio.wait_for(ws.receive(), 3)
        assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    for _ in range(100):
        if served.disconnects:
            break
        await asyncio.sleep(0.02)
    assert len(served.disconnects) == 1


async def test_the_server_runs_on_lean_engineio_with_a_lean_queue() -> None:
    sio = LeanSocketServer(async_mode="asgi")
    assert type(sio.eio) is LeanEngineIOServer
    assert type(sio.eio.create_queue()) is LeanQueue


async def test_body_reader_reads_a_body_sent_in_chunks_up_to_its_length() -> None:
    # As Engine.IO's own reader: what arrives past the length asked for is dropped.
    chunks = [
        {"type": "http.request", "body": b"de", "more_body": True},
        {"type": "http.request", "body": b"f", "more_body": False},
    ]

    async def receive() -> dict[str, Any]:
        return chunks.pop(0)

    body = _AsgiBody({"type": "http.request", "body": b"abc", "more_body": True}, receive)
    assert await body.read(4) == b"abcd"
    assert await body.read() == b"e"
    assert await body.read() == b""
    assert not chunks
