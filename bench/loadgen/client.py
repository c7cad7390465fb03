"""A lean Socket.IO v5 / Engine.IO v4 client over one aiohttp websocket.

python-socketio's AsyncClient costs a few tasks, a queue and a reconnect manager per
socket; thousands of them make the load generator, not the server, the bottleneck.
This client speaks only what the benchmark needs, on the websocket transport:

- ``0{...}`` open, ``2``/``3`` ping/pong (the server pings, we answer),
- ``40{auth}`` namespace connect, ``40{sid}`` accepted, ``44{...}`` refused,
- ``42[event, data]`` events, ``42<id>[event, data]`` calls, ``43<id>[data]`` acks.

Binary attachments, namespaces other than ``/`` and long-polling are not spoken.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import aiohttp

EventHandler = Callable[[str, Any], None]


class SocketRefused(Exception):
    pass


class RawSocket:
    """One Socket.IO connection; ``on_event`` is called synchronously for each event."""

    def __init__(self, session: aiohttp.ClientSession, url: str, on_event: EventHandler) -> None:
        base = url.rstrip("/").replace("http://", "ws://").replace("https://", "wss://")
        self._url = f"{base}/socket.io/?EIO=4&transport=websocket"
        self._session = session
        self._on_event = on_event
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._ack_callbacks: dict[int, Callable[[Any], None]] = {}
        self._next_id = 0
        self.connected = False
        self.closed = asyncio.Event()
        self.error: str | None = None

    async def connect(self, auth: dict[str, Any] | None = None, wait_s: float = 30) -> None:
        self._ws = await self._session.ws_connect(
            self._url,
            timeout=aiohttp.ClientWSTimeout(ws_close=5),
            # uvicorn pings at the websocket level and closes (1011) a socket that
            # leaves them unanswered for ~40 s; Engine.IO's own pings are answered below.
            autoping=True,
            max_msg_size=0,
        )
        opened = await asyncio.wait_for(self._ws.receive(), wait_s)
        if opened.type != aiohttp.WSMsgType.TEXT or not opened.data.startswith("0"):
            raise SocketRefused(f"no engine.io open packet: {opened!r}")
        await self._ws.send_str("40" + json.dumps(auth or {}))
        while True:
            msg = await asyncio.wait_for(self._ws.receive(), wait_s)
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise SocketRefused(f"closed during connect: {msg!r}")
            if msg.data == "2":
                await self._ws.send_str("3")
                continue
            if msg.data.startswith("40"):
                break
            if msg.data.startswith("44"):
                raise SocketRefused(msg.data[2:])
        self.connected = True
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        ws = self._ws
        assert ws is not None
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data: str = msg.data
                kind = data[:2]
                if kind == "42":
                    body = data[2:]
                    if body[:1] != "[":  # a server-side call with an ack id: not used
                        body = body[body.index("[") :]
                    event, *args = json.loads(body)
                    self._on_event(event, args[0] if args else None)
                elif kind == "43":
                    body = data[2:]
                    cut = body.index("[")
                    ack_id = int(body[:cut])
                    args = json.loads(body[cut:])
                    value = args[0] if args else None
                    fut = self._acks.pop(ack_id, None)
                    if fut is not None and not fut.done():
                        fut.set_result(value)
                    cb = self._ack_callbacks.pop(ack_id, None)
                    if cb is not None:
                        cb(value)
                elif data == "2":
                    await ws.send_str("3")
                elif kind == "41":
                    break
        except (aiohttp.ClientError, ConnectionError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a bug here must not pass for a server's close
            self.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if self.error is None and ws.close_code is not None:
                self.error = f"closed by peer, code {ws.close_code}"
            self.connected = False
            for fut in self._acks.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("socket closed"))
            self._acks.clear()
            self.closed.set()

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def emit(self, event: str, data: Any) -> None:
        assert self._ws is not None
        await self._ws.send_str("42" + json.dumps([event, data], separators=(",", ":")))

    async def call(self, event: str, data: Any, wait_s: float = 30) -> Any:
        assert self._ws is not None
        ack_id = self._id()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = fut
        await self._ws.send_str(f"42{ack_id}" + json.dumps([event, data], separators=(",", ":")))
        try:
            return await asyncio.wait_for(fut, wait_s)
        finally:
            self._acks.pop(ack_id, None)

    async def send_with_callback(
        self, event: str, data: Any, callback: Callable[[Any], None]
    ) -> None:
        """Sends without waiting for the ack; ``callback`` gets it when it comes."""
        assert self._ws is not None
        ack_id = self._id()
        self._ack_callbacks[ack_id] = callback
        await self._ws.send_str(f"42{ack_id}" + json.dumps([event, data], separators=(",", ":")))

    async def close(self) -> None:
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await self._ws.send_str("41")
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader
        self.connected = False


class SourcePool:
    """One aiohttp session per 127.0.0.x source address; sockets are spread round robin.

    A TCP client to one server address and port has ~28k ephemeral ports per source
    address, so 50,000 connections need several sources.
    """

    def __init__(self, sources: int = 8) -> None:
        self._sessions = [
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    local_addr=(f"127.0.0.{i + 2}", 0), limit=0, force_close=False
                )
            )
            for i in range(sources)
        ]
        self._next = 0

    def session(self) -> aiohttp.ClientSession:
        s = self._sessions[self._next % len(self._sessions)]
        self._next += 1
        return s

    async def close(self) -> None:
        for s in self._sessions:
            await s.close()
